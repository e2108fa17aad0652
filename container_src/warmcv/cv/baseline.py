"""The constant model's cross-validated score: what a model must beat to be worth registering.

A model with no split in any tree predicts one value for every row: the training rows' class frequencies, or
their mean. Its score is not a universal number: AUC 0.5 and R2 near 0 are, but log loss, accuracy, RMSE and
MAE depend on the labels. So it is computed here, on the same folds as the search: each fold's best constant
(class frequencies for log loss and AUC, the majority class for accuracy, the mean for RMSE and R2, the median
for MAE), fitted on the fold's training rows and scored on its validation rows, averaged like the CV score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from warmcv.cv.oof import read_prepared_columns
from warmcv.data.manifest import FOLD_COLUMN, Manifest, encode_target
from warmcv.declarations import ScoringMetric

# Relative margin inside which a score counts as equal to the constant model's (a no-split LightGBM model
# reproduces the constant up to rounding, e.g. log loss 1e-16 below it).
TIE = 1e-9


def constant_predictions(metric: ScoringMetric, y_train: np.ndarray, rows: int, n_classes: int) -> np.ndarray:
    if n_classes:
        prior = np.bincount(y_train.astype(np.int64), minlength=n_classes) / len(y_train)
        if metric.name == "accuracy":  # the majority class, with certainty
            prior = np.eye(n_classes)[int(np.argmax(prior))]
        return np.full(rows, prior[1]) if n_classes == 2 else np.tile(prior, (rows, 1))
    center = np.median(y_train) if metric.name == "mae" else float(np.mean(y_train))
    return np.full(rows, center, dtype=np.float64)


def constant_model_score(metric: ScoringMetric, manifest: Manifest, prepared_dir: Path) -> float:
    """The mean over the folds of the constant model's validation score."""
    columns = read_prepared_columns(prepared_dir, [manifest.target, FOLD_COLUMN])
    label = encode_target(columns[manifest.target], manifest)
    folds = columns[FOLD_COLUMN].to_numpy()
    scores = []
    for fold in range(manifest.n_folds):
        train, valid = manifest.fold_masks(folds, fold)
        prediction = constant_predictions(metric, label[train], int(valid.sum()), manifest.n_classes)
        scores.append(metric.score(label[valid], prediction, manifest.n_classes))
    return float(np.mean(scores))


def beats(metric: ScoringMetric, score: float, baseline: float) -> bool:
    """`score` is better than `baseline` by more than rounding."""
    margin = TIE * max(1.0, abs(baseline))
    return metric.better(score, baseline + margin if metric.direction == "Maximize" else baseline - margin)
