"""The SageMaker fold runner: one training job per fold, on the coordinator's own image and settings.

Inside a coordinator training job (started by the tuner once per hyperparameter combination) this
launches the trial's fold jobs, waits for them and returns their scores. What it guarantees:

- **Idempotent.** Fold-job names are deterministic (`aws.fold_jobs.fold_job_name`). A create that finds
  its name taken (ResourceInUse) describes the job and adopts it if it is ours (same hyperparameters,
  image, role, output path, instance type): a coordinator restarted by SageMaker's RetryStrategy
  re-attaches to its folds instead of duplicating them. A job of the same name that is NOT ours is never
  touched: the trial fails with a message naming the job and what differs. A previous attempt's fold
  that ended Failed or Stopped is started again under the next attempt's name (`-r2`, ...).
- **At the API's pace.** Creates are spread with jittered gaps (about one per second, the account's
  CreateTrainingJob rate), botocore's adaptive retry mode absorbs throttling, and if a call is still
  throttled after botocore's attempts the runner backs off with full jitter and tries again (safe,
  because a repeated create is adopted, not duplicated).
- **Prompt, cheap waiting.** Polls are DescribeTrainingJob by name. Until the first fold finishes,
  each poll describes one fold, the least recently seen: folds that started within seconds of each
  other finish together, so any one of them shows when the end is near, at 1/K of the calls. The
  interval is a small share of the time the folds have run (quick at first, backing off to at most
  `poll_max`; the share bounds how much polling can add to the trial), jittered. From the first finish
  on, every running fold is described each poll, quickly. The loop ends as soon as every fold is
  terminal, or at a deadline taken from the coordinator's own StoppingCondition (MaxRuntimeInSeconds
  minus the time already used, minus a margin to stop cleanly).
- **Safe to stop.** `stop()` sends StopTrainingJob to every fold job not known to be finished, with a
  short-retry client and a time budget well inside SageMaker's 120 s SIGTERM grace; one failed fold
  stops its siblings and fails the trial with that fold's FailureReason.
- **Simulatable.** All waiting goes through an injectable `Clock` and all randomness through an
  injectable `random.Random`; all AWS calls through `TrainingJobsApi` over duck-typed boto3-shaped
  clients.
"""

from __future__ import annotations

import logging
import os
import random
import tarfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, Protocol

from warmcv.aws.fold_jobs import (
    MAX_ATTEMPTS,
    FoldJobTemplate,
    identity_differences,
)
from warmcv.aws.fold_results import (
    metrics_from_archive,
    output_archive_uri,
    result_from_final_metrics,
    result_from_metrics,
)
from warmcv.aws.training_jobs import (
    AccessDenied,
    ApiError,
    JobExists,
    JobNotFound,
    NotStoppable,
    QuotaExceeded,
    RequestRejected,
    TrainingJobsApi,
    TransientError,
)
from warmcv.clock import SYSTEM_CLOCK, Clock
from warmcv.contract import ContainerPaths
from warmcv.cv import FoldResult, FoldRunner, FoldTask
from warmcv.declarations import HyperparameterValues
from warmcv.errors import FoldFailed, UserInputError

log = logging.getLogger(__name__)

TIMING_ENV = "WARMCV_SAGEMAKER_TIMING"
REQUIRED_PERMISSIONS = ("sagemaker:CreateTrainingJob, sagemaker:DescribeTrainingJob, sagemaker:StopTrainingJob, "
                        "sagemaker:AddTags, sagemaker:ListTags, iam:PassRole on its own role, and s3:GetObject "
                        "(plus kms:Decrypt if encrypted) on the output path")
_CONNECTION_CODES = ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError",
                     "ReadTimeoutError", "ProxyConnectionError")


class FoldsTimedOut(UserInputError):
    """The folds did not finish before the coordinator's own MaxRuntimeInSeconds would end it."""


