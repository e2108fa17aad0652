"""SageMaker's training service as AWS documents it: jobs, statuses, warm pools, quotas, rates, billing.

One model, driven two ways:

- **in simulated time** (`warmcv.simulation`): a `planner` gives each job a `JobPlan` (seconds in Starting,
  in the downloads, in Training, uploading) and the service moves the job through its statuses itself;
- **by a driver** (tests/fakes' HTTP service running real worker processes): a job without a plan stays in
  Starting until the driver calls `advance()` and ends when it calls `finish()`.

Either way every rule lives here and in `rules` (each citing its page): unique names, request limits,
the warm-pool matching rule (an absent boolean is false), one job per pool, pools kept only within the
warm-pool quota and only after the documented endings, the instance quota counting pooled instances
(ResourceLimitExceeded with AWS's message), request rates (ThrottlingException), billing from
TrainingStartTime (before the image and data downloads), output locations by compression mode, tags,
StopTrainingJob and UpdateTrainingJob. State changes that fall due at a time (a phase ending, a pool
expiring) are applied lazily, in time order, before every call, so the service works on any clock and
needs no thread.

Cost: every call is O(1) in the number of jobs ever created (instance counts are kept as running totals,
Available pools are indexed by their matching key, ListTrainingJobs bisects on creation time), so a
simulation of N trials costs O(N).

ASSUMPTIONS (the documents are silent): when several Available pools match, the one expiring soonest is
taken; Stopping -> Stopped takes `stop_seconds`; a keep-alive job whose pool was not kept (no quota, or an
ending that keeps none) shows WarmPoolStatus Terminated; UpdateTrainingJob's new keep-alive counts from
when the pool became Available; the 7/28-day limit on a pool's total life is not modelled.
"""

from __future__ import annotations

import bisect
import copy
import heapq
import io
import itertools
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from warmcv.clock import Clock
from warmcv.training_service import rules
from warmcv.training_service.rates import TokenBucket

ACCOUNT = "123456789012"
REGION = "us-east-1"
TERMINAL = ("Completed", "Failed", "Stopped")
NOT_FOUND = "Requested resource not found."  # what SageMaker answers, as ValidationException, for an unknown name
DEFAULT_LIST_RESULTS = 10  # ASSUMPTION: ListTrainingJobs' page size when MaxResults is not given


