"""The warm worker pool: a crash fails one task only, cancel kills a group's work, workers stay warm."""

from __future__ import annotations

import time

import psutil
import pytest

from tests.conftest import wait_for_training_processes
from warmcv.cv import FoldTask
from warmcv.errors import FoldFailed, StopRequested
from warmcv.runners.local import LocalFoldRunner
from warmcv.runners.pool import WarmWorkerPool, WorkerCrashed
from warmcv.runners.worker_process import WorkRequest

SLOW = {"num_boost_round": "100000", "learning_rate": "0.001", "num_leaves": "255", "min_data_in_leaf": "2"}
QUICK = {"num_boost_round": "5"}


def busy_workers(pool: WarmWorkerPool) -> list[psutil.Process]:
    """The pool's workers that are past start-up and training."""
    return wait_for_training_processes(pool.worker_pids, count=1, cpu_seconds=0.5)


def test_a_crashed_worker_fails_only_its_task(prepared_census):
    with WarmWorkerPool(workers=1, threads=1) as pool:
        doomed = pool.submit("a", WorkRequest(str(prepared_census), SLOW, 0))
        busy_workers(pool)[0].kill()
        with pytest.raises(WorkerCrashed, match="died with exit code -9 while training fold 0") as crashed:
            doomed.result(timeout=30)
        # What a SIGKILL nobody asked for most often is, and what to do about it.
        assert ("(SIGKILL: killed from outside, most often by the kernel's out-of-memory killer; each worker holds "
                "the data, so fewer --workers need less memory)") in str(crashed.value)
        after = pool.submit("b", WorkRequest(str(prepared_census), QUICK, 1)).result(timeout=60)
        assert after["fold"] == 1 and pool.crashes == 1 and pool.started_workers == 2


def test_local_runner_turns_a_crash_into_a_failed_fold(prepared_census):
    with WarmWorkerPool(workers=2, threads=1) as pool:
        runner = LocalFoldRunner(prepared_census, pool=pool)
        import threading

        killer = threading.Thread(target=lambda: busy_workers(pool)[0].kill())
        killer.start()
        with pytest.raises(FoldFailed, match="died with exit code -9"):
            runner.run([FoldTask(f, SLOW) for f in range(3)])
        killer.join()
        # The same pool still serves the next trial.
        results = LocalFoldRunner(prepared_census, pool=pool).run([FoldTask(f, QUICK) for f in range(3)])
        assert [r.fold for r in results] == [0, 1, 2]


def test_cancel_stops_running_and_queued_tasks_of_a_group_only(prepared_census):
    with WarmWorkerPool(workers=1, threads=1) as pool:
        running = pool.submit("trial-1", WorkRequest(str(prepared_census), SLOW, 0))
        queued = pool.submit("trial-1", WorkRequest(str(prepared_census), SLOW, 1))
        other = pool.submit("trial-2", WorkRequest(str(prepared_census), QUICK, 2))
        busy_workers(pool)
        started = time.monotonic()
        assert pool.cancel("trial-1") == 2
        for future in (running, queued):
            with pytest.raises(StopRequested):
                future.result(timeout=10)
        assert other.result(timeout=60)["fold"] == 2
        assert time.monotonic() - started < 30
        assert pool.crashes == 0


def test_user_errors_in_a_worker_keep_their_message(prepared_census):
    from warmcv.errors import UserInputError

    with WarmWorkerPool(workers=1, threads=1) as pool:
        future = pool.submit("a", WorkRequest(str(prepared_census), {"metric": "rmse"}, 0))
        with pytest.raises(UserInputError, match="metric='rmse' does not apply to a binary task"):
            future.result(timeout=60)


def test_workers_stay_warm_and_reuse_fold_datasets(prepared_census):
    with WarmWorkerPool(workers=1, threads=1) as pool:
        first = pool.submit("a", WorkRequest(str(prepared_census), QUICK, 0)).result(timeout=60)
        second = pool.submit("b", WorkRequest(str(prepared_census), {**QUICK, "num_leaves": "7"}, 0)).result(timeout=60)
        rebinned = pool.submit("c", WorkRequest(str(prepared_census), {**QUICK, "max_bin": "31"}, 0)).result(timeout=60)
        assert pool.started_workers == 1
        assert (first["dataset_cached"], second["dataset_cached"], rebinned["dataset_cached"]) == (False, True, False)
        assert first["executor"] == second["executor"]


def test_a_worker_that_cannot_start_fails_its_task_and_the_pool_carries_on(prepared_census, monkeypatch):
    with WarmWorkerPool(workers=1, threads=1) as pool:
        real_spawn = pool._spawn
        attempts = []

        def flaky_spawn():
            attempts.append(1)
            if len(attempts) == 1:
                raise EOFError("unexpected EOF")  # what a killed fork server looks like
            return real_spawn()

        monkeypatch.setattr(pool, "_spawn", flaky_spawn)
        first = pool.submit("a", WorkRequest(str(prepared_census), QUICK, 0))
        with pytest.raises(WorkerCrashed, match="could not start a worker process"):
            first.result(timeout=30)
        assert pool.submit("b", WorkRequest(str(prepared_census), QUICK, 0)).result(timeout=60)["fold"] == 0


def test_folds_go_to_the_worker_that_holds_their_dataset(prepared_census):
    with WarmWorkerPool(workers=2, threads=1) as pool:
        warm = [pool.submit("a", WorkRequest(str(prepared_census), QUICK, fold)) for fold in (0, 1)]
        placed = {f.result(timeout=60)["fold"]: f.result()["executor"] for f in warm}
        again = [pool.submit("b", WorkRequest(str(prepared_census), QUICK, fold)) for fold in (1, 0)]
        results = [f.result(timeout=60) for f in again]
        assert all(r["dataset_cached"] for r in results)
        assert {r["fold"]: r["executor"] for r in results} == placed
