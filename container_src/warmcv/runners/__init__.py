"""Fold runners: where a coordinator's folds are trained (this machine, or one SageMaker job per fold)."""

from warmcv.runners.base import FoldResult, FoldRunner, FoldTask

__all__ = ["FoldResult", "FoldRunner", "FoldTask"]
