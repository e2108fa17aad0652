"""The local fold runner: a trial's folds in warm worker processes on this machine."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from pathlib import Path

from warmcv.cv import FoldResult, FoldRunner, FoldTask
from warmcv.errors import FoldFailed, StopRequested, UserInputError
from warmcv.runners.pool import WarmWorkerPool
from warmcv.runners.worker_process import WorkRequest

log = logging.getLogger(__name__)
_trial_ids = itertools.count()


class LocalFoldRunner(FoldRunner):
    """Runs folds on a `WarmWorkerPool`: its own (sized to the folds and cores) or one shared across trials."""

    name = "local"

    def __init__(self, data_dir: Path | str, pool: WarmWorkerPool | None = None, n_folds: int | None = None,
                 all_metrics: bool = True):
        """`all_metrics=False` has the folds score the objective only, for a caller that reads nothing else
        (the results' train_metrics and validation_metrics then hold just the objective)."""
        self.data_dir = str(data_dir)
        self.all_metrics = all_metrics
        self._owns_pool = pool is None
        if pool is None:
            from warmcv.model.params import default_threads

            pool = WarmWorkerPool(workers=min(n_folds or default_threads(), default_threads()))
        self.pool = pool
        self._group: object | None = None

    def describe(self) -> str:
        return f"local ({self.pool.workers} warm worker processes x {self.pool.threads} LightGBM threads)"

    def run(self, tasks: Sequence[FoldTask]) -> list[FoldResult]:
        group = ("trial", next(_trial_ids))
        self._group = group
        submitted = time.monotonic()
        futures: list[Future] = [
            self.pool.submit(group, WorkRequest(self.data_dir, dict(task.hyperparameters), task.fold,
                                                all_metrics=self.all_metrics))
            for task in tasks
        ]
        # Short waits keep the main thread responsive to SIGTERM/Ctrl-C handlers.
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                self.stop()
                task = tasks[futures.index(failed)]
                error = failed.exception()
                if isinstance(error, (UserInputError, StopRequested)):
                    raise error
                raise FoldFailed(task.fold, str(error))
        elapsed = time.monotonic() - submitted
        return [FoldResult.from_summary(f.result(), wall_seconds=elapsed, executor=f.result().get("executor", ""))
                for f in futures]

    def stop(self) -> None:
        if self._group is not None:
            stopped = self.pool.cancel(self._group)
            if stopped:
                log.info("stopped %d fold(s) in flight", stopped)

    def close(self) -> None:
        if self._owns_pool:
            self.pool.close()