@dataclass(frozen=True)
class Timing:
    """Every interval the runner waits on, in seconds. Override with WARMCV_SAGEMAKER_TIMING="key=value,...".

    The defaults follow the API's limits: about one CreateTrainingJob per second per account, and
    polls that add at most `poll_fraction` of the trial's running time to its end.
    """

    create_interval: float = 1.0  # least gap between this coordinator's creates (the account's ~1/s)
    jitter: float = 0.3  # every wait is multiplied by a random factor in [1 - jitter, 1 + jitter]
    poll_min: float = 5.0  # the first polls (one fold each, round robin)
    poll_fraction: float = 0.05  # then every this share of the time since the first fold job was created
    poll_max: float = 60.0
    poll_finish: float = 2.0  # once one fold has finished, all others are polled this often (then backing off)
    retry_min: float = 2.0  # our backoff after botocore's own retries gave up on a transient error
    retry_max: float = 30.0
    stop_budget: float = 60.0  # stop() starts no stop call after this (SageMaker kills 120 s after SIGTERM)
    deadline_margin: float = 90.0  # stop the folds this long before the coordinator's MaxRuntime is up
    local_check: float = 1.0  # how often the in-process fold is checked while it trains
    not_found_grace: float = 60.0  # a just-created job may briefly be unknown to Describe

    @classmethod
    def parse(cls, text: str | None) -> Timing:
        if not text:
            return cls()
        names = {f.name for f in fields(cls)}
        changes: dict[str, float] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            try:
                number = float(value)
            except ValueError:
                number = -1.0
            if not sep or key not in names or number < 0:
                raise UserInputError(
                    f"{TIMING_ENV}={text!r}: expected comma-separated name=seconds with names from "
                    f"{', '.join(sorted(names))}"
                )
            changes[key] = number
        return replace(cls(), **changes)


@dataclass
class FoldJob:
    """One fold's progress: which job runs it, what was last seen, whether we asked it to stop."""

    task: FoldTask
    attempt: int = 1
    name: str | None = None
    request: dict[str, Any] | None = None
    state: str = "waiting"  # waiting | creating | running | done (in_process folds: waiting | done)
    in_process: bool = False  # trained by the coordinator itself, not by a job
    status: str = ""
    secondary: str = ""
    created_at: float = 0.0
    seen_at: float = 0.0  # when it was last described
    stop_sent: bool = False
    stop_rechecked: bool = False
    adopted: bool = False
    reused_pool: bool = False
    result: FoldResult | None = None


class LocalFold(Protocol):
    """A fold the coordinator trains itself: `future` (done/exception/result -> metrics dict), `started` on the
    runner's clock, `cancel()`, `close()`. `_InProcessFold` in a container; a simulator passes its own."""

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
        self.future = self.pool.submit(self.group, WorkRequest(str(data_dir), dict(task.hyperparameters), task.fold))

    def cancel(self) -> None:
        self.pool.cancel(self.group)

    def close(self) -> None:
        self.pool.close()


def region_from_arn(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) < 6 or not parts[3]:
        raise UserInputError(f"TRAINING_JOB_ARN={arn!r} is not a training job ARN (arn:aws:sagemaker:<region>:...)")
    return parts[3]


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


