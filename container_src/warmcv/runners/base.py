"""The fold-runner interface: how a coordinator gets K folds trained, wherever they run.

The coordinator only knows this interface. `LocalFoldRunner` trains folds in warm worker processes on
this machine; the SageMaker runner launches one training job per fold. Both take the same tasks
(string hyperparameters, exactly what a fold job would receive) and return the same results.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


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


class FoldRunner(ABC):
    """Runs the folds of one trial. Implementations must make `stop` safe to call at any time, twice."""

    name: str = "abstract"

    @abstractmethod
    def run(self, tasks: Sequence[FoldTask]) -> list[FoldResult]:
        """Train every task and return results in task order.

        Raises FoldFailed (after stopping the sibling folds) when a fold fails; any other exception
        (StopRequested from a signal) leaves the folds to `stop`, which the caller invokes.
        """

    @abstractmethod
    def stop(self) -> None:
        """Stop every fold still running; return once they are stopped or asked to stop."""

    def close(self) -> None:  # noqa: B027 - optional hook; most runners hold nothing
        """Release what the runner holds (processes, clients)."""

    def describe(self) -> str:
        return self.name

    def __enter__(self) -> FoldRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
