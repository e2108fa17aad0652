"""What a fold runner is given (`FoldTask`) and gives back (`FoldResult`).

Tasks carry string hyperparameters, exactly what a fold job's hyperparameters.json would hold, so a
task means the same to a local worker process and to a SageMaker training job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# What a fold leaves in its output data (output.tar.gz of a fold job): `FoldResult.from_summary` reads it.
METRICS_FILE = "metrics.json"
# ... and its validation rows' predictions (numpy's .npy format: exact, and read without pickle).
PREDICTIONS_FILE = "validation_predictions.npy"
# The key of those predictions in a worker's summary (in memory, never in metrics.json).
VALIDATION_PREDICTIONS = "validation_predictions"


@dataclass(frozen=True)
class FoldTask:
    fold: int
    # The trial's explicit hyperparameters as strings, without mode/fold (the runner adds those).
    hyperparameters: Mapping[str, str]

    def worker_hyperparameters(self) -> dict[str, str]:
        return {**self.hyperparameters, "mode": "worker", "fold": str(self.fold)}


@dataclass(frozen=True)
class FoldExtras:
    """What only the best trial needs from its folds, kept beside the scores rather than in them: a study keeps
    every trial's scores, and these are a number per row (predictions) and per feature (importances)."""

    # The fold's validation rows in prepared-data order: (rows,) probabilities of the second class or values,
    # or (rows, classes) for a multiclass task. None when the fold did not send them.
    validation_predictions: np.ndarray | None = None
    # {"gain": {feature: value}, "split": {feature: count}}, features by their own names.
    feature_importance: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class FoldResult:
    fold: int
    train_score: float
    validation_score: float
    best_iteration: int
    n_train: int
    n_valid: int
    seconds: float  # the fold's own training time (binning, boosting, scoring)
    wall_seconds: float = 0.0  # from submission to result, as the coordinator saw it
    train_metrics: Mapping[str, float] = field(default_factory=dict)
    validation_metrics: Mapping[str, float] = field(default_factory=dict)
    executor: str = ""  # worker process or training job that ran it
    dataset_cached: bool = False  # a warm worker reused this fold's binned Dataset
    # Splits in the fold model's trees (0: a constant model); None when the fold did not say (older results).
    splits: int | None = None
    # Not serialised: see FoldExtras.
    extras: FoldExtras | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], **extra: Any) -> FoldResult:
        """From a worker's metrics JSON (the same document locally and in a fold job's output.tar.gz), plus
        the validation predictions when the worker sent them (`VALIDATION_PREDICTIONS`)."""
        extras = extra.pop("extras", None)
        if extras is None and (summary.get("feature_importance") or summary.get(VALIDATION_PREDICTIONS) is not None):
            extras = FoldExtras(summary.get(VALIDATION_PREDICTIONS), dict(summary.get("feature_importance") or {}))
        splits = summary.get("splits")
        return cls(
            fold=int(summary["fold"]), train_score=float(summary["train_score"]),
            validation_score=float(summary["validation_score"]), best_iteration=int(summary["best_iteration"]),
            n_train=int(summary["n_train"]), n_valid=int(summary["n_valid"]), seconds=float(summary["seconds"]),
            train_metrics=dict(summary.get("train_metrics", {})),
            validation_metrics=dict(summary.get("validation_metrics", {})),
            dataset_cached=bool(summary.get("dataset_cached", False)),
            splits=int(splits) if splits is not None else None, extras=extras, **extra,
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything but `extras` (a study stores this for every trial)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extras"}
        data["train_metrics"] = dict(self.train_metrics)
        data["validation_metrics"] = dict(self.validation_metrics)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FoldResult:
        """The inverse of `to_dict` (a summary kept in a study, a report or cv_summary.json)."""
        return cls(**{**data, "train_metrics": dict(data.get("train_metrics", {})),
                      "validation_metrics": dict(data.get("validation_metrics", {}))})
