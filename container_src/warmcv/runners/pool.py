"""A pool of warm worker processes with cache affinity, cancellation by group and crash isolation.

Why not `concurrent.futures.ProcessPoolExecutor`: one crashed worker breaks that whole executor
(every pending future fails), it cannot kill the worker running a cancelled task, and it hands tasks
to whichever worker is free. Here a crash fails only the task it was running, a cancelled trial's
workers are killed and replaced, and a fold goes preferably to a worker that already holds its
binned Dataset.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Hashable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from warmcv.declarations import DATASET_LEVEL
from warmcv.errors import StopRequested, UserInputError
from warmcv.model.params import default_threads
from warmcv.runners.worker_process import WorkRequest, worker_main

log = logging.getLogger(__name__)

# Modules every worker needs: imported once in the fork server, so a new worker starts in milliseconds.
_PRELOAD = ["warmcv.runners.worker_process", "warmcv.cv.fold_outputs", "lightgbm", "pandas", "pyarrow.parquet",
            "sklearn.metrics"]


_MAIN_LOCK = threading.Lock()


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start a worker without telling it about the parent's `__main__`.

    multiprocessing makes a new process re-import the parent's main module (by path or by name) so
    that pickled objects defined there resolve. A worker needs nothing from it (its target and every
    message are warmcv's own), and re-importing it is harmful: under `python -` the path is
    "<stdin>", which fails the start, and an unguarded script or a notebook's code would run again
    in every worker. So, while the process starts, `__main__` shows neither a file nor a spec.
    """
    main = sys.modules["__main__"]
    with _MAIN_LOCK:
        hidden = {name: main.__dict__.pop(name) for name in ("__file__",) if name in main.__dict__}
        spec = main.__dict__.get("__spec__")
        main.__spec__ = None
        try:
            yield
        finally:
            main.__spec__ = spec
            main.__dict__.update(hidden)


# multiprocessing reaps the fork server itself (os.waitpid on its pid); the Popen objects are kept so
# that subprocess never reaps it first.
_FORK_SERVERS: list[subprocess.Popen] = []
_FORK_SERVER_LOCK = threading.Lock()


def _spawn_in_own_process_group(path: str, args: list[str], passfds: Sequence[int]) -> int:
    """multiprocessing.util.spawnv_passfds, but the new process leads a process group of its own."""
    process = subprocess.Popen(args, executable=path, pass_fds=tuple(passfds), process_group=0)
    _FORK_SERVERS.append(process)
    return process.pid


def ensure_fork_server() -> None:
    """Start multiprocessing's fork server (if it is not running) outside the terminal's process group.

    A terminal's Ctrl-C is a SIGINT to the whole foreground process group. The fork server ignores
    SIGINT only once it has imported its preload modules (LightGBM, pandas: seconds), and a Ctrl-C
    before that printed its KeyboardInterrupt traceback and killed it ("could not prestart a
    worker"); a worker forked from it could be hit the same way before `worker_main` ignores SIGINT.
    In a process group of its own, which its workers inherit, neither receives the terminal's
    signals: the parent alone decides what a Ctrl-C stops (ignoring SIGINT in the parent while
    spawning would do the same, but a Ctrl-C in that moment was lost, because other threads take the
    signal and drop it). Nothing else changes: the server still exits when its parent does (its
    "alive" pipe closes) and a worker when its connection closes.
    """
    from multiprocessing import forkserver, resource_tracker, util

    resource_tracker.ensure_running()  # in the terminal's group as before: it ignores SIGINT itself
    with _FORK_SERVER_LOCK:
        spawn = util.spawnv_passfds
        util.spawnv_passfds = _spawn_in_own_process_group  # type: ignore[assignment]  # same call, str path
        try:
            forkserver.ensure_running()
        finally:
            util.spawnv_passfds = spawn


def dataset_affinity(request: WorkRequest) -> Hashable:
    """What a worker must hold to skip binning: the data, the fold and the dataset-level parameters."""
    hps = request.hyperparameters
    return (request.data_dir, request.fold, *(hps.get(name) for name in (*DATASET_LEVEL, "seed")))


class WorkerCrashed(RuntimeError):
    """A worker process died while running a task (out of memory, a native crash, a kill)."""


