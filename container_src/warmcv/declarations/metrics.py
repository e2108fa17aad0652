"""Metric declarations: how a score is computed, which way is better, and how it is logged for SageMaker.

Two kinds live here. A `ScoringMetric` (auc, logloss, ...) is what the user optimises: it knows its
direction, the tasks it applies to, the LightGBM metric used for early stopping and how to compute
it with scikit-learn. A `LogMetric` is a line in the job's log that SageMaker's regex metric
definitions pick up; the regex is derived from the very function that prints the line, so the two can
never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Direction = Literal["Maximize", "Minimize"]
Task = Literal["binary", "multiclass", "regression"]
CLASSIFICATION: frozenset[str] = frozenset({"binary", "multiclass"})
REGRESSION: frozenset[str] = frozenset({"regression"})


def _positive_class(prediction: np.ndarray) -> np.ndarray:
    return prediction if prediction.ndim == 1 else prediction[:, 1]


def _labels(prediction: np.ndarray) -> np.ndarray:
    """Predicted class indices, tie-broken exactly as scikit-learn's LGBMClassifier.predict does."""
    if prediction.ndim == 1:
        return (prediction > 0.5).astype(np.int64)
    return prediction.argmax(axis=1)


def _auc(y: np.ndarray, prediction: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import roc_auc_score

    if n_classes == 2:
        return float(roc_auc_score(y, _positive_class(prediction)))
    return float(roc_auc_score(y, prediction, multi_class="ovr", labels=np.arange(n_classes)))


def _logloss(y: np.ndarray, prediction: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import log_loss

    if prediction.ndim == 1:
        prediction = np.column_stack([1.0 - prediction, prediction])
    return float(log_loss(y, prediction, labels=np.arange(n_classes)))


def _accuracy(y: np.ndarray, prediction: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y, _labels(prediction)))


def _rmse(y: np.ndarray, prediction: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import root_mean_squared_error

    return float(root_mean_squared_error(y, prediction))


def _mae(y: np.ndarray, prediction: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(y, prediction))


def _r2(y: np.ndarray, prediction: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(y, prediction))


@dataclass(frozen=True)
class ScoringMetric:
    """A score the tuner can optimise. `lightgbm_metric` maps a task to LightGBM's name for early stopping."""

    name: str
    direction: Direction
    tasks: frozenset[str]
    lightgbm_metric: dict[str, str]
    compute: Callable[[np.ndarray, np.ndarray, int], float]
    help: str

    def score(self, y_true: np.ndarray, prediction: np.ndarray, n_classes: int) -> float:
        """Score predictions (probabilities for classification, values for regression)."""
        return self.compute(y_true, prediction, n_classes)

    def better(self, a: float, b: float) -> bool:
        """True if score `a` is strictly better than `b` in this metric's direction."""
        return a > b if self.direction == "Maximize" else a < b

    @property
    def worst(self) -> float:
        return -math.inf if self.direction == "Maximize" else math.inf


SCORING_METRICS: dict[str, ScoringMetric] = {
    m.name: m
    for m in (
        ScoringMetric("auc", "Maximize", CLASSIFICATION, {"binary": "auc", "multiclass": "auc_mu"}, _auc,
                      "area under the ROC curve (one-vs-rest macro average for multiclass)"),
        ScoringMetric("logloss", "Minimize", CLASSIFICATION,
                      {"binary": "binary_logloss", "multiclass": "multi_logloss"}, _logloss,
                      "cross-entropy of the predicted class probabilities"),
        ScoringMetric("accuracy", "Maximize", CLASSIFICATION,
                      {"binary": "binary_error", "multiclass": "multi_error"}, _accuracy,
                      "share of rows whose most probable class is right"),
        ScoringMetric("rmse", "Minimize", REGRESSION, {"regression": "rmse"}, _rmse, "root mean squared error"),
        ScoringMetric("mae", "Minimize", REGRESSION, {"regression": "l1"}, _mae, "mean absolute error"),
        ScoringMetric("r2", "Maximize", REGRESSION, {"regression": "l2"}, _r2, "coefficient of determination"),
    )
}

DEFAULT_METRIC: dict[str, str] = {"binary": "auc", "multiclass": "logloss", "regression": "rmse"}


@dataclass(frozen=True)
class LogMetric:
    """A value printed as `<label>:<value>;` and picked up by a SageMaker regex metric definition."""

    name: str
    label: str

    @property
    def regex(self) -> str:
        return f"{self.label}:(.*?);"

    def line(self, value: float) -> str:
        # repr keeps every digit of the float, so the tuner sees exactly what was computed.
        return f"{self.label}:{float(value)!r};"

    def definition(self) -> dict[str, str]:
        """The `MetricDefinitions` entry for CreateTrainingJob and the tuner."""
        return {"Name": self.name, "Regex": self.regex}


# What the coordinator prints; the tuner's objective is VALIDATION_SCORE.
VALIDATION_SCORE = LogMetric("validation:score", "average model validation score")
TRAINING_SCORE = LogMetric("train:score", "average model training score")
VALIDATION_SCORE_STD = LogMetric("validation:score_std", "std model validation score")
TRAINING_SCORE_STD = LogMetric("train:score_std", "std model training score")
COORDINATOR_METRICS: tuple[LogMetric, ...] = (
    VALIDATION_SCORE, TRAINING_SCORE, VALIDATION_SCORE_STD, TRAINING_SCORE_STD,
)

# What a worker (one fold, or the full set) prints.
FOLD_VALIDATION_SCORE = LogMetric("validation:score", "validation score")
FOLD_TRAINING_SCORE = LogMetric("train:score", "train score")
WORKER_METRICS: tuple[LogMetric, ...] = (FOLD_VALIDATION_SCORE, FOLD_TRAINING_SCORE)
