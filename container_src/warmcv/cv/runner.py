"""The fold-runner interface: how a cross-validation gets K folds trained, wherever they run.

`cross_validate` only knows this interface. The local runner trains folds in warm worker processes on
this machine; the SageMaker runner launches one training job per fold; the simulation runs them on a
virtual clock. All take the same tasks and return the same results.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from warmcv.cv.folds import FoldResult, FoldTask


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
