"""Fold runners: where a coordinator's folds are trained (this machine, or one SageMaker job per fold)."""

