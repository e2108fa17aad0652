"""Local hyperparameter search: Optuna over k-fold cross-validation on warm worker processes (`warmcv run`).

Needs the `local` extra (optuna, matplotlib, tqdm); the training image does not install it.
"""