class WorkerTaskError(RuntimeError):
    """A task raised inside the worker; `kind` is 'user' for bad input, 'internal' otherwise."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class _Job:
    group: Hashable
    request: WorkRequest
    affinity: Hashable
    future: Future = field(default_factory=Future)
    cancelled: bool = False


@dataclass
class _Worker:
    process: Any
    conn: Connection
    job: _Job | None = None
    cached: set = field(default_factory=set)


class WarmWorkerPool:
    """`workers` processes with `threads` LightGBM threads each (so workers × threads ≤ cores by default)."""

    def __init__(self, workers: int | None = None, threads: int | None = None, max_datasets: int = 16,
                 prestart: bool = False, share_datasets: bool = True, dataset_dir: Path | None = None):
        cores = default_threads()
        self.workers = max(1, workers or cores)
        self.threads = max(1, threads or cores // self.workers)
        self.max_datasets = max_datasets
        # Binned fold Datasets in LightGBM's binary format, so a fold is binned once per pool rather
        # than once per worker (see warmcv.model.dataset_store): in `dataset_dir` if given (a run folder,
        # where a killed run's files are found again and removed by the next close), else in a temporary
        # directory. Removed when the pool closes.
        self._dataset_dir: Path | None = None
        self._temporary: tempfile.TemporaryDirectory | None = None
        if share_datasets and dataset_dir is not None:
            self._dataset_dir = Path(dataset_dir)
            self._dataset_dir.mkdir(parents=True, exist_ok=True)
        elif share_datasets:
            self._temporary = tempfile.TemporaryDirectory(prefix="warmcv-datasets-", ignore_cleanup_errors=True)
            self._dataset_dir = Path(self._temporary.name)
        # Start every worker now rather than at the first task, so the fork server's imports overlap
        # with whatever the caller does next (preparing the data, say).
        self.prestart = prestart
        self._context = mp.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)
        ensure_fork_server()
        self._lock = threading.Lock()
        self._queue: deque[_Job] = deque()
        self._pool: list[_Worker] = []
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        self.started_workers = 0
        self.crashes = 0
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="warmcv-pool", daemon=True)
        self._dispatcher.start()

    # -- public API -------------------------------------------------------------------------------------
    def submit(self, group: Hashable, request: WorkRequest) -> Future:
        """Queue a request; `group` (a trial) is what `cancel` addresses."""
        job = _Job(group, request, affinity=dataset_affinity(request))
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            self._queue.append(job)
        self._wake()
        return job.future

    def cancel(self, group: Hashable) -> int:
        """Drop the group's queued tasks and kill the workers running its tasks; returns how many were stopped."""
        stopped = 0
        with self._lock:
            for job in [j for j in self._queue if j.group == group]:
                self._queue.remove(job)
                job.future.set_exception(StopRequested("cancelled before it started"))
                stopped += 1
            for worker in self._pool:
                if worker.job is not None and worker.job.group == group:
                    worker.job.cancelled = True
                    worker.process.kill()
                    stopped += 1
        self._wake()
        return stopped

    @property
    def dataset_dir(self) -> str | None:
        """Where the workers share binned Datasets (None when sharing is off)."""
        return str(self._dataset_dir) if self._dataset_dir is not None else None

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring, and for tests that kill one)."""
        with self._lock:
            return [w.process.pid for w in self._pool]

    def busy(self) -> list[tuple[int, Hashable, int | str]]:
        """(pid, group, fold) of every worker running a task now: for diagnostics and crash tests."""
        with self._lock:
            return [(w.process.pid, w.job.group, w.job.request.fold) for w in self._pool if w.job is not None]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for job in self._queue:
                job.future.set_exception(StopRequested("the worker pool closed"))
            self._queue.clear()
        self._wake()
        self._dispatcher.join(timeout=10)
        for worker in self._pool:
            _shutdown(worker)
        self._pool.clear()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._temporary is not None:
            self._temporary.cleanup()
        elif self._dataset_dir is not None:
            shutil.rmtree(self._dataset_dir, ignore_errors=True)

    def __enter__(self) -> WarmWorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- dispatcher ---------------------------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(target=worker_main, name="warmcv-worker", daemon=True,
                                        args=(child, self.threads, self.max_datasets, self.dataset_dir))
        ensure_fork_server()  # again: a server that died is started again the same way
        with _main_module_hidden():
            process.start()
        child.close()
        self.started_workers += 1
        return _Worker(process, parent)

    def _assign(self) -> None:
        """Give queued jobs to idle workers, preferring a (worker, job) pair where the worker has the Dataset.

        Looking a few jobs past the head of the queue lets an idle worker take a fold it already holds
        instead of rebinning another; beyond that window the queue stays first come, first served.
        """
        with self._lock:
            while len(self._pool) < self.workers and (self._queue or self.prestart) and not self._closed:
                try:
                    self._pool.append(self._spawn())
                except Exception as error:  # noqa: BLE001 - e.g. the fork server was killed; it restarts next time
                    if not self._queue:
                        log.warning("could not prestart a worker process: %r", error)
                        break
                    job = self._queue.popleft()
                    job.future.set_exception(WorkerCrashed(f"could not start a worker process: {error!r}"))
            idle = [w for w in self._pool if w.job is None]
            lookahead = 4 * self.workers
            while idle and self._queue:
                window = list(itertools.islice(self._queue, lookahead))
                worker, job = next(((w, j) for j in window for w in idle if j.affinity in w.cached),
                                   (next((w for w in idle if not w.cached), idle[0]), self._queue[0]))
                self._queue.remove(job)
                idle.remove(worker)
                worker.job = job
                worker.cached.add(job.affinity)
                try:
                    worker.conn.send(job.request)
                except (BrokenPipeError, OSError):
                    pass  # the sentinel reports the dead worker on the next wait

    def _dispatch_loop(self) -> None:
        while True:
            try:
                if not self._dispatch_once():
                    return
            except Exception:  # noqa: BLE001 - the dispatcher must outlive any single failure
                log.exception("worker pool dispatcher error; continuing")

    def _dispatch_once(self) -> bool:
        """One round: assign work, wait for a result, a death or a wake-up. False once the pool is closed."""
        self._assign()
        with self._lock:
            if self._closed:
                return False
            waitables: dict[Any, _Worker] = {}
            for worker in self._pool:
                waitables[worker.process.sentinel] = worker
                if worker.job is not None:
                    waitables[worker.conn] = worker
        ready = wait([self._wake_r, *waitables], timeout=1.0)
        if self._wake_r in ready:
            os.read(self._wake_r, 4096)
        for handle in ready:
            if handle is self._wake_r:
                continue
            worker = waitables[handle]
            if handle is worker.conn:
                self._collect(worker)
            elif not worker.process.is_alive():
                self._bury(worker)
        return True

    def _collect(self, worker: _Worker) -> None:
        try:
            reply = worker.conn.recv()
        except (EOFError, OSError):
            self._bury(worker)
            return
        job, worker.job = worker.job, None
        if job is None or job.future.done():
            return
        if reply[0] == "ok":
            job.future.set_result(reply[1])
        else:
            _, kind, message = reply
            job.future.set_exception(UserInputError(message) if kind == "user" else WorkerTaskError(kind, message))

    def _bury(self, worker: _Worker) -> None:
        """A worker died: fail its job (unless it was cancelled on purpose) and drop it; a new one replaces it."""
        with self._lock:
            if worker not in self._pool:
                return
            self._pool.remove(worker)
        worker.process.join(timeout=1)
        job = worker.job
        if job is not None and not job.future.done():
            code = worker.process.exitcode
            if job.cancelled:
                job.future.set_exception(StopRequested("stopped"))
            else:
                self.crashes += 1
                job.future.set_exception(WorkerCrashed(
                    f"worker process {worker.process.pid} died with exit code {code} while training fold "
                    f"{job.request.fold}{_death_cause(code)}"))
        worker.conn.close()


def _death_cause(exitcode: int | None) -> str:
    """What a worker's exit code says about its death, for the trial's error message.

    A negative exit code is the signal that ended the process (multiprocessing's convention). SIGKILL is
    what Linux's out-of-memory killer sends, so that is the likely cause when nobody stopped the run.
    """
    if exitcode is None or exitcode >= 0:
        return ""
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        return ""
    if name == "SIGKILL":
        return (f" ({name}: killed from outside, most often by the kernel's out-of-memory killer; each worker "
                "holds the data, so fewer --workers need less memory)")
    if name in ("SIGSEGV", "SIGABRT", "SIGBUS", "SIGILL", "SIGFPE"):
        return f" ({name}: a crash inside native code)"
    return f" ({name})"


def _shutdown(worker: _Worker) -> None:
    try:
        worker.conn.send(None)
    except (BrokenPipeError, OSError):
        pass
    worker.process.join(timeout=2)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join(timeout=2)
    worker.conn.close()
