"""The Python API: what `import warmcv` offers a notebook or a script (re-exported from the package root)."""
