"""What a fold runner is given (`FoldTask`) and gives back (`FoldResult`).

Tasks carry string hyperparameters, exactly what a fold job's hyperparameters.json would hold, so a
task means the same to a local worker process and to a SageMaker training job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# What a fold leaves in its output data (output.tar.gz of a fold job): `FoldResult.from_summary` reads it.
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class FoldTask:
    fold: int
    # The trial's explicit hyperparameters as strings, without mode/fold (the runner adds those).
    hyperparameters: Mapping[str, str]

    def worker_hyperparameters(self) -> dict[str, str]:
        return {**self.hyperparameters, "mode": "worker", "fold": str(self.fold)}


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

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], **extra: Any) -> FoldResult:
        """From a worker's metrics JSON (the same document locally and in a fold job's output.tar.gz)."""
        return cls(
            fold=int(summary["fold"]), train_score=float(summary["train_score"]),
            validation_score=float(summary["validation_score"]), best_iteration=int(summary["best_iteration"]),
            n_train=int(summary["n_train"]), n_valid=int(summary["n_valid"]), seconds=float(summary["seconds"]),
            train_metrics=dict(summary.get("train_metrics", {})),
            validation_metrics=dict(summary.get("validation_metrics", {})),
            dataset_cached=bool(summary.get("dataset_cached", False)), **extra,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FoldResult:
        """The inverse of `to_dict` (a summary kept in a study, a report or cv_summary.json)."""
        return cls(**{**data, "train_metrics": dict(data.get("train_metrics", {})),
                      "validation_metrics": dict(data.get("validation_metrics", {}))})
