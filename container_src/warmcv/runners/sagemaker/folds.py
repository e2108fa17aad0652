"""One trial's fold jobs through their lives: created (or adopted), watched, read, stopped.

- **Created or adopted.** Names are deterministic (`aws.fold_jobs.fold_job_name`). A create that finds
  its name taken (ResourceInUse) describes the job and adopts it if it is ours (same hyperparameters,
  image, role, output path, instance type): a coordinator restarted by SageMaker's RetryStrategy
  re-attaches to its folds instead of duplicating them. A job of the same name that is NOT ours is never
  touched. A previous attempt's fold that ended Failed or Stopped is started again as `-r2`, `-r3`, ...
- **Watched, every fold every tick, cheaply.** One ListTrainingJobs (by the fold names' common prefix,
  created since the coordinator) shows every fold's status and warm pool. A completed fold's scores are
  read from its output.tar.gz, whose place its own request decides (its output is always GZIP), so it
  needs no describe; only a fold that failed or is being stopped is described, once, for its
  FailureReason. A role without ListTrainingJobs falls back to describing every running fold each tick,
  and the log says so.
- **Read.** Scores from the fold's metrics.json in output.tar.gz; if that cannot be read, the fold is
  described and its FinalMetricDataList used instead.
- **Warm pools watched.** With a keep-alive, a completed fold whose pool was not kept is reported with the
  quota to raise ('<type> for training warm pool usage', 0 by default: SageMaker then keeps no pool and
  raises no error).
- **Stopped** within a time budget well inside SageMaker's 120 s after SIGTERM.

A fold that cannot succeed raises `FoldProblem`, a trial that cannot go on `TrialRefused`; the runner
stops the siblings and turns them into the coordinator's failure.
"""

from __future__ import annotations

