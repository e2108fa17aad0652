"""Regenerate constraints.txt: the exact versions that CI, the image and bench/ install and test.

pyproject.toml says which versions warmcv works with (ranges); constraints.txt says which ones we tested
(one version of every package, transitive ones included). This script builds the environment that the
tests run in, from nothing, in a throwaway virtualenv, and writes down what pip installed there:

    python3 tools/update_constraints.py              # keep every pin pyproject still allows; resolve new ones
    python3 tools/update_constraints.py --upgrade    # the newest versions inside pyproject's ranges

Run it with the Python the tests run on (3.11; the pins are that interpreter's and this platform's) after
adding or changing a requirement in pyproject.toml, then run the tests on the new pins
(tests/unit/test_install_constraints.py checks every pin against pyproject's ranges).

The virtualenv gets every extra that pyproject.toml declares (so a new extra is covered without editing this
script), pip itself, and the build requirement (setuptools), so that `--build-constraint constraints.txt`
pins the build too. Without --upgrade the current pins constrain the install: a requirement that no longer
fits a pin fails with pip's own message, and --upgrade is the way out.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints.txt"
PROJECT = "warmcv"

HEADER = """\
# The tested versions of every package in warmcv's environment (all extras, transitive packages, pip and
# the build's setuptools): CI (.ci/run), the image (Dockerfile) and bench/ install with
#     pip install -c constraints.txt --build-constraint constraints.txt ...
# pyproject.toml holds the ranges warmcv supports; this file one tested point inside them
# (tests/unit/test_install_constraints.py checks that). Generated on CPython {python} ({platform}); do not
# edit by hand: after changing pyproject.toml, regenerate with
#     python3 tools/update_constraints.py            (keeps every pin that still fits)
#     python3 tools/update_constraints.py --upgrade  (newest versions inside the ranges)
"""


def extras(pyproject: dict) -> list[str]:
    return sorted(pyproject["project"].get("optional-dependencies", {}))


def pip(venv: Path, *args: str) -> None:
    command = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    print("+", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def frozen(venv: Path) -> list[str]:
    """`pip freeze --all` less the project itself: every installed distribution as name==version."""
    output = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--all"], check=True,
                            capture_output=True, text=True).stdout
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("#")]
    odd = [line for line in lines if "==" not in line and not line.startswith("-e ")]
    if odd:
        sys.exit(f"update_constraints: pip freeze listed entries that are not name==version: {odd}")
    pins = [line for line in lines if "==" in line and line.split("==")[0].lower() != PROJECT]
    return sorted(pins, key=lambda line: line.split("==")[0].lower())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upgrade", action="store_true",
                        help="ignore the current pins: the newest versions inside pyproject.toml's ranges")
    parser.add_argument("--output", type=Path, default=CONSTRAINTS, help="where to write (default: %(default)s)")
    args = parser.parse_args(argv)

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    keep = [] if args.upgrade or not CONSTRAINTS.exists() else ["-c", str(CONSTRAINTS)]
    keep_build = [] if not keep else ["--build-constraint", str(CONSTRAINTS)]
    target = f".[{','.join(extras(pyproject))}]"
    with tempfile.TemporaryDirectory(prefix="warmcv-constraints-") as scratch:
        venv = Path(scratch) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip(venv, "install", *keep, "--upgrade", "pip")
        pip(venv, "install", *keep, "--upgrade", *pyproject["build-system"]["requires"])
        pip(venv, "install", *keep, *keep_build, "-e", target)
        pins = frozen(venv)
    python = ".".join(map(str, sys.version_info[:3]))
    where = f"{platform.system()} {platform.machine()}"
    args.output.write_text(HEADER.format(python=python, platform=where) + "\n".join(pins) + "\n")
    print(f"wrote {len(pins)} pins to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
