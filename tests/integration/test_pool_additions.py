"""The two small additions to WarmWorkerPool that warmcv run uses: prestart and busy()."""

from __future__ import annotations

import time
from pathlib import Path

from warmcv.runners.pool import WarmWorkerPool
from warmcv.runners.worker_process import WorkRequest


def _wait(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_prestart_starts_every_worker_before_the_first_task() -> None:
    with WarmWorkerPool(workers=2, threads=1, prestart=True) as pool:
        assert _wait(lambda: pool.started_workers == 2)
    with WarmWorkerPool(workers=2, threads=1) as lazy:
        time.sleep(0.5)
        assert lazy.started_workers == 0


def test_busy_lists_the_workers_running_a_task(prepared_census: Path) -> None:
    hps = {"num_boost_round": "600", "learning_rate": "0.001", "early_stopping_rounds": "0"}
    with WarmWorkerPool(workers=2, threads=1) as pool:
        assert pool.busy() == []
        future = pool.submit("trial-a", WorkRequest(str(prepared_census), hps, 1))
        assert _wait(lambda: len(pool.busy()) == 1)
        [(pid, group, fold)] = pool.busy()
        assert (group, fold) == ("trial-a", 1) and pid > 0
        future.result(timeout=120)
        assert _wait(lambda: pool.busy() == [])