class SageMakerFoldRunner(FoldRunner):
    name = "sagemaker"

    def __init__(self, api: TrainingJobsApi, template: FoldJobTemplate, *, clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None, timing: Timing | None = None, deadline: float | None = None,
                 max_runtime: int | None = None, local_data_dir: Path | None = None,
                 local_fold: Callable[[FoldTask, Clock], LocalFold] | None = None):
        """`deadline` is on `clock.monotonic()` (derived from the coordinator's `max_runtime`, for messages);
        `local_data_dir` makes the coordinator train fold 0 itself, in a worker process; `local_fold` starts
        that fold some other way (a simulator's timed stand-in) and also turns it on."""
        self.api = api
        self.template = template
        self.clock = clock
        self.rng = rng or random.Random()
        self.timing = timing or Timing()
        self.deadline = deadline
        self.max_runtime = max_runtime
        self.local_data_dir = local_data_dir
        self.local_fold = local_fold
        self._folds: list[FoldJob] = []
        self._local: LocalFold | None = None
        self._copy_user_tags = True
        self._first_finish: float | None = None
        self._polling_since = 0.0

    # -- construction inside a training job ------------------------------------------------------------
    @classmethod
    def from_environment(cls, hps: HyperparameterValues, paths: ContainerPaths,
                         clock: Clock = SYSTEM_CLOCK) -> SageMakerFoldRunner:
        """Discover the coordinator job from TRAINING_JOB_NAME / TRAINING_JOB_ARN and build the runner."""
        from warmcv.aws.clients import coordinator_clients

        name, arn = os.environ.get("TRAINING_JOB_NAME"), os.environ.get("TRAINING_JOB_ARN")
        if not name or not arn:
            raise UserInputError(
                "fold_runner=sagemaker launches fold jobs from inside a SageMaker training job, but "
                "TRAINING_JOB_NAME and TRAINING_JOB_ARN are not set, so this is not one; use fold_runner=local "
                "(or auto, which picks local here)"
            )
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
        try:
            me = _with_retries(lambda attempt: api.describe_training_job(name, prompt=attempt == 1), clock, rng,
                               timing)
        except TransientError as error:
            if error.code in _CONNECTION_CODES:
                raise UserInputError(
                    f"coordinator job {name} cannot reach the SageMaker API: {error}. The coordinator needs "
                    "outbound access to the SageMaker API: no network isolation (EnableNetworkIsolation=false); in "
                    "a VPC, a NAT gateway or a com.amazonaws.<region>.sagemaker.api interface endpoint (and S3 "
                    "access for the fold results)"
                ) from None
            raise UserInputError(f"could not describe the coordinator job {name}: {error}") from None
        except AccessDenied as error:
            raise UserInputError(_permission_message(error)) from None
        user_tags: list[dict[str, str]] = []
        try:
            user_tags = _with_retries(lambda attempt: api.list_tags(me["TrainingJobArn"]), clock, rng, timing)
        except ApiError as error:
            log.warning("could not read the coordinator's tags (%s); fold jobs get warmcv's tags only", error)
        remaining = cls._remaining_runtime(me, clock)
        deadline = None
        if remaining is not None:
            deadline = clock.monotonic() + remaining - timing.deadline_margin
            log.info("coordinator runtime left: %.0f s (MaxRuntimeInSeconds %s); folds must finish within %.0f s",
                     remaining, me["StoppingCondition"].get("MaxRuntimeInSeconds"),
                     max(0.0, remaining - timing.deadline_margin))
        template = FoldJobTemplate.from_parent(me, hps["keep_alive_seconds"], user_tags,
                                               max_runtime_seconds=int(remaining) if remaining is not None else None)
        for note in template.notes:
            log.info("%s", note)
        return cls(api, template, clock=clock, rng=rng, timing=timing, deadline=deadline,
                   max_runtime=(me.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"),
                   local_data_dir=local_data_dir, local_fold=local_fold)

    @staticmethod
    def _remaining_runtime(me: Mapping[str, Any], clock: Clock) -> float | None:
        limit = (me.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        started = _epoch(me.get("TrainingStartTime")) or _epoch(me.get("CreationTime"))
        if not limit or started is None:
            return None
        return float(limit) - max(0.0, clock.time() - started)

    @property
    def trains_own_fold(self) -> bool:
        return self.local_data_dir is not None or self.local_fold is not None

    # -- the FoldRunner interface ----------------------------------------------------------------------
    def describe(self) -> str:
        resources = self.template.base.get("ResourceConfig", {})
        jobs = [f for f in self._folds if not f.in_process]
        text = (f"sagemaker ({len(jobs)} fold jobs on {resources.get('InstanceCount', 1)} x "
                f"{resources.get('InstanceType', '?')}, keep-alive {self.template.keep_alive_seconds} s")
        if self.trains_own_fold:
            text += ", fold 0 trained by the coordinator"
        if jobs:
            text += f", {sum(f.reused_pool for f in jobs)} reused a warm pool, {sum(f.adopted for f in jobs)} adopted"
        return f"{text}; API calls: {self.api.calls.summary()})"

    def run(self, tasks: Sequence[FoldTask]) -> list[FoldResult]:
        self._folds = [FoldJob(task) for task in tasks]
        self._first_finish = None
        if self.trains_own_fold and self._folds:
            self._folds[0].in_process = True
            if self.local_fold is not None:
                self._local = self.local_fold(tasks[0], self.clock)
            else:
                assert self.local_data_dir is not None
                self._local = _InProcessFold(self.local_data_dir, tasks[0], self.clock)
            log.info("fold %d: trained by the coordinator itself", tasks[0].fold)
        queue = deque(f for f in self._folds if not f.in_process)
        now = self.clock.monotonic()
        next_create = now
        create_failures = poll_failures = 0
        next_poll: float | None = None
        while True:
            now = self.clock.monotonic()
            self._check_deadline(now)
            self._check_local()
            if queue and now >= next_create:
                fold = queue[0]
                try:
                    self._launch(fold)
                except TransientError as error:
                    create_failures += 1
                    delay = self._backoff(create_failures)
                    log.warning("creating fold %d's job failed (%s); trying again in %.1f s", fold.task.fold,
                                error, delay)
                    next_create = now + delay
                    continue
                create_failures = 0
                queue.popleft()
                # Never below the account's pace (about 1/s), jittered upwards so coordinators drift apart.
                next_create = now + self.timing.create_interval * self.rng.uniform(1.0, 1.0 + self.timing.jitter)
                if next_poll is None and fold.state == "running":
                    self._polling_since = now
                    next_poll = now + self._jittered(self.timing.poll_min)
                continue
            running = [f for f in self._folds if f.state == "running"]
            if running and next_poll is not None and now >= next_poll:
                throttled = self._poll(running, now)
                poll_failures = poll_failures + 1 if throttled else 0
                interval = self._backoff(poll_failures) if throttled else self._poll_interval(now)
                next_poll = now + self._jittered(interval)
            if all(f.state == "done" for f in self._folds):
                break
            self._sleep_until(now, next_create if queue else None,
                              next_poll if any(f.state == "running" for f in self._folds) else None)
        log.info("all %d folds done; API calls for this trial: %s", len(self._folds), self.api.calls.summary())
        return [f.result for f in self._folds if f.result is not None]

    def stop(self) -> None:
        """StopTrainingJob on every fold job not known to be finished (idempotent, bounded in time).

        Every fold is tried once before any is retried, so one hanging or throttled call cannot use up the
        budget of the others; no call starts after `stop_budget`.
        """
        if self._local is not None:
            self._local.cancel()
        pending = [f for f in self._folds if f.name and f.state in ("creating", "running") and not f.stop_sent]
        if not pending:
            return
        targets = list(pending)
        budget_end = self.clock.monotonic() + self.timing.stop_budget
        rounds = 0
        while pending:
            pending = [f for f in pending if self.clock.monotonic() >= budget_end or not self._stop_once(f)]
            if not pending:
                break
            if self.clock.monotonic() >= budget_end:
                log.error("stop budget of %.0f s used up: %s not stopped; they run until their own "
                          "MaxRuntimeInSeconds", self.timing.stop_budget, ", ".join(str(f.name) for f in pending))
                break
            rounds += 1
            self.clock.sleep(min(self._backoff(rounds), max(0.0, budget_end - self.clock.monotonic())))
        stopped = [f.name for f in targets if f.stop_sent]
        log.info("asked %d fold job(s) to stop: %s; API calls for this trial: %s", len(stopped),
                 ", ".join(str(n) for n in stopped), self.api.calls.summary())

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
            self._local = None

    # -- creating ----------------------------------------------------------------------------------------
    def _launch(self, fold: FoldJob) -> None:
        """Create the fold's job, or adopt the job of the same name that a previous attempt created."""
        while True:
            if fold.attempt > MAX_ATTEMPTS:
                self._fail(fold, f"no attempt of fold {fold.task.fold} succeeded in {MAX_ATTEMPTS} coordinator "
                                 f"attempts (last job {fold.name})")
            request = self.template.request(fold.task.fold, fold.task.worker_hyperparameters(), fold.attempt,
                                            copy_user_tags=self._copy_user_tags)
            fold.name, fold.request, fold.state = request["TrainingJobName"], request, "creating"
            try:
                self.api.create_training_job(request)
            except JobExists:
                if self._adopt(fold, request):
                    return
                fold.attempt += 1
                continue
            except QuotaExceeded as error:
                fold.state = "waiting"  # refused: no job exists to stop
                self.stop()
                raise UserInputError(self._quota_message(fold, error)) from None
            except AccessDenied as error:
                fold.state = "waiting"
                self.stop()
                raise UserInputError(_permission_message(error)) from None
            except RequestRejected as error:
                fold.state = "waiting"
                if self._copy_user_tags and self.template.user_tags and "tag" in error.aws_message.lower():
                    log.warning("SageMaker rejected the fold job's copied tags (%s); creating fold jobs with "
                                "warmcv's tags only", error.aws_message)
                    self._copy_user_tags = False
                    continue
                self.stop()
                raise UserInputError(f"SageMaker rejected fold job {fold.name}: {error.code}: "
                                     f"{error.aws_message}") from None
            fold.state, fold.created_at = "running", self.clock.monotonic()
            log.info("fold %d: created training job %s", fold.task.fold, fold.name)
            return

    def _adopt(self, fold: FoldJob, request: Mapping[str, Any]) -> bool:
        """True if the existing job is ours and still useful; False if a new attempt should be made."""
        try:
            existing = self.api.describe_training_job(str(fold.name))
        except JobNotFound as error:  # exists for Create, not yet for Describe: ask again shortly
            raise TransientError(error.operation, error.code, error.aws_message) from None
        differences = identity_differences(existing, request)
        if differences:
            foreign = fold.name
            fold.name, fold.state = None, "waiting"  # not ours: stop() must never touch it
            self.stop()
            raise UserInputError(
                f"a training job named {foreign} already exists but was not created by this coordinator for "
                f"fold {fold.task.fold} (its {', '.join(differences)} differ from this trial's). warmcv leaves that "
                f"job alone. Fold job names derive from the coordinator's name ({self.template.parent}); start the "
                "tuning job (or coordinator) under a name not used before"
            )
        status = existing.get("TrainingJobStatus", "")
        if status in ("Failed", "Stopped", "Stopping"):
            log.warning("fold %d: job %s from a previous coordinator attempt ended %s (%s); starting attempt %d",
                        fold.task.fold, fold.name, status, existing.get("FailureReason", "no reason given"),
                        fold.attempt + 1)
            return False
        fold.adopted, fold.state, fold.created_at = True, "running", self.clock.monotonic()
        log.info("fold %d: adopted existing training job %s (%s), created by a previous attempt of this coordinator",
                 fold.task.fold, fold.name, status)
        self._update(fold, existing)
        return True

    def _quota_message(self, fold: FoldJob, error: QuotaExceeded) -> str:
        resources = self.template.base.get("ResourceConfig", {})
        quota = error.quota or f"{resources.get('InstanceType')} for training job usage"
        jobs = sum(1 for f in self._folds if not f.in_process)
        return (f"SageMaker refused fold job {fold.name}: ResourceLimitExceeded: {error.aws_message} Raise the "
                f"Service Quotas (Amazon SageMaker) quota '{quota}': each trial runs {jobs} fold jobs of "
                f"{resources.get('InstanceCount', 1)} instance(s) at once, times the tuner's max_parallel_jobs, "
                "plus the coordinators themselves (and the warm pools' instances count too); or lower "
                "max_parallel_jobs, or set coordinator_trains_fold=true")

    # -- waiting -------------------------------------------------------------------------------------------
    def _poll(self, running: list[FoldJob], now: float) -> bool:
        """One poll tick. Returns True if throttled.

        Until a fold has finished, a tick describes ONE fold, the least recently seen: folds that started
        together finish together, so any of them shows when the end is near, at 1/K of the calls. From the
        first finish on, a tick describes every fold still running.
        """
        due = list(running) if self._first_finish is not None else [min(running, key=lambda f: f.seen_at)]
        while due:
            fold = due.pop(0)
            fold.seen_at = now
            try:
                description = self.api.describe_training_job(str(fold.name))
            except TransientError as error:
                log.info("describing %s failed (%s); backing off", fold.name, error)
                return True
            except JobNotFound:
                if self.clock.monotonic() - fold.created_at >= self.timing.not_found_grace:
                    self._fail(fold, f"fold job {fold.name} disappeared (DescribeTrainingJob: not found)")
                continue
            if self._update(fold, description) and self._first_finish is None:
                # Its siblings started within seconds of it: look at all of them now, and quickly from now on.
                self._first_finish = now
                due = [f for f in running if f.state == "running" and f is not fold]
        return False

    def _update(self, fold: FoldJob, description: Mapping[str, Any]) -> bool:
        """Record what a describe said; True when the fold reached a terminal state now."""
        status = description.get("TrainingJobStatus", "")
        secondary = description.get("SecondaryStatus", "")
        if (status, secondary) != (fold.status, fold.secondary):
            log.info("fold %d: %s %s/%s", fold.task.fold, fold.name, status, secondary)
            fold.status, fold.secondary = status, secondary
        if (description.get("WarmPoolStatus") or {}).get("Status") == "InUse" and not fold.reused_pool:
            fold.reused_pool = True
            log.info("fold %d: %s runs on a reused warm pool", fold.task.fold, fold.name)
        if status == "Completed":
            fold.result = self._result(fold, description)
            fold.state = "done"
            log.info("fold %d: %s completed in %.0f s (training %s s, billable %s s)", fold.task.fold, fold.name,
                     fold.result.wall_seconds, description.get("TrainingTimeInSeconds", "?"),
                     description.get("BillableTimeInSeconds", "?"))
            return True
        if status == "Failed":
            self._fail(fold, f"fold job {fold.name} failed: {description.get('FailureReason') or 'no reason given'}")
        if status in ("Stopped", "Stopping") and not fold.stop_sent:
            if secondary == "MaxRuntimeExceeded":
                limit = (description.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds", "?")
                self._fail(fold, f"fold job {fold.name} reached its MaxRuntimeInSeconds ({limit} s, capped at the "
                                 "coordinator's remaining runtime); raise MaxRuntimeInSeconds")
            self._fail(fold, f"fold job {fold.name} was stopped by someone other than its coordinator "
                             f"({description.get('FailureReason') or 'no reason given'})")
        return False

    def _result(self, fold: FoldJob, description: Mapping[str, Any]) -> FoldResult:
        extra = {"wall_seconds": self.clock.monotonic() - fold.created_at, "executor": str(fold.name)}
        uri = output_archive_uri(description)
        try:
            return result_from_metrics(metrics_from_archive(self.api.read_s3_object(uri)), fold.task.fold, **extra)
        except (ApiError, KeyError, ValueError, TypeError, tarfile.TarError, UnicodeDecodeError) as error:
            log.warning("fold %d: could not read metrics.json from %s (%s); using the job's FinalMetricDataList "
                        "(log-scraped scores; best iteration taken as num_boost_round)", fold.task.fold, uri, error)
            try:
                return result_from_final_metrics(description, fold.task.fold, **extra)
            except (KeyError, ValueError, UserInputError) as fallback:
                self._fail(fold, f"fold job {fold.name} completed but its scores cannot be read: {error}; "
                                 f"{fallback}")

    def _check_local(self) -> None:
        if self._local is None or not self._folds or self._folds[0].state == "done":
            return
        future = self._local.future
        if not future.done():
            return
        fold = self._folds[0]
        error = future.exception()
        if error is not None:
            self._fail(fold, f"fold {fold.task.fold} (trained by the coordinator) failed: {error}")
        summary = future.result()
        fold.result = FoldResult.from_summary(summary, wall_seconds=self.clock.monotonic() - self._local.started,
                                              executor=f"coordinator ({summary.get('executor', 'in-process')})")
        fold.state = "done"
        log.info("fold %d: trained by the coordinator in %.1f s", fold.task.fold, fold.result.seconds)

    def _check_deadline(self, now: float) -> None:
        if self.deadline is None or now < self.deadline:
            return
        running = [str(f.name) for f in self._folds if f.state in ("creating", "running")]
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

    # -- stopping ------------------------------------------------------------------------------------------
    def _stop_once(self, fold: FoldJob) -> bool:
        """One StopTrainingJob; True when the fold needs no further attempt."""
        try:
            self.api.stop_training_job(str(fold.name))
        except (NotStoppable, JobNotFound) as error:
            if isinstance(error, JobNotFound) and fold.state == "creating" and not fold.stop_rechecked:
                # The create may have been cut short by the signal after the request went out: the job can
                # appear a moment later. Look once more before concluding it was never created.
                fold.stop_rechecked = True
                return False
        except TransientError as error:
            log.warning("stopping fold job %s failed (%s); will retry", fold.name, error)
            return False
        except ApiError as error:
            log.error("could not stop fold job %s: %s", fold.name, error)
            return True
        fold.stop_sent = True  # asked to stop, or already ended
        return True

    # -- timing ----------------------------------------------------------------------------------------------
    def _jittered(self, seconds: float) -> float:
        j = self.timing.jitter
        return max(0.0, seconds * self.rng.uniform(1.0 - j, 1.0 + j))

    def _backoff(self, failures: int) -> float:
        """Full-jitter exponential backoff (the AWS Architecture Blog's recommendation)."""
        ceiling = min(self.timing.retry_max, self.timing.retry_min * 2 ** max(0, failures - 1))
        return self.rng.uniform(self.timing.retry_min / 2, ceiling)

    def _poll_interval(self, now: float) -> float:
        """A share of the time the folds have run (of the time since the first one finished, once one has)."""
        if self._first_finish is not None:
            since, floor = now - self._first_finish, self.timing.poll_finish
        else:
            since, floor = now - self._polling_since, self.timing.poll_min
        return min(self.timing.poll_max, max(floor, self.timing.poll_fraction * since))

    def _sleep_until(self, now: float, *wakes: float | None) -> None:
        candidates = [w for w in wakes if w is not None]
        if self._local is not None and self._folds and self._folds[0].state != "done":
            candidates.append(now + self.timing.local_check)
        if self.deadline is not None:
            candidates.append(self.deadline)
        if not candidates:
            return
        self.clock.sleep(max(0.0, min(candidates) - now))


def _with_retries(call: Any, clock: Clock, rng: random.Random, timing: Timing, attempts: int = 6) -> Any:
    """Self-discovery is not urgent: ride out throttling with jittered backoff (connection errors fail at once).

    The first attempt goes to the prompt client, so an unreachable API (network isolation) is reported
    within seconds; later attempts use the patient one, whose adaptive mode slows down under throttling.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call(attempt)
        except TransientError as error:
            if error.code in _CONNECTION_CODES or attempt == attempts:
                raise
            delay = rng.uniform(timing.retry_min / 2, min(timing.retry_max, timing.retry_min * 2 ** (attempt - 1)))
            log.info("%s; trying again in %.1f s", error, delay)
            clock.sleep(delay)
    raise AssertionError("unreachable")


def _permission_message(error: ApiError) -> str:
    return (f"the coordinator's role may not call {error.operation} ({error.aws_message}). A coordinator needs "
            f"{REQUIRED_PERMISSIONS}; see docs/sagemaker-fold-runner.md")
