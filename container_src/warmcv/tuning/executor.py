"""How the search runs its trials side by side, and whose clock it waits on.

A trial's cross-validation is blocking code that mostly waits (on warm worker processes, or on SageMaker
fold jobs). On a real machine each trial gets a thread (`ThreadTrialExecutor`); a simulation runs each
one as an actor on its virtual clock instead (`warmcv.simulation.driver`), so the same search loop
plays hours of SageMaker time in seconds. The loop only ever submits, waits for the first trial to
finish and reads the executor's clock, which is all this interface offers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from warmcv.clock import SYSTEM_CLOCK, Clock


class TrialExecutor(Protocol):
    """Runs trials concurrently; `clock` is the one their runners and the search loop wait on."""

    clock: Clock

    def submit(self, name: str, function: Callable[[], Any]) -> Future:
        """Start `function` (one trial) now; its outcome arrives in the returned future."""
        ...

    def wait_any(self, futures: Collection[Future], timeout: float) -> set[Future]:
        """Block until at least one of `futures` is done (returning the done ones) or about `timeout` passed."""
        ...

    def run_together(self, functions: list[Callable[[], Any]]) -> None:
        """Run `functions` side by side and return when all are done (stopping M trials' folds at once)."""
        ...

    def shutdown(self) -> None:
        """Wait for the trials still running (they have been told to stop) and release the workers."""
        ...


class ThreadTrialExecutor:
    """One thread per trial in flight, on the system clock."""

    def __init__(self, parallel: int, clock: Clock = SYSTEM_CLOCK):
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="warmcv-trial")

    def submit(self, name: str, function: Callable[[], Any]) -> Future:
        return self._pool.submit(function)

    def wait_any(self, futures: Collection[Future], timeout: float) -> set[Future]:
        done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        return set(done)

    def run_together(self, functions: list[Callable[[], Any]]) -> None:
        if len(functions) <= 1:
            for function in functions:
                function()
            return
        threads = [threading.Thread(target=function, name="warmcv-together", daemon=True) for function in functions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