class ServiceError(Exception):
    """An error answer: `code` is SageMaker's error code (ValidationException, ResourceInUse, ...)."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


class Call(NamedTuple):
    at: float  # the service clock's monotonic seconds
    operation: str
    name: str
    outcome: str  # "OK" or the error code


@dataclass(frozen=True)
class JobPlan:
    """Seconds a job spends in each phase, for jobs the service moves along itself (a simulation).

    `provisioning`: Starting, until TrainingStartTime (instances launched, or a warm pool handed over);
    `downloading`: the image and File-mode input downloads, after TrainingStartTime, so billed;
    `training`: None keeps the job in Training until `finish()` (jobs whose end someone else decides);
    `outputs` gives /opt/ml/output/data's files and `metrics` the FinalMetricDataList when it completes.
    """

    provisioning: float
    downloading: float = 0.0
    training: float | None = None
    uploading: float = 0.0
    failure: str | None = None
    fail_after: float | None = None  # seconds into training (default: at its end)
    outputs: Callable[[], Mapping[str, bytes]] | None = None
    metrics: Callable[[], list[dict[str, Any]]] | None = None


Planner = Callable[[Mapping[str, Any], bool], "JobPlan | None"]  # (request, starts on a warm pool) -> plan


class ObjectStore(Protocol):
    def put(self, uri: str, data: bytes | Callable[[], bytes]) -> None: ...


@dataclass(frozen=True)
class Quotas:
    """Service Quotas of the account, per instance type (an int applies to every type; None: never reached).

    `instances`: '<type> for training job usage'. `warm_pool`: '<type> for training warm pool usage', whose AWS
    default is 0 (rules.warm_pool_quota_name); None here means enough, so a model starts permissive.
    """

    instances: int | Mapping[str, int] | None = None
    warm_pool: int | Mapping[str, int] | None = None

    @staticmethod
    def limit(value: int | Mapping[str, int] | None, instance_type: str) -> int | None:
        if value is None or isinstance(value, int):
            return value
        return value.get(instance_type)


@dataclass(eq=False)
class WarmPool:
    id: int
    key: tuple[Any, ...]
    instance_type: str
    count: int
    holder: str  # the job that runs on it, or ran on it last
    state: str = "InUse"  # InUse | Available | Terminated
    since: float = 0.0  # when it last became Available
    expires_at: float = 0.0
    retained: float = 0.0  # instance-seconds held Available so far (billed)
    version: int = 0  # invalidates a scheduled expiry after a handover or an update


@dataclass(eq=False)
class TrainingJob:
    request: dict[str, Any]
    arn: str
    created: float
    created_epoch: float
    kind: str
    plan: JobPlan | None = None
    tuning_job_arn: str | None = None
    status: str = "InProgress"
    secondary: str = "Starting"
    transitions: list[dict[str, Any]] = field(default_factory=list)
    modified: float = 0.0
    start_time: float | None = None  # TrainingStartTime: billing starts
    end_time: float | None = None  # TrainingEndTime
    failure_reason: str | None = None
    stop_requested_at: float | None = None
    warm: bool = False  # started on a reused warm pool
    pool: WarmPool | None = None  # the pool it runs on (InUse) or left behind (Available)
    pool_id: int | None = None
    warm_pool_status: dict[str, Any] | None = None
    final_metrics: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0  # invalidates scheduled phase changes after a stop

    @property
    def name(self) -> str:
        return str(self.request["TrainingJobName"])

    @property
    def resources(self) -> Mapping[str, Any]:
        return self.request.get("ResourceConfig") or {}

    @property
    def instance_type(self) -> str:
        return str(self.resources.get("InstanceType", ""))

    @property
    def instance_count(self) -> int:
        return int(self.resources.get("InstanceCount", 1) or 1)

    @property
    def keep_alive(self) -> int:
        return int(self.resources.get("KeepAlivePeriodInSeconds", 0) or 0)

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL

    @property
    def launched(self) -> bool:
        """Its cluster is up: it passed TrainingStartTime, or it took a pool (whose instances were up already)."""
        return self.start_time is not None or self.warm


def archive(files: Mapping[str, bytes]) -> bytes:
    """A directory's files as SageMaker uploads them with GZIP compression: one tar.gz, paths relative."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class TrainingService:
    """The account's training jobs and warm pools on `clock` (see the module docstring)."""

    def __init__(self, clock: Clock, *, quotas: Quotas | None = None,
                 rates: Mapping[str, tuple[float, float]] | None = None, planner: Planner | None = None,
                 objects: ObjectStore | None = None, stop_seconds: float = 5.0,
                 kind_of: Callable[[Mapping[str, Any]], str] | None = None, account: str = ACCOUNT,
                 region: str = REGION):
        self.clock = clock
        self.quotas = quotas or Quotas()
        self.rates: dict[str, TokenBucket] = {op: TokenBucket(rate, burst) for op, (rate, burst)
                                              in (rates or {}).items()}
        self.planner = planner
        self.objects = objects
        self.stop_seconds = stop_seconds
        self.kind_of = kind_of or (lambda request: "job")
        self.account, self.region = account, region
        self.jobs: dict[str, TrainingJob] = {}
        self.pools: list[WarmPool] = []
        self.calls: list[Call] = []
        self.peak_instances = 0
        self.peak_pool_instances = 0
        self._tags: dict[str, list[dict[str, str]]] = {}
        self._order: list[TrainingJob] = []  # creation order
        self._created_epochs: list[float] = []  # parallel to _order, for CreationTimeAfter/Before
        self._available: dict[tuple[Any, ...], dict[int, WarmPool]] = {}
        self._running: dict[str, int] = {}  # instances held by jobs not yet ended, per type
        self._pooled: dict[str, int] = {}  # instances in Available pools, per type
        self._events: list[tuple[float, int, Callable[[float], None]]] = []
        self._sequence = itertools.count()

    # -- time --------------------------------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock.monotonic()

    def epoch(self, monotonic: float) -> float:
        return self.clock.time() - (self.clock.monotonic() - monotonic)

    def datetime(self, monotonic: float) -> datetime:
        return datetime.fromtimestamp(self.epoch(monotonic), tz=UTC)

    def catch_up(self) -> None:
        """Apply every state change due by now, in time order, each at its own time."""
        now = self.now()
        while self._events and self._events[0][0] <= now:
            when, _, action = heapq.heappop(self._events)
            action(when)

    def drain(self) -> None:
        """Apply every pending state change, however far ahead (pools expire)."""
        while self._events:
            when, _, action = heapq.heappop(self._events)
            action(when)

    def _at(self, when: float, action: Callable[[float], None]) -> None:
        heapq.heappush(self._events, (when, next(self._sequence), action))

    # -- calls -------------------------------------------------------------------------------------------------
    def set_rate(self, operation: str, per_second: float, burst: float = 1.0) -> None:
        self.rates[operation] = TokenBucket(per_second, burst)

    def admit(self, operation: str, name: str) -> None:
        """The account's request rate for `operation` (rules: ThrottlingException "Rate exceeded" beyond it)."""
        bucket = self.rates.get(operation)
        if bucket is not None and not bucket.admit(self.now()):
            raise ServiceError(rules.THROTTLING_CODE, rules.THROTTLING_MESSAGE)

    def record(self, operation: str, name: str, outcome: str = "OK") -> None:
        self.calls.append(Call(self.now(), operation, name, outcome))

    def count(self, operation: str, outcome: str | None = "OK", prefix: str = "") -> int:
        return sum(1 for c in self.calls if c.operation == operation and c.name.startswith(prefix)
                   and (outcome is None or c.outcome == outcome))

    # -- jobs --------------------------------------------------------------------------------------------------
    def arn(self, name: str) -> str:
        """Training job ARNs carry the name in lower case (as SageMaker's do)."""
        return f"arn:aws:sagemaker:{self.region}:{self.account}:training-job/{name.lower()}"

    def job(self, name: str) -> TrainingJob:
        job = self.jobs.get(name)
        if job is None:
            raise ServiceError("ValidationException", NOT_FOUND)
        return job

    def create(self, request: Mapping[str, Any], *, tuning_job_arn: str | None = None) -> TrainingJob:
        """CreateTrainingJob (rules.CREATE_TRAINING_JOB): validate, take a matching Available pool or count the
        new instances against the quota, and start the job in InProgress/Starting."""
        self.catch_up()
        problems = rules.request_problems(request)
        if problems:
            raise ServiceError("ValidationException", "; ".join(problems))
        name = str(request["TrainingJobName"])
        if name in self.jobs:
            raise ServiceError("ResourceInUse", "Training job names must be unique within an AWS account and region, "
                                                f"and a training job with this name already exists ({self.arn(name)})")
        owned: dict[str, Any] = copy.deepcopy(dict(request))  # the caller's dict may change after the call
        pool = self._matching_pool(owned)
        now = self.now()
        job = TrainingJob(owned, self.arn(name), now, self.clock.time(), self.kind_of(request),
                          tuning_job_arn=tuning_job_arn, modified=now)
        if pool is None:
            self._check_instance_quota(job)
        self.jobs[name] = job
        self._order.append(job)
        self._created_epochs.append(job.created_epoch)
        self._tags[job.arn] = copy.deepcopy(list(request.get("Tags") or []))
        self._transition(job, "Starting", now, "Launching requested ML instances" if pool is None
                         else "Starting the training job on a warm pool")
        if pool is not None:
            self._take(pool, job, now)  # the pool's instances move to the job: first out of the pool, then ...
        self._add_running(job, +1)  # ... into the running count, so the peak never counts them twice
        job.plan = self.planner(request, pool is not None) if self.planner is not None else None
        if job.plan is not None:
            self._schedule(job)
        return job

    def _check_instance_quota(self, job: TrainingJob) -> None:
        """rules.WARM_POOL_QUOTA: "All warm pool instance usage counts toward your SageMaker training resource
        limit": pooled instances count with the running ones."""
        limit = Quotas.limit(self.quotas.instances, job.instance_type)
        if limit is None:
            return
        used = self._running.get(job.instance_type, 0) + self._pooled.get(job.instance_type, 0)
        if used + job.instance_count > limit:
            raise ServiceError("ResourceLimitExceeded", rules.resource_limit_message(
                rules.training_quota_name(job.instance_type), limit, used, job.instance_count))

    def _schedule(self, job: TrainingJob) -> None:
        plan, version = job.plan, job.version
        assert plan is not None

        def step(action: Callable[[float], None]) -> Callable[[float], None]:
            def run(at: float) -> None:
                if job.version == version and not job.ended:
                    action(at)
            return run

        downloading = job.created + plan.provisioning
        training = downloading + plan.downloading
        self._at(downloading, step(lambda at: self._advance(job, "Downloading", at)))
        self._at(training, step(lambda at: self._advance(job, "Training", at)))
        if plan.training is None:
            return
        if plan.failure:
            run = plan.training if plan.fail_after is None else min(plan.fail_after, plan.training)
            self._at(training + run, step(lambda at: self._end(job, "Failed", at, plan.failure)))
            return
        uploading = training + plan.training
        self._at(uploading, step(lambda at: self._advance(job, "Uploading", at)))
        self._at(uploading + plan.uploading, step(lambda at: self._complete(job, at)))

    def _complete(self, job: TrainingJob, at: float) -> None:
        plan = job.plan
        if plan is not None and plan.metrics is not None:
            job.final_metrics = plan.metrics()
        if plan is not None and plan.outputs is not None and self.objects is not None:
            where = rules.output_locations(job.request, job.name)
            outputs = plan.outputs
            if where["compression"] == "GZIP":
                self.objects.put(where["output"], lambda: archive(outputs()))
            else:
                for file, data in outputs().items():
                    self.objects.put(where["output"] + file, data)
        self._end(job, "Completed", at)

    # -- the driver's side (a job without a plan) ------------------------------------------------------------------
    def advance(self, name: str, secondary: str, message: str = "") -> None:
        """A job moves to another InProgress phase (Downloading, Training, Uploading, Restarting)."""
        self.catch_up()
        job = self.job(name)
        if not job.ended:
            self._advance(job, secondary, self.now(), message)

    def finish(self, name: str, status: str, failure_reason: str | None = None) -> None:
        """A job ends: Completed, Failed (with its FailureReason) or Stopped."""
        if status not in TERMINAL:
            raise ValueError(f"{status} is not a terminal status {TERMINAL}")
        self.catch_up()
        job = self.job(name)
        if not job.ended:
            self._end(job, status, self.now(), failure_reason)

    def set_final_metrics(self, name: str, metrics: list[dict[str, Any]]) -> None:
        self.job(name).final_metrics = copy.deepcopy(metrics)

    # -- the API's operations --------------------------------------------------------------------------------------
    def describe(self, name: str) -> dict[str, Any]:
        """DescribeTrainingJob (rules.DESCRIBE_TRAINING_JOB): the request as created, plus status, times, pools."""
        self.catch_up()
        job = self.job(name)
        out = {k: copy.deepcopy(v) for k, v in job.request.items() if k not in ("Tags", "TrainingJobName")}
        for flag in ("EnableNetworkIsolation", "EnableInterContainerTrafficEncryption", "EnableManagedSpotTraining"):
            out[flag] = bool(job.request.get(flag, False))
        out.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 86400})
        out.update({
            "TrainingJobName": job.name, "TrainingJobArn": job.arn, "TrainingJobStatus": job.status,
            "SecondaryStatus": job.secondary, "CreationTime": self.datetime(job.created),
            "LastModifiedTime": self.datetime(job.modified),
            "ModelArtifacts": {"S3ModelArtifacts": rules.output_locations(job.request, job.name)["model"]},
            "SecondaryStatusTransitions": [
                {k: (self.datetime(v) if k in ("StartTime", "EndTime") else v) for k, v in t.items()}
                for t in job.transitions],
        })
        if job.tuning_job_arn:
            out["TuningJobArn"] = job.tuning_job_arn
        if job.start_time is not None:
            out["TrainingStartTime"] = self.datetime(job.start_time)
        if job.end_time is not None:
            out["TrainingEndTime"] = self.datetime(job.end_time)
            if job.start_time is not None:
                seconds = max(1, round(rules.billable_seconds(job.start_time, job.end_time)))
                out["TrainingTimeInSeconds"] = out["BillableTimeInSeconds"] = seconds
        if job.failure_reason:
            out["FailureReason"] = job.failure_reason
        if job.warm_pool_status is not None:
            out["WarmPoolStatus"] = dict(job.warm_pool_status)
        if job.final_metrics:
            out["FinalMetricDataList"] = copy.deepcopy(job.final_metrics)
        return out

    def stop(self, name: str) -> None:
        """StopTrainingJob (rules.STOP_TRAINING_JOB): InProgress -> Stopping -> Stopped; anything else is refused."""
        self.catch_up()
        job = self.job(name)
        if job.status != "InProgress":
            raise ServiceError("ValidationException",
                               f"The request was rejected because the training job is in status {job.status}.")
        now = self.now()
        job.stop_requested_at = now
        job.status = "Stopping"
        self._transition(job, "Stopping", now, "Stopping the training job")
        if job.plan is not None and job.plan.training is not None:
            job.version += 1  # its own phase changes are void; it ends Stopped
            self._at(now + self.stop_seconds, lambda at: self._end(job, "Stopped", at) if not job.ended else None)

    def update_keep_alive(self, name: str, seconds: int) -> None:
        """UpdateTrainingJob(ResourceConfig={"KeepAlivePeriodInSeconds": n}) (rules.UPDATE_TRAINING_JOB).

        WARM_POOLS: "When the training job is complete and the warm pool status is Available, then you can
        update the KeepAlivePeriodInSeconds value"; "To manually terminate a warm pool, set ... to 0".
        """
        self.catch_up()
        job = self.job(name)
        if not 0 <= int(seconds) <= rules.MAX_KEEP_ALIVE_SECONDS:
            raise ServiceError("ValidationException",
                               f"KeepAlivePeriodInSeconds {seconds} is outside 0..{rules.MAX_KEEP_ALIVE_SECONDS}")
        now = self.now()
        if not job.ended:
            job.request.setdefault("ResourceConfig", {})["KeepAlivePeriodInSeconds"] = int(seconds)
            return
        pool = job.pool
        if pool is None or pool.state != "Available" or pool.holder != job.name:
            raise ServiceError("ValidationException", f"The warm pool of training job {name} is not Available; only "
                                                      "an Available warm pool's keep-alive can be updated")
        job.request.setdefault("ResourceConfig", {})["KeepAlivePeriodInSeconds"] = int(seconds)
        if seconds == 0 or pool.since + seconds <= now:
            self._terminate(pool, now)
        else:
            self._schedule_expiry(pool, pool.since + seconds)
        job.modified = now

    def list_jobs(self, **request: Any) -> dict[str, Any]:
        """ListTrainingJobs (rules.LIST_TRAINING_JOBS), newest first by default, one page per call.

        Its documented quirk is kept: "When StatusEquals and MaxResults are set at the same time, the MaxResults
        number of training jobs are first retrieved ignoring the StatusEquals parameter and then they are
        filtered by the StatusEquals parameter".
        """
        self.catch_up()
        limit = int(request.get("MaxResults") or DEFAULT_LIST_RESULTS)
        if not 1 <= limit <= 100:
            raise ServiceError("ValidationException", f"MaxResults {limit} is outside 1..100")
        contains = request.get("NameContains")
        if contains is not None and (len(contains) > 63 or not all(c.isalnum() or c == "-" for c in contains)):
            raise ServiceError("ValidationException", f"NameContains {contains!r} must match [a-zA-Z0-9\\-]+ "
                                                      "(at most 63 characters)")
        low, high = 0, len(self._order)
        after, before = _epoch_of(request.get("CreationTimeAfter")), _epoch_of(request.get("CreationTimeBefore"))
        if after is not None:
            low = bisect.bisect_right(self._created_epochs, after)
        if before is not None:
            high = bisect.bisect_left(self._created_epochs, before)
        modified_after = _epoch_of(request.get("LastModifiedTimeAfter"))
        modified_before = _epoch_of(request.get("LastModifiedTimeBefore"))
        pool_status = request.get("WarmPoolStatusEquals")
        selected = []
        for job in self._order[low:high]:
            if contains is not None and contains not in job.name:
                continue
            modified = self.epoch(job.modified)
            if (modified_after is not None and modified <= modified_after) or (
                    modified_before is not None and modified >= modified_before):
                continue
            if pool_status is not None and (job.warm_pool_status or {}).get("Status") != pool_status:
                continue
            selected.append(job)
        sort_by = request.get("SortBy", "CreationTime")
        descending = request.get("SortOrder", "Descending") != "Ascending"
        if sort_by == "Name":
            selected.sort(key=lambda j: j.name, reverse=descending)
        elif sort_by == "Status":
            selected.sort(key=lambda j: j.status, reverse=descending)
        elif descending:
            selected.reverse()
        start = int(request.get("NextToken") or 0)
        page = selected[start:start + limit]
        if request.get("StatusEquals") is not None:
            page = [j for j in page if j.status == request["StatusEquals"]]
        out: dict[str, Any] = {"TrainingJobSummaries": [self._summary(j) for j in page]}
        if start + limit < len(selected):
            out["NextToken"] = str(start + limit)
        return out

    def _summary(self, job: TrainingJob) -> dict[str, Any]:
        summary = {"TrainingJobName": job.name, "TrainingJobArn": job.arn, "CreationTime": self.datetime(job.created),
                   "LastModifiedTime": self.datetime(job.modified), "TrainingJobStatus": job.status,
                   "SecondaryStatus": job.secondary}
        if job.end_time is not None:
            summary["TrainingEndTime"] = self.datetime(job.end_time)
        if job.warm_pool_status is not None:
            summary["WarmPoolStatus"] = dict(job.warm_pool_status)
        return summary

    def tags(self, arn: str) -> list[dict[str, str]]:
        """ListTags: the tags a job was created with."""
        if arn not in self._tags:
            raise ServiceError("ValidationException", NOT_FOUND)
        return copy.deepcopy(self._tags[arn])

    # -- accounting ------------------------------------------------------------------------------------------------
    def instances_in_use(self, instance_type: str | None = None) -> int:
        """Training instances counted against the quota now: jobs not yet ended, plus every Available pool."""
        self.catch_up()
        if instance_type is not None:
            return self._running.get(instance_type, 0) + self._pooled.get(instance_type, 0)
        return sum(self._running.values()) + sum(self._pooled.values())

    def pool_instances(self, instance_type: str | None = None) -> int:
        """Instances held in Available warm pools (what the warm-pool quota counts)."""
        if instance_type is not None:
            return self._pooled.get(instance_type, 0)
        return sum(self._pooled.values())

    def billing(self, until: float | None = None) -> dict[str, float]:
        """Billable instance-seconds by kind of job (rules.billable_seconds) and of pools held Available."""
        now = self.now() if until is None else until
        seconds: dict[str, float] = {}
        for job in self._order:
            end = job.end_time if job.end_time is not None else now
            billed = rules.billable_seconds(job.start_time, end) * job.instance_count
            seconds[job.kind] = seconds.get(job.kind, 0.0) + billed
        held = 0.0
        for pool in self.pools:
            held += pool.retained
            if pool.state == "Available":
                held += max(0.0, min(now, pool.expires_at) - pool.since) * pool.count
        seconds["warm_pool"] = held
        return seconds

    def release_pools(self) -> int:
        """UpdateTrainingJob(KeepAlivePeriodInSeconds=0) on every Available pool (what release-warm-pools does)."""
        self.catch_up()
        available = [p for pools in self._available.values() for p in pools.values()]
        for pool in available:
            self._terminate(pool, self.now())
        return len(available)

    # -- internals -------------------------------------------------------------------------------------------------
    def _transition(self, job: TrainingJob, secondary: str, at: float, message: str = "") -> None:
        if job.transitions and "EndTime" not in job.transitions[-1]:
            job.transitions[-1]["EndTime"] = at
        job.transitions.append({"Status": secondary, "StartTime": at, "StatusMessage": message or secondary})
        job.secondary, job.modified = secondary, at

    def _advance(self, job: TrainingJob, secondary: str, at: float, message: str = "") -> None:
        if job.start_time is None and secondary != "Starting":
            job.start_time = at  # TrainingStartTime: the instances are up; the downloads come after, billed
        if job.status == "InProgress":
            self._transition(job, secondary, at, message)

    def _add_running(self, job: TrainingJob, sign: int) -> None:
        self._running[job.instance_type] = self._running.get(job.instance_type, 0) + sign * job.instance_count
        self._track_peaks()

    def _track_peaks(self) -> None:
        pooled = sum(self._pooled.values())
        self.peak_instances = max(self.peak_instances, sum(self._running.values()) + pooled)
        self.peak_pool_instances = max(self.peak_pool_instances, pooled)

    def _end(self, job: TrainingJob, status: str, at: float, failure: str | None = None) -> None:
        job.status, job.end_time = status, at
        if failure:
            job.failure_reason = failure
        self._transition(job, status, at, failure or status)
        self._add_running(job, -1)
        pool = job.pool
        keep = job.keep_alive > 0 and rules.keeps_warm_pool(status, job.launched, job.failure_reason)
        if keep and self._warm_pool_quota_allows(job):
            if pool is None:
                pool = WarmPool(len(self.pools) + 1, rules.warm_pool_match_key(job.request), job.instance_type,
                                job.instance_count, job.name)
                self.pools.append(pool)
                job.pool, job.pool_id = pool, pool.id
            self._make_available(pool, job, at)
        elif pool is not None:
            self._terminate(pool, at)
        elif job.keep_alive > 0:
            job.warm_pool_status = {"Status": "Terminated", "ResourceRetainedBillableTimeInSeconds": 0}

    def _warm_pool_quota_allows(self, job: TrainingJob) -> bool:
        """rules.WARM_POOL_QUOTA: "A warm pool is only created if your warm pool limit has sufficient resources"."""
        limit = Quotas.limit(self.quotas.warm_pool, job.instance_type)
        return limit is None or self._pooled.get(job.instance_type, 0) + job.instance_count <= limit

    def _make_available(self, pool: WarmPool, job: TrainingJob, at: float) -> None:
        """The pool waits for a matching job for the keep-alive of the job that ran on it last (rules.WARM_POOLS:
        "it inherits the new KeepAlivePeriodInSeconds value specified in that training job's ResourceConfig")."""
        pool.state, pool.holder, pool.since = "Available", job.name, at
        pool.key = rules.warm_pool_match_key(job.request)
        self._available.setdefault(pool.key, {})[pool.id] = pool
        self._pooled[pool.instance_type] = self._pooled.get(pool.instance_type, 0) + pool.count
        job.warm_pool_status = {"Status": "Available", "ResourceRetainedBillableTimeInSeconds": 0}
        job.modified = at
        self._schedule_expiry(pool, at + job.keep_alive)
        self._track_peaks()

    def _schedule_expiry(self, pool: WarmPool, when: float) -> None:
        pool.version += 1
        pool.expires_at = when
        version = pool.version
        self._at(when, lambda at: self._terminate(pool, at) if pool.version == version else None)

    def _leave_available(self, pool: WarmPool, at: float) -> float:
        """Take the pool out of the Available index; returns the instance-seconds it was held (billed)."""
        self._available.get(pool.key, {}).pop(pool.id, None)
        self._pooled[pool.instance_type] -= pool.count
        held = max(0.0, at - pool.since) * pool.count
        pool.retained += held
        return held

    def _terminate(self, pool: WarmPool, at: float) -> None:
        held = self._leave_available(pool, at) if pool.state == "Available" else 0.0
        pool.state = "Terminated"
        pool.version += 1
        holder = self.jobs.get(pool.holder)
        if holder is not None and holder.pool is pool:
            holder.pool = None
            holder.warm_pool_status = {"Status": "Terminated",
                                       "ResourceRetainedBillableTimeInSeconds": int(held / pool.count)}
            holder.modified = at
        self._track_peaks()

    def _matching_pool(self, request: Mapping[str, Any]) -> WarmPool | None:
        """rules.WARM_POOL_MATCH_FIELDS; of several matching pools the soonest-expiring (an ASSUMPTION)."""
        candidates = self._available.get(rules.warm_pool_match_key(request))
        if not candidates:
            return None
        return min(candidates.values(), key=lambda p: (p.expires_at, p.since, p.id))

    def _take(self, pool: WarmPool, job: TrainingJob, at: float) -> None:
        """One job per pool (rules.WARM_POOLS): the old job shows Reused (ReusedByJob), the new one InUse."""
        held = self._leave_available(pool, at)
        previous = self.jobs.get(pool.holder)
        if previous is not None:
            previous.warm_pool_status = {"Status": "Reused", "ReusedByJob": job.name,
                                         "ResourceRetainedBillableTimeInSeconds": int(held / pool.count)}
            previous.pool = None
            previous.modified = at
        pool.state, pool.holder = "InUse", job.name
        pool.version += 1
        job.pool, job.pool_id, job.warm = pool, pool.id, True
        job.warm_pool_status = {"Status": "InUse"}
        self._track_peaks()


def _epoch_of(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)