import logging
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from warmcv.aws.fold_jobs import MAX_ATTEMPTS, FoldJobTemplate, identity_differences
from warmcv.aws.fold_results import (
    output_archive_uri,
    result_from_final_metrics,
    result_from_metrics,
    summary_from_archive,
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
from warmcv.clock import Clock
from warmcv.cv import FoldResult, FoldTask
from warmcv.errors import UserInputError
from warmcv.runners.sagemaker.discovery import permission_message
from warmcv.runners.sagemaker.timing import Pacer, Timing
from warmcv.training_service import rules

log = logging.getLogger(__name__)

TERMINAL = ("Completed", "Failed", "Stopped")
KEPT = ("Available", "Reused", "InUse")  # WarmPoolStatus of a job whose pool was kept


class FoldProblem(Exception):
    """A fold cannot succeed; the trial fails with `reason` once the other folds are stopped."""

    def __init__(self, fold: FoldJob, reason: str):
        super().__init__(reason)
        self.fold, self.reason = fold, reason


class TrialRefused(Exception):
    """SageMaker will not run this trial's folds (a quota, a permission, a rejected request); the message says
    what to change."""


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
    seen_at: float = 0.0  # when it was last observed
    stop_sent: bool = False
    stop_rechecked: bool = False
    adopted: bool = False
    reused_pool: bool = False
    pool_kept: bool | None = None  # after it completed with a keep-alive: did SageMaker keep its pool?
    result: FoldResult | None = None


class FoldJobs:
    """The fold jobs of one trial (see the module docstring). `folds` holds every fold, in-process ones too."""

    def __init__(self, api: TrainingJobsApi, template: FoldJobTemplate, clock: Clock, timing: Timing, pacer: Pacer,
                 created_after: datetime | None = None):
        self.api, self.template, self.clock, self.timing, self.pacer = api, template, clock, timing, pacer
        self.created_after = created_after
        self.folds: list[FoldJob] = []
        self.copy_user_tags = True
        self.list_denied = False
        self._name_filter = ""
        self._pool_warned = False

    def start(self, tasks: Sequence[FoldTask], name_filter: str) -> None:
        self.folds = [FoldJob(task) for task in tasks]
        self._name_filter = name_filter

    @property
    def jobs(self) -> list[FoldJob]:
        return [f for f in self.folds if not f.in_process]

    # -- creating -------------------------------------------------------------------------------------------------
    def launch(self, fold: FoldJob) -> None:
        """Create the fold's job, or adopt the job of the same name that a previous attempt created.

        Raises TransientError (try again later), QuotaExceeded (the runner waits for quota) or TrialRefused.
        """
        while True:
            if fold.attempt > MAX_ATTEMPTS:
                raise FoldProblem(fold, f"no attempt of fold {fold.task.fold} succeeded in {MAX_ATTEMPTS} "
                                        f"coordinator attempts (last job {fold.name})")
            request = self.template.request(fold.task.fold, fold.task.worker_hyperparameters(), fold.attempt,
                                            copy_user_tags=self.copy_user_tags)
            fold.name, fold.request, fold.state = request["TrainingJobName"], request, "creating"
            try:
                self.api.create_training_job(request)
            except JobExists:
                if self._adopt(fold, request):
                    return
                fold.attempt += 1
                continue
            except QuotaExceeded:
                fold.state = "waiting"  # refused: no job exists to stop
                raise
            except AccessDenied as error:
                fold.state = "waiting"
                raise TrialRefused(permission_message(error)) from None
            except RequestRejected as error:
                fold.state = "waiting"
                if self.copy_user_tags and self.template.user_tags and "tag" in error.aws_message.lower():
                    log.warning("SageMaker rejected the fold job's copied tags (%s); creating fold jobs with "
                                "warmcv's tags only", error.aws_message)
                    self.copy_user_tags = False
                    continue
                raise TrialRefused(f"SageMaker rejected fold job {fold.name}: {error.code}: "
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
            raise TrialRefused(
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
        self.observe(fold, existing)
        return True

    def quota_message(self, fold: FoldJob, error: QuotaExceeded, waited: float) -> str:
        resources = self.template.base.get("ResourceConfig", {})
        quota = error.quota or rules.training_quota_name(str(resources.get("InstanceType")))
        return (f"SageMaker refused fold job {fold.name}: ResourceLimitExceeded: {error.aws_message} (retried for "
                f"{waited:.0f} s). Raise the Service Quotas (Amazon SageMaker) quota '{quota}': each trial runs "
                f"{len(self.jobs)} fold jobs of {resources.get('InstanceCount', 1)} instance(s) at once, times the "
                "tuner's max_parallel_jobs, plus the coordinators themselves (and the warm pools' instances count "
                "too); or lower max_parallel_jobs, or set coordinator_trains_fold=true")

    # -- watching ---------------------------------------------------------------------------------------------------
    def poll(self, running: list[FoldJob], now: float) -> tuple[bool, int]:
        """One tick over every running fold: (throttled, how many folds finished now)."""
        if self.list_denied:
            return self._poll_by_describe(running, now)
        try:
            summaries = self.api.list_training_jobs(self._name_filter, self.created_after)
        except TransientError as error:
            log.info("listing the fold jobs failed (%s); backing off", error)
            return True, 0
        except AccessDenied as error:
            log.warning("the coordinator's role may not call ListTrainingJobs (%s): polling each fold with "
                        "DescribeTrainingJob instead, %d calls a tick; allow sagemaker:ListTrainingJobs on \"*\" "
                        "(docs/sagemaker-fold-runner.md)", error.aws_message, len(running))
            self.list_denied = True
            return self._poll_by_describe(running, now)
        by_name = {s.get("TrainingJobName"): s for s in summaries}
        finished = 0
        for fold in running:
            fold.seen_at = now
            summary = by_name.get(fold.name)
            if summary is None:
                if now - fold.created_at < self.timing.not_found_grace:
                    continue  # just created: ListTrainingJobs may not show it yet
            elif summary.get("TrainingJobStatus") == "Completed":
                self._note_status(fold, "Completed", summary.get("SecondaryStatus", ""), summary.get("WarmPoolStatus"))
                if self._complete(fold, summary):
                    finished += 1
                    continue
            elif not self._noted(fold, summary):
                continue
            outcome = self._describe(fold, now)
            if outcome is None:
                return True, finished
            finished += outcome
        return False, finished

    def _complete(self, fold: FoldJob, summary: Mapping[str, Any]) -> bool:
        """A completed fold's scores from its output.tar.gz, found from its own request; False if they cannot be
        read that way (then a describe gives the FinalMetricDataList fallback)."""
        assert fold.request is not None
        uri = rules.output_locations(fold.request, str(fold.name))["output"]
        try:
            fold.result = result_from_metrics(summary_from_archive(self.api.read_s3_object(uri)), fold.task.fold,
                                              wall_seconds=self.clock.monotonic() - fold.created_at,
                                              executor=str(fold.name))
        except (ApiError, KeyError, ValueError, TypeError, tarfile.TarError, UnicodeDecodeError) as error:
            log.info("fold %d: %s could not be read (%s); describing the job", fold.task.fold, uri, error)
            return False
        fold.state = "done"
        log.info("fold %d: %s completed in %.0f s", fold.task.fold, fold.name, fold.result.wall_seconds)
        self._check_pool_kept(fold, summary)
        return True

    def _poll_by_describe(self, running: list[FoldJob], now: float) -> tuple[bool, int]:
        finished = 0
        for fold in running:
            fold.seen_at = now
            outcome = self._describe(fold, now)
            if outcome is None:
                return True, finished
            finished += outcome
        return False, finished

    def _describe(self, fold: FoldJob, now: float) -> int | None:
        """Describe one fold and take in what it says: 1 if it finished now, 0 if not, None if throttled."""
        try:
            description = self.api.describe_training_job(str(fold.name))
        except TransientError as error:
            log.info("describing %s failed (%s); backing off", fold.name, error)
            return None
        except JobNotFound:
            if now - fold.created_at >= self.timing.not_found_grace:
                raise FoldProblem(fold, f"fold job {fold.name} disappeared (DescribeTrainingJob: not found)") from None
            return 0
        return int(self.observe(fold, description))

    def _noted(self, fold: FoldJob, summary: Mapping[str, Any]) -> bool:
        """Take in a TrainingJobSummary; True when the fold needs a describe (it ended, or is being stopped)."""
        status = summary.get("TrainingJobStatus", "")
        self._note_status(fold, status, summary.get("SecondaryStatus", ""), summary.get("WarmPoolStatus"))
        return status in TERMINAL or status == "Stopping"

    def _note_status(self, fold: FoldJob, status: str, secondary: str, pool: Mapping[str, Any] | None) -> None:
        if (status, secondary) != (fold.status, fold.secondary):
            log.info("fold %d: %s %s/%s", fold.task.fold, fold.name, status, secondary)
            fold.status, fold.secondary = status, secondary
        if (pool or {}).get("Status") == "InUse" and not fold.reused_pool:
            fold.reused_pool = True
            log.info("fold %d: %s runs on a reused warm pool", fold.task.fold, fold.name)

    def observe(self, fold: FoldJob, description: Mapping[str, Any]) -> bool:
        """Take in a DescribeTrainingJob answer; True when the fold completed now. A failed fold raises FoldProblem."""
        status = description.get("TrainingJobStatus", "")
        secondary = description.get("SecondaryStatus", "")
        self._note_status(fold, status, secondary, description.get("WarmPoolStatus"))
        if status == "Completed":
            fold.result = self._result(fold, description)
            fold.state = "done"
            log.info("fold %d: %s completed in %.0f s (training %s s, billable %s s)", fold.task.fold, fold.name,
                     fold.result.wall_seconds, description.get("TrainingTimeInSeconds", "?"),
                     description.get("BillableTimeInSeconds", "?"))
            self._check_pool_kept(fold, description)
            return True
        if status == "Failed":
            reason = description.get("FailureReason") or "no reason given"
            raise FoldProblem(fold, f"fold job {fold.name} failed: {reason}")
        if status in ("Stopped", "Stopping") and not fold.stop_sent:
            fold.stop_sent = True  # it has ended, or is ending: not ours to stop again
            if secondary == "MaxRuntimeExceeded":
                limit = (description.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds", "?")
                raise FoldProblem(fold, f"fold job {fold.name} reached its MaxRuntimeInSeconds ({limit} s, capped at "
                                        "the coordinator's remaining runtime); raise MaxRuntimeInSeconds")
            raise FoldProblem(fold, f"fold job {fold.name} was stopped by someone other than its coordinator "
                                    f"({description.get('FailureReason') or 'no reason given'})")
        return False

    def _result(self, fold: FoldJob, description: Mapping[str, Any]) -> FoldResult:
        extra = {"wall_seconds": self.clock.monotonic() - fold.created_at, "executor": str(fold.name)}
        uri = output_archive_uri(description)
        try:
            return result_from_metrics(summary_from_archive(self.api.read_s3_object(uri)), fold.task.fold, **extra)
        except (ApiError, KeyError, ValueError, TypeError, tarfile.TarError, UnicodeDecodeError) as error:
            log.warning("fold %d: could not read metrics.json from %s (%s); using the job's FinalMetricDataList "
                        "(log-scraped scores; best iteration taken as num_boost_round)", fold.task.fold, uri, error)
            try:
                return result_from_final_metrics(description, fold.task.fold, **extra)
            except (KeyError, ValueError, UserInputError) as fallback:
                raise FoldProblem(fold, f"fold job {fold.name} completed but its scores cannot be read: {error}; "
                                        f"{fallback}") from None

    # -- warm pools -----------------------------------------------------------------------------------------------
    def warm_pool_quota(self) -> str:
        return rules.warm_pool_quota_name(str(self.template.base.get("ResourceConfig", {}).get("InstanceType")))

    def _check_pool_kept(self, fold: FoldJob, description: Mapping[str, Any]) -> None:  # a summary or a description
        """A completed fold with a keep-alive should leave a pool (rules.keeps_warm_pool); without warm-pool quota
        SageMaker keeps none, silently (rules.WARM_POOL_QUOTA)."""
        if self.template.keep_alive_seconds <= 0:
            return
        status = (description.get("WarmPoolStatus") or {}).get("Status")
        fold.pool_kept = status in KEPT
        if fold.pool_kept or self._pool_warned:
            return
        self._pool_warned = True
        log.warning("fold %d: SageMaker kept no warm pool for %s (WarmPoolStatus %s), so the next trial's folds start "
                    "cold. Raise the Service Quotas (Amazon SageMaker) quota '%s' (0 by default: SageMaker then keeps "
                    "no pool and raises no error) to at least %d per parallel trial", fold.task.fold, fold.name,
                    status or "absent", self.warm_pool_quota(),
                    len(self.jobs) * int(self.template.base.get("ResourceConfig", {}).get("InstanceCount", 1)))

    def report_pool_reuse(self) -> None:
        """At the end of a trial with a keep-alive: say so when no fold started on a warm pool."""
        jobs = self.jobs
        if self.template.keep_alive_seconds <= 0 or not jobs or any(f.reused_pool for f in jobs):
            return
        log.warning("none of this trial's %d fold jobs started on a warm pool. Expected in the first trials of a "
                    "tuning job (no pool exists yet); after them, check the quota '%s' (Service Quotas, Amazon "
                    "SageMaker; 0 by default) and that keep_alive_seconds (%d s) covers the pause between trials",
                    len(jobs), self.warm_pool_quota(), self.template.keep_alive_seconds)

    # -- stopping ---------------------------------------------------------------------------------------------------
    def wait_until_ended(self, budget: float) -> bool:
        """After `stop()`: wait (one ListTrainingJobs every `poll_finish`, at most `budget` seconds) until every fold
        job asked to stop has ended; True if they all have.

        Why: a job's warm pool is Available only once the job has ended ("Stopped" after Stopping), and the next
        trial's folds, created moments later, would otherwise find no pool and start cold (rules.keeps_warm_pool)."""
        waiting = [f for f in self.jobs if f.stop_sent and f.state != "done" and f.name]
        deadline = self.clock.monotonic() + budget
        while waiting and self.clock.monotonic() < deadline:
            self.clock.sleep(min(self.timing.poll_finish, max(0.0, deadline - self.clock.monotonic())))
            try:
                summaries = self.api.list_training_jobs(self._name_filter, self.created_after)
            except (TransientError, AccessDenied):
                continue
            status = {s.get("TrainingJobName"): s.get("TrainingJobStatus") for s in summaries}
            waiting = [f for f in waiting if status.get(f.name) not in TERMINAL]
        if waiting:
            log.info("%s not ended %.0f s after being stopped; going on", ", ".join(str(f.name) for f in waiting),
                     budget)
        return not waiting

    def stop(self) -> None:
        """StopTrainingJob on every fold job not known to be finished (idempotent, bounded in time).

        Every fold is tried once before any is retried, so one hanging or throttled call cannot use up the
        budget of the others; no call starts after `stop_budget`.
        """
        pending = [f for f in self.folds if f.name and f.state in ("creating", "running") and not f.stop_sent]
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
            self.clock.sleep(min(self.pacer.backoff(rounds), max(0.0, budget_end - self.clock.monotonic())))
        stopped = [f.name for f in targets if f.stop_sent]
        log.info("asked %d fold job(s) to stop: %s; API calls for this trial: %s", len(stopped),
                 ", ".join(str(n) for n in stopped), self.api.calls.summary())

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
