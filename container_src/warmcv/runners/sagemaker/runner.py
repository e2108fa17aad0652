"""The SageMaker fold runner's loop: one training job per fold, on the coordinator's own image and settings.

Inside a coordinator training job (started by the tuner once per hyperparameter combination) this
launches the trial's fold jobs (`folds.FoldJobs`), waits for them and returns their scores:

- **At the API's pace.** Creates go out at least `create_interval` apart, jittered upwards; botocore's
  adaptive retry mode absorbs throttling and, past its attempts, the runner backs off with full jitter
  (safe: a repeated create is adopted, not duplicated). ResourceLimitExceeded is routine at M x K
  instances (pooled instances count toward the quota, released pools take minutes to drain): the runner
  retries with jittered backoff on the scale quota frees up, for `quota_patience` or until the
  coordinator's deadline, then fails naming the Service Quotas entry to raise.
- **Prompt, cheap waiting.** Every running fold is looked at on every tick, for one ListTrainingJobs
  (then a describe only for a fold that ended). The interval is a small share of the time the folds have
  run (quick at first, backing off to `poll_max`), jittered; from the first finish on, quick again,
  because folds that started together end together. The loop ends as soon as every fold is done, or at
  the deadline taken from the coordinator's StoppingCondition (less a margin to stop cleanly).
- **Safe to stop.** `stop()` sends StopTrainingJob to every fold job not known to be finished, within a
  budget inside SageMaker's 120 s SIGTERM grace; one failed fold stops its siblings and fails the trial
  with that fold's FailureReason.
- **Simulatable.** All waiting goes through an injectable `Clock`, all randomness through an injectable
  `random.Random`, all AWS calls through `TrainingJobsApi` over duck-typed boto3-shaped clients.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, Protocol

from warmcv.aws.fold_jobs import FoldJobTemplate, fold_name_filter
from warmcv.aws.training_jobs import QuotaExceeded, TrainingJobsApi, TransientError
from warmcv.clock import SYSTEM_CLOCK, Clock, sleep_unless
from warmcv.contract import ContainerPaths
from warmcv.cv import FoldResult, FoldRunner, FoldTask
from warmcv.cv.pruning import TrialPruned
from warmcv.declarations import HyperparameterValues
from warmcv.errors import FoldFailed, StopRequested, UserInputError
from warmcv.runners.sagemaker.discovery import discover_coordinator, job_from_environment, region_from_arn
from warmcv.runners.sagemaker.folds import FoldJob, FoldJobs, FoldProblem, TrialRefused
from warmcv.runners.sagemaker.timing import TIMING_ENV, Pacer, Timing

log = logging.getLogger(__name__)
# A wake-up computed as now + (t - now) may land a hair before t in floating point: such a moment counts as t.
TIME_TOLERANCE = 1e-6


class FoldsTimedOut(UserInputError):
    """The folds did not finish before the coordinator's own MaxRuntimeInSeconds would end it."""


class LocalFold(Protocol):
    """A fold the coordinator trains itself: `future` (done/exception/result -> metrics dict), `started` on the
    runner's clock, `cancel()`, `close()`. `_InProcessFold` in a container; a simulator passes its own, which
    may also say when it will be done (`done_at` on the runner's clock): the runner then looks at it at that
    moment instead of every `local_check` seconds (in simulated time every look is a thread switch)."""

    future: Any
    started: float

    def cancel(self) -> None: ...

    def close(self) -> None: ...


class _InProcessFold:
    """The fold the coordinator trains itself, in a warm worker process (cancellable, crash-isolated)."""

    def __init__(self, data_dir: Path, task: FoldTask, clock: Clock):
        from warmcv.runners.pool import WarmWorkerPool
        from warmcv.runners.worker_process import WorkRequest

        self.pool = WarmWorkerPool(workers=1)
        self.group = ("coordinator-fold", task.fold)
        self.started = clock.monotonic()
        self.future = self.pool.submit(self.group, WorkRequest(str(data_dir), dict(task.hyperparameters), task.fold,
                                                               keep_predictions=True))

    def cancel(self) -> None:
        self.pool.cancel(self.group)

    def close(self) -> None:
        self.pool.close()


