"""Experiment tracking: a study's trials in MLflow (the optional `mlflow` extra).

One parent run per study (a `warmcv run` folder, or a SageMaker tuning job) and one nested run per trial,
written by whoever finishes the trial: the local search, or the SageMaker coordinator of that trial.
"""