class CreateGate:
    """Creates of several trials in ONE process (the driver's) at the account's pace, without collisions.

    CreateTrainingJob allows about one request a second per account and Region (rules.CREATE_TRAINING_JOB_RATE).
    Coordinators are separate processes and can only space their own creates and absorb the collisions with
    retries; the driver's trials share this gate instead. A trial claims consecutive slots for all its folds
    at once, `interval` apart after the slots already given out: none is throttled, and a trial's folds start
    together rather than interleaved with another trial's (its slowest fold, which ends the trial, starts
    at most K - 1 slots after its first)."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._next = float("-inf")
        self._lock = threading.Lock()

    def claim(self, now: float, count: int = 1) -> list[float]:
        """The times at which the caller may send its next `count` creates."""
        with self._lock:
            first = max(now, self._next)
            slots = [first + i * self.interval for i in range(count)]
            self._next = slots[-1] + self.interval
            return slots

    def sent(self, at: float) -> None:
        """A create went out at `at` (later than its slot, say): no later slot comes within `interval` of it."""
        with self._lock:
            self._next = max(self._next, at + self.interval)


class SageMakerFoldRunner(FoldRunner):
    name = "sagemaker"

    def __init__(self, api: TrainingJobsApi, template: FoldJobTemplate, *, clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None, timing: Timing | None = None, deadline: float | None = None,
                 max_runtime: int | None = None, local_data_dir: Path | None = None,
                 local_fold: Callable[[FoldTask, Clock], LocalFold] | None = None,
                 created_after: datetime | None = None, create_gate: CreateGate | None = None,
                 on_fold: Callable[[FoldResult, FoldTask], None] | None = None):
        """`deadline` is on `clock.monotonic()` (derived from the coordinator's `max_runtime`, for messages);
        `local_data_dir` makes the coordinator train fold 0 itself, in a worker process; `local_fold` starts
        that fold some other way (a simulator's timed stand-in) and also turns it on; `created_after` (the
        coordinator's CreationTime) limits the fold-job listing to jobs created since; `create_gate` paces creates
        together with the other trials of the same process (the driver's) instead of on their own; `on_fold` is
        told of each fold as soon as its result is in (the coordinator prints the running CV mean, the driver's
        pruning check may raise `TrialPruned`, which stops the folds still running)."""
        self.api = api
        self.template = template
        self.clock = clock
        self.rng = rng or random.Random()
        self.timing = timing or Timing()
        self.pacer = Pacer(self.timing, self.rng)
        self.deadline = deadline
        self.max_runtime = max_runtime
        self.local_data_dir = local_data_dir
        self.local_fold = local_fold
        self.create_gate = create_gate
        self.on_fold = on_fold
        self._told: set[int] = set()  # folds whose result on_fold has seen
        self.jobs = FoldJobs(api, template, clock, self.timing, self.pacer, created_after)
        self._local: LocalFold | None = None
        self._first_finish: float | None = None
        self._polling_since = 0.0
        self._quota: tuple[FoldJob, QuotaExceeded, float] | None = None  # a create refused since (fold, error, when)
        # Set by stop(): a trial stopped from another thread (the driver's) leaves its loop at once.
        self._stopped = threading.Event()

    # -- construction inside a training job ------------------------------------------------------------------
    @classmethod
    def from_environment(cls, hps: HyperparameterValues, paths: ContainerPaths,
                         clock: Clock = SYSTEM_CLOCK) -> SageMakerFoldRunner:
        """Discover the coordinator job from TRAINING_JOB_NAME / TRAINING_JOB_ARN and build the runner."""
        from warmcv.aws.clients import coordinator_clients

        name, arn = job_from_environment()
        clients = coordinator_clients(region_from_arn(arn))
        api = TrainingJobsApi(clients.patient, s3=clients.s3, prompt=clients.prompt)
        data_dir = None
        if hps["coordinator_trains_fold"]:
            from warmcv.contract import data_channel

            data_dir = data_channel(paths)
        return cls.discover(api, name, hps, clock=clock, timing=Timing.parse(os.environ.get(TIMING_ENV)),
                            local_data_dir=data_dir)

    @classmethod
    def discover(cls, api: TrainingJobsApi, name: str, hps: HyperparameterValues, *, clock: Clock = SYSTEM_CLOCK,
                 timing: Timing | None = None, rng: random.Random | None = None,
                 local_data_dir: Path | None = None,
                 local_fold: Callable[[FoldTask, Clock], LocalFold] | None = None) -> SageMakerFoldRunner:
        """DescribeTrainingJob on the coordinator itself (and ListTags), then the fold-job template."""
        timing = timing or Timing()
        rng = rng or random.Random()
        me = discover_coordinator(api, name, hps, clock, timing, rng)
        return cls(api, me.template, clock=clock, rng=rng, timing=timing, deadline=me.deadline,
                   max_runtime=me.max_runtime, local_data_dir=local_data_dir, local_fold=local_fold,
                   created_after=me.created)

    @property
    def trains_own_fold(self) -> bool:
        return self.local_data_dir is not None or self.local_fold is not None

    # -- the FoldRunner interface ----------------------------------------------------------------------------
    def describe(self) -> str:
        resources = self.template.base.get("ResourceConfig", {})
        jobs = self.jobs.jobs
        text = (f"sagemaker ({len(jobs)} fold jobs on {resources.get('InstanceCount', 1)} x "
                f"{resources.get('InstanceType', '?')}, keep-alive {self.template.keep_alive_seconds} s")
        if self.trains_own_fold:
            text += ", fold 0 trained by the coordinator"
        if jobs:
            text += f", {sum(f.reused_pool for f in jobs)} reused a warm pool, {sum(f.adopted for f in jobs)} adopted"
        return f"{text}; API calls: {self.api.calls.summary()})"

    def run(self, tasks: Sequence[FoldTask]) -> list[FoldResult]:
        if self._stopped.is_set():
            raise StopRequested("the trial was stopped before its folds started")
        self.jobs = FoldJobs(self.api, self.template, self.clock, self.timing, self.pacer, self.jobs.created_after)
        self.jobs.start(tasks, fold_name_filter(self.template.parent, [t.fold for t in tasks]))
        self._first_finish, self._quota = None, None
        self._told = set()
        folds = self.jobs.folds
        if self.trains_own_fold and folds:
            folds[0].in_process = True
            if self.local_fold is not None:
                self._local = self.local_fold(tasks[0], self.clock)
            else:
                assert self.local_data_dir is not None
                self._local = _InProcessFold(self.local_data_dir, tasks[0], self.clock)
            log.info("fold %d: trained by the coordinator itself", tasks[0].fold)
        try:
            self._loop(deque(f for f in folds if not f.in_process))
        except FoldProblem as problem:
            self._fail(problem.fold, problem.reason)
        except TrialRefused as refused:
            self.stop()
            raise UserInputError(str(refused)) from None
        except TrialPruned:
            # Stopped by its own pruning check: its folds still running are stopped, and their warm pools left
            # Available, before the search starts the next trial (which would otherwise start them cold).
            self.stop()
            self.jobs.wait_until_ended(self.timing.stop_budget)
            raise
        self.jobs.report_pool_reuse()
        log.info("all %d folds done; API calls for this trial: %s", len(folds), self.api.calls.summary())
        return [f.result for f in folds if f.result is not None]

    def _loop(self, queue: deque[FoldJob]) -> None:
        folds = self.jobs.folds
        now = self.clock.monotonic()
        next_create = now
        create_failures = poll_failures = quota_failures = 0
        next_poll: float | None = None
        slots: deque[float] = deque()  # create slots claimed from the shared gate, if any
        while True:
            if self._stopped.is_set():
                raise StopRequested("the trial was stopped")
            now = self.clock.monotonic()
            self._check_deadline(now)
            self._check_local()
            self._tell_finished()
            if queue and now >= next_create - TIME_TOLERANCE and self.create_gate is not None:
                if not slots:
                    slots.extend(self.create_gate.claim(now, len(queue)))
                if slots[0] > now + TIME_TOLERANCE:
                    next_create = slots[0]
                    continue
                slots.popleft()
                self.create_gate.sent(now)
                next_create = now
            if queue and now >= next_create:
                fold = queue[0]
                try:
                    self.jobs.launch(fold)
                except TransientError as error:
                    create_failures += 1
                    delay = self.pacer.backoff(create_failures)
                    log.warning("creating fold %d's job failed (%s); trying again in %.1f s", fold.task.fold,
                                error, delay)
                    next_create = now + delay
                    slots.clear()  # claimed again once the wait is over
                    continue
                except QuotaExceeded as error:
                    quota_failures += 1
                    next_create = now + self._quota_wait(fold, error, now, quota_failures)
                    slots.clear()
                    continue
                create_failures = quota_failures = 0
                self._quota = None
                queue.popleft()
                next_create = now if self.create_gate is not None else now + self.pacer.create_gap()
                if next_poll is None and fold.state == "running":
                    self._polling_since = now
                    next_poll = now + self.pacer.jittered(self.timing.poll_min)
                continue
            running = [f for f in folds if f.state == "running"]
            if running and next_poll is not None and now >= next_poll:
                throttled, finished = self.jobs.poll(running, now)
                if finished and self._first_finish is None:
                    self._first_finish = now  # its siblings started within seconds of it: look quickly from now on
                self._tell_finished()
                poll_failures = poll_failures + 1 if throttled else 0
                interval = (self.pacer.backoff(poll_failures) if throttled
                            else self.pacer.poll_interval(now, self._polling_since, self._first_finish))
                next_poll = now + self.pacer.jittered(interval)
            if all(f.state == "done" for f in folds):
                return
            self._sleep_until(now, next_create if queue else None,
                              next_poll if any(f.state == "running" for f in folds) else None)

    def _tell_finished(self) -> None:
        """Hand `on_fold` each fold whose result arrived since it was last called (it may raise to end the trial)."""
        if self.on_fold is None:
            return
        for fold in self.jobs.folds:
            if fold.state == "done" and fold.result is not None and fold.task.fold not in self._told:
                self._told.add(fold.task.fold)
                self.on_fold(fold.result, fold.task)

    def stop(self) -> None:
        """StopTrainingJob on every fold job not known to be finished (idempotent, bounded in time). Safe to call
        from another thread than the one running the folds: that one then leaves its loop."""
        self._stopped.set()
        if self._local is not None:
            self._local.cancel()
        self.jobs.stop()

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
            self._local = None

    # -- quotas --------------------------------------------------------------------------------------------------
    def _quota_wait(self, fold: FoldJob, error: QuotaExceeded, now: float, failures: int) -> float:
        """Seconds until the refused create is tried again; TrialRefused once `quota_patience` is used up."""
        if self._quota is None:
            self._quota = (fold, error, now)
            log.warning("SageMaker refused fold %d's job for a quota (%s); trying again with backoff for up to "
                        "%.0f s", fold.task.fold, error.aws_message, self.timing.quota_patience)
        since = self._quota[2]
        give_up = since + self.timing.quota_patience
        if now >= give_up:
            raise TrialRefused(self.jobs.quota_message(fold, error, now - since))
        delay = min(self.pacer.quota_backoff(failures), give_up - now)
        log.info("fold %d: quota still refused (%d times); next try in %.0f s", fold.task.fold, failures, delay)
        self._quota = (fold, error, since)
        return delay

    # -- waiting ----------------------------------------------------------------------------------------------
    def _check_local(self) -> None:
        folds = self.jobs.folds
        if self._local is None or not folds or folds[0].state == "done":
            return
        future = self._local.future
        if not future.done():
            return
        fold = folds[0]
        error = future.exception()
        if error is not None:
            raise FoldProblem(fold, f"fold {fold.task.fold} (trained by the coordinator) failed: {error}")
        summary = future.result()
        fold.result = FoldResult.from_summary(summary, wall_seconds=self.clock.monotonic() - self._local.started,
                                              executor=f"coordinator ({summary.get('executor', 'in-process')})")
        fold.state = "done"
        log.info("fold %d: trained by the coordinator in %.1f s", fold.task.fold, fold.result.seconds)

    def _check_deadline(self, now: float) -> None:
        if self.deadline is None or now < self.deadline:
            return
        if self._quota is not None:
            fold, error, since = self._quota
            raise TrialRefused(self.jobs.quota_message(fold, error, now - since) + "; the coordinator's "
                               "MaxRuntimeInSeconds left no more time to wait")
        running = [str(f.name) for f in self.jobs.folds if f.state in ("creating", "running")]
        self.stop()
        raise FoldsTimedOut(
            f"the folds did not finish within the coordinator's MaxRuntimeInSeconds "
            f"({self.max_runtime or '?'} s, less {self.timing.deadline_margin:.0f} s to stop cleanly); stopped "
            f"{', '.join(running) or 'no jobs'}. "
            "Raise MaxRuntimeInSeconds of the tuning job's training job definition"
        )

    def _fail(self, fold: FoldJob, reason: str) -> NoReturn:
        log.error("%s; stopping the other folds", reason)
        if fold.in_process:
            fold.state = "done"
        fold.stop_sent = True  # it has ended (or is ours to leave): do not stop it again
        self.stop()
        raise FoldFailed(fold.task.fold, reason)

    def _sleep_until(self, now: float, *wakes: float | None) -> None:
        # The clock again, not the loop's `now`: a poll since then took time, and a create slot must not slip by it.
        now = self.clock.monotonic()
        candidates = [w for w in wakes if w is not None]
        folds = self.jobs.folds
        if self._local is not None and folds and folds[0].state != "done":
            done_at = getattr(self._local, "done_at", None)
            candidates.append(max(now, done_at) if done_at is not None else now + self.timing.local_check)
        if self.deadline is not None:
            candidates.append(self.deadline)
        if not candidates:
            return
        sleep_unless(self.clock, self._stopped, max(0.0, min(candidates) - now))
