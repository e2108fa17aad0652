"""A SageMaker training service in simulated time, boto3-shaped: the one simulator of SageMaker jobs.

The real coordinator code talks to it exactly as to boto3's SageMaker and S3 clients (same method names,
keyword arguments and `botocore.exceptions.ClientError`s), while its jobs advance on whatever clock it
is given: a `ManualClock` in unit tests of one runner, a `Scheduler`'s virtual clock when M coordinators
run concurrently (`warmcv.simulation.tuning`). No botocore retries happen here: a client of one process,
with botocore's retry modes, is `warmcv.simulation.clients.SimulatedClient`.

What it models, and how closely (the facts are in docs/sagemaker-fold-runner.md and docs/simulation.md):

- **Job lifecycle**: InProgress/Starting (cold start-up, or a short one on a reused warm pool) ->
  InProgress/Training -> Completed, or Failed with a FailureReason; StopTrainingJob -> Stopping ->
  Stopped `stop_seconds` later. Names are unique (ResourceInUse on a repeat).
- **Warm pools**: a job with KeepAlivePeriodInSeconds > 0 that got past Starting leaves a pool when it
  ends (Completed, Failed, or Stopped). A new job takes an Available pool only if RoleArn, instance type
  and count, volume size and KMS key, VPC config, network isolation and inter-container encryption are
  all identical (`POOL_KEY_FIELDS`); one job per pool; the soonest-expiring pool is taken. A pool expires
  KeepAlive seconds after it became Available. WarmPoolStatus moves Available -> Reused (ReusedByJob) or
  Terminated on the old job, InUse on the new one. The warm-pool quota caps the instances in pools;
  when it is used up, no pool is kept and no error is raised (as on AWS, whose default quota is 0).
- **Quotas and rates**: the training-instance quota counts running jobs and every pool (warm-pool
  instances count toward it) and refuses a create with ResourceLimitExceeded naming the Service Quotas
  entry. Account-wide request rates per operation (token buckets; CreateTrainingJob about 1/s) answer
  ThrottlingException "Rate exceeded" beyond them.
- **Results**: a completed job's `output.tar.gz` (with the worker's metrics.json) is readable through
  `get_object`, and its describe carries FinalMetricDataList with the worker's metric names.
- **Billing**: instance-seconds from the end of Starting to the end of the job, plus the time pools
  are held Available (`billing()`).

State changes that happen at a time (a job ending, a pool expiring) are processed lazily, in time order,
before every call: the service needs no thread or scheduler of its own and works with any clock.
"""

from __future__ import annotations

import heapq
import io
import itertools
import json
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from warmcv.aws.tags import PARENT_JOB
from warmcv.clock import Clock
from warmcv.cv import METRICS_FILE
from warmcv.declarations.metrics import FOLD_TRAINING_SCORE, FOLD_VALIDATION_SCORE

ACCOUNT = "123456789012"
REGION = "us-east-1"
# Fields SageMaker compares before handing a warm pool to a new job (all must be identical).
POOL_KEY_FIELDS = ("RoleArn", "ResourceConfig.InstanceType", "ResourceConfig.InstanceCount",
                   "ResourceConfig.VolumeSizeInGB", "ResourceConfig.VolumeKmsKeyId", "VpcConfig",
                   "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption")
TERMINAL = ("Completed", "Failed", "Stopped")


def client_error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


def metrics_archive(summary: Mapping[str, Any]) -> bytes:
    """output.tar.gz as a worker job leaves it: metrics.json at the top."""
    buffer = io.BytesIO()
    data = json.dumps(summary).encode()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(METRICS_FILE)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def fold_summary(fold: int, validation: float, train: float, best_iteration: int = 40,
                 seconds: float = 1.5) -> dict[str, Any]:
    """What the worker writes to metrics.json (the fields FoldResult.from_summary reads)."""
    return {"fold": fold, "validation_score": validation, "train_score": train, "best_iteration": best_iteration,
            "n_train": 800, "n_valid": 400, "seconds": seconds, "metric": "auc", "direction": "Maximize"}


def _get(document: Mapping[str, Any], dotted: str) -> Any:
    value: Any = document
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def pool_key(request: Mapping[str, Any]) -> str:
    """What must match for a job to take a warm pool (JSON of POOL_KEY_FIELDS, missing fields as null)."""
    return json.dumps([_get(request, f) for f in POOL_KEY_FIELDS], sort_keys=True, default=str)


@dataclass(frozen=True)
class JobTiming:
    """How long a job spends Starting and Training, and whether (and when in training) it fails."""

    start: float
    train: float
    failure: str | None = None
    fail_after: float | None = None  # seconds into training (default: at its end)


@dataclass
class RateLimit:
    """An account-wide token bucket: `rate` requests per second, bursts of up to `burst` (starts full)."""

    rate: float
    burst: float = 1.0
    tokens: float = -1.0
    at: float = 0.0

    def allow(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.at = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0 - 1e-9:
            return False
        self.tokens -= 1.0
        return True


@dataclass(eq=False)
class Pool:
    key: str
    instance_type: str
    count: int
    holder: str  # the job that ran on it last (or runs on it now)
    state: str = "Available"  # Available | InUse | Terminated
    since: float = 0.0  # when it last became Available
    expires_at: float = 0.0
    retained: float = 0.0  # instance-seconds held Available (billed)
    version: int = 0
    id: int = 0


@dataclass(eq=False)
class SimJob:
    request: dict
    created: float
    start: float  # seconds in Starting
    train: float | None  # seconds in Training; None: until finish() (jobs driven from outside)
    fail_reason: str | None = None
    stopped_at: float | None = None
    status_override: str | None = None
    fail_after: float | None = None
    kind: str = "job"  # job | fold | coordinator
    warm: bool = False  # started on a reused warm pool
    pool: Pool | None = None
    pool_id: int | None = None  # the pool it ran on (reused) or left behind, for checking one job per pool
    ended_at: float | None = None
    final: tuple[str, str] | None = None  # (status, secondary) once ended
    warm_pool_status: dict | None = None
    summary: dict | None = None  # what its metrics.json says (completed folds)

    @property
    def name(self) -> str:
        return self.request["TrainingJobName"]

    @property
    def instance_count(self) -> int:
        return int(self.request.get("ResourceConfig", {}).get("InstanceCount", 1))

    @property
    def instance_type(self) -> str:
        return str(self.request.get("ResourceConfig", {}).get("InstanceType", ""))

    @property
    def keep_alive(self) -> int:
        return int(self.request.get("ResourceConfig", {}).get("KeepAlivePeriodInSeconds", 0) or 0)

    @property
    def training_starts(self) -> float:
        return self.created + self.start

    @property
    def run_seconds(self) -> float | None:
        """Seconds in Training before the job ends by itself (None: it ends when told)."""
        if self.train is None:
            return None
        if self.fail_reason and self.fail_after is not None:
            return min(self.fail_after, self.train)
        return self.train

    @property
    def natural_end(self) -> float | None:
        run = self.run_seconds
        return None if run is None else self.training_starts + run


@dataclass
class SimulatedSageMaker:
    """SageMaker's training-job API and the S3 reads of their outputs, on `clock`.

    The simple knobs (`start_seconds`, `train_seconds`, `failures`) serve unit tests of one runner;
    `timing` (request, warm) -> JobTiming replaces them when a workload model decides each job's times.
    """

    clock: Clock
    start_seconds: float = 180.0
    train_seconds: float = 120.0
    warm_start_seconds: float = 20.0  # Starting on a reused warm pool
    stop_seconds: float = 5.0  # Stopping -> Stopped
    creates_per_second: float | None = None  # shorthand for rate_limits["CreateTrainingJob"] = (rate, burst 1)
    rate_limits: dict[str, tuple[float, float]] = field(default_factory=dict)  # operation -> (per second, burst)
    instance_quota: int | None = None  # training instances of one type at once (running jobs + pools)
    warm_pool_quota: int | None = None  # instances in warm pools; None: unlimited, 0: no pools kept
    durations: Callable[[dict], tuple[float, float]] | None = None  # request -> (start, train), warm or not
    timing: Callable[[dict, bool], JobTiming] | None = None  # (request, warm) -> JobTiming
    failures: dict[str, str] = field(default_factory=dict)  # job name -> FailureReason (fails when training ends)
    throttle: dict[str, int] = field(default_factory=dict)  # operation -> next N calls throttled
    throttle_always: set[str] = field(default_factory=set)
    quota_message: str | None = None  # CreateTrainingJob -> ResourceLimitExceeded with this message
    drop_archives: bool = False
    results: Callable[[SimJob], dict] | None = None  # a completed fold job -> its metrics.json
    scores: Callable[[int], tuple[float, float]] = lambda fold: (0.8 + 0.01 * fold, 0.9 + 0.01 * fold)
    tags: dict[str, list] = field(default_factory=dict)
    jobs: dict[str, SimJob] = field(default_factory=dict)
    pools: list[Pool] = field(default_factory=list)
    calls: list[tuple[float, str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._events: list[tuple[float, int, Callable[[float], None]]] = []
        self._order = itertools.count()
        self._limits: dict[str, RateLimit] = {op: RateLimit(rate, burst) for op, (rate, burst)
                                              in self.rate_limits.items()}
        if self.creates_per_second and "CreateTrainingJob" not in self._limits:
            self._limits["CreateTrainingJob"] = RateLimit(self.creates_per_second, 1.0)
        self.peak_instances = 0
        self.peak_pool_instances = 0

    # -- bookkeeping -----------------------------------------------------------------------------------
    def _record(self, operation: str, name: str, outcome: str = "OK") -> None:
        self.calls.append((self.clock.monotonic(), operation, name, outcome))

    def _maybe_throttle(self, operation: str, name: str) -> None:
        limit = self._limits.get(operation)
        injected = operation in self.throttle_always or self.throttle.get(operation, 0) > 0
        if injected and operation not in self.throttle_always:
            self.throttle[operation] -= 1
        if injected or (limit is not None and not limit.allow(self.clock.monotonic())):
            self._record(operation, name, "ThrottlingException")
            raise client_error("ThrottlingException", "Rate exceeded", operation)

    def count(self, operation: str, outcome: str | None = "OK") -> int:
        return sum(1 for c in self.calls if c[1] == operation and (outcome is None or c[3] == outcome))

    def _at(self, when: float, action: Callable[[float], None]) -> None:
        heapq.heappush(self._events, (when, next(self._order), action))

    def catch_up(self) -> None:
        """Apply every state change due by now (jobs ending, pools expiring), in time order, each at its time."""
        now = self.clock.monotonic()
        while self._events and self._events[0][0] <= now:
            when, _, action = heapq.heappop(self._events)
            action(when)

    # -- boto3-shaped SageMaker methods ------------------------------------------------------------------
    def create_training_job(self, **request: Any) -> dict:
        self.catch_up()
        name = request["TrainingJobName"]
        self._maybe_throttle("CreateTrainingJob", name)
        if self.quota_message:
            self._record("CreateTrainingJob", name, "ResourceLimitExceeded")
            raise client_error("ResourceLimitExceeded", self.quota_message, "CreateTrainingJob")
        if name in self.jobs:
            self._record("CreateTrainingJob", name, "ResourceInUse")
            raise client_error("ResourceInUse", "Training job names must be unique within an AWS account and region, "
                                                "and a training job with this name already exists", "CreateTrainingJob")
        pool = self._matching_pool(request)
        if pool is None:
            problem = self._quota_problem(request)
            if problem:
                self._record("CreateTrainingJob", name, "ResourceLimitExceeded")
                raise client_error("ResourceLimitExceeded", problem, "CreateTrainingJob")
        job = self._admit(request, kind="fold" if _get(request, "HyperParameters.mode") == "worker" else "job",
                          pool=pool)
        self._record("CreateTrainingJob", name)
        return {"TrainingJobArn": self.arn(job.name)}

    def _existing(self, name: str, operation: str) -> SimJob:
        """The job called `name`, or the ValidationException SageMaker answers for an unknown name."""
        job = self.jobs.get(name)
        if job is None:
            self._record(operation, name, "ValidationException")
            raise client_error("ValidationException", "Requested resource not found.", operation)
        return job

    def describe_training_job(self, TrainingJobName: str) -> dict:  # noqa: N803 - boto3's keyword
        self.catch_up()
        self._maybe_throttle("DescribeTrainingJob", TrainingJobName)
        job = self._existing(TrainingJobName, "DescribeTrainingJob")
        self._record("DescribeTrainingJob", TrainingJobName)
        return self._describe(job)

    def stop_training_job(self, TrainingJobName: str) -> dict:  # noqa: N803
        self.catch_up()
        self._maybe_throttle("StopTrainingJob", TrainingJobName)
        job = self._existing(TrainingJobName, "StopTrainingJob")
        status = self._status(job)[0]
        if status != "InProgress":
            self._record("StopTrainingJob", TrainingJobName, "ValidationException")
            raise client_error("ValidationException", f"The training job is in status {status}.", "StopTrainingJob")
        job.stopped_at = self.clock.monotonic()
        self._at(job.stopped_at + self.stop_seconds, lambda at: self._end(job, ("Stopped", "Stopped"), at))
        self._record("StopTrainingJob", TrainingJobName)
        return {}

    def list_tags(self, ResourceArn: str, **_: Any) -> dict:  # noqa: N803
        self.catch_up()
        self._maybe_throttle("ListTags", ResourceArn)
        self._record("ListTags", ResourceArn)
        return {"Tags": self.tags.get(ResourceArn, [])}

    def get_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803 - S3's keywords
        self.catch_up()
        name = Key.split("/")[-3] if Key.count("/") >= 2 else Key
        job = self.jobs.get(name)
        self._record("GetObject", name)
        if job is None or self.drop_archives or self._status(job)[0] != "Completed" or Key.endswith("model.tar.gz"):
            raise client_error("NoSuchKey", "The specified key does not exist.", "GetObject", 404)
        data = metrics_archive(self._summary(job))
        return {"Body": io.BytesIO(data), "ContentLength": len(data)}

    # -- jobs started by someone other than the code under test (a tuner, a previous attempt) --------------
    def launch(self, request: dict, start_seconds: float, kind: str = "coordinator") -> SimJob:
        """A job started outside the account's API limits (the tuner's own launches); it runs until finish()."""
        self.catch_up()
        problem = self._quota_problem(request)
        if problem:
            raise client_error("ResourceLimitExceeded", problem, "CreateTrainingJob")
        return self._admit(request, kind=kind, timing=JobTiming(start_seconds, 0.0), open_ended=True)

    def finish(self, name: str, status: str, failure: str | None = None) -> None:
        """End a job started with launch(): Completed, or Failed with its FailureReason."""
        self.catch_up()
        job = self.jobs[name]
        job.fail_reason = failure
        self._end(job, (status, status), self.clock.monotonic())

    def add_job(self, request: dict, status: str, failure: str | None = None) -> None:
        """A job that exists before the test starts (e.g. from a previous coordinator attempt)."""
        self.jobs[request["TrainingJobName"]] = SimJob(request, self.clock.monotonic() - 10_000, 0, 0, failure,
                                                        status_override=status)

    # -- queries -------------------------------------------------------------------------------------------
    def arn(self, name: str) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}"

    def end_time(self, name: str) -> float:
        """When the job ends (or ended) by itself: created + Starting + Training."""
        job = self.jobs[name]
        end = job.natural_end
        return job.ended_at if end is None else end

    def status(self, name: str) -> tuple[str, str]:
        self.catch_up()
        return self._status(self.jobs[name])

    def instances_in_use(self, instance_type: str | None = None) -> int:
        """Training instances held now: running jobs not on a pool, plus every live pool (warm-pool instances count)."""
        used = sum(p.count for p in self.pools if p.state != "Terminated"
                   and (instance_type is None or p.instance_type == instance_type))
        used += sum(j.instance_count for j in self.jobs.values()
                    if j.pool is None and j.final is None and j.status_override is None
                    and (instance_type is None or j.instance_type == instance_type))
        return used

    def pool_instances(self) -> int:
        return sum(p.count for p in self.pools if p.state != "Terminated")

    def billing(self, until: float | None = None) -> dict[str, float]:
        """Billable instance-seconds by kind of job, and of pools held Available (up to `until`, default now)."""
        now = self.clock.monotonic() if until is None else until
        seconds: dict[str, float] = {}
        for job in self.jobs.values():
            if job.status_override is not None:
                continue
            begin = job.training_starts
            end = job.ended_at if job.ended_at is not None else now
            if job.stopped_at is not None and job.stopped_at < begin:
                continue  # stopped before its instances came up
            seconds[job.kind] = seconds.get(job.kind, 0.0) + max(0.0, end - begin) * job.instance_count
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
        released = 0
        for pool in self.pools:
            if pool.state == "Available":
                self._terminate(pool, self.clock.monotonic())
                released += 1
        return released

    def drain(self) -> None:
        """Let every pending state change happen (pools expire), however far in the future."""
        while self._events:
            when, _, action = heapq.heappop(self._events)
            action(when)

    # -- internals -----------------------------------------------------------------------------------------
    def _admit(self, request: dict, kind: str, pool: Pool | None = None, timing: JobTiming | None = None,
               open_ended: bool = False) -> SimJob:
        now = self.clock.monotonic()
        warm = pool is not None
        timing = timing or self._timing(request, warm)
        job = SimJob(request, now, timing.start, None if open_ended else timing.train,
                     timing.failure or self.failures.get(request["TrainingJobName"]), kind=kind,
                     fail_after=timing.fail_after, warm=warm)
        self.jobs[job.name] = job
        self.tags[self.arn(job.name)] = list(request.get("Tags", []))
        if pool is not None:
            self._take(pool, job)
        end = job.natural_end
        if end is not None:
            self._at(end, lambda at: self._end(job, self._outcome(job), at))
        self._track_peaks()
        return job

    @staticmethod
    def _outcome(job: SimJob) -> tuple[str, str]:
        return ("Failed", "Failed") if job.fail_reason else ("Completed", "Completed")

    def _timing(self, request: dict, warm: bool) -> JobTiming:
        if self.timing is not None:
            return self.timing(request, warm)
        if self.durations is not None:
            start, train = self.durations(request)
            return JobTiming(start, train)
        return JobTiming(self.warm_start_seconds if warm else self.start_seconds, self.train_seconds)

    def _quota_problem(self, request: Mapping[str, Any]) -> str | None:
        if self.instance_quota is None:
            return None
        resources = request.get("ResourceConfig", {})
        instance_type = resources.get("InstanceType", "")
        delta = int(resources.get("InstanceCount", 1))
        used = self.instances_in_use(instance_type)
        if used + delta <= self.instance_quota:
            return None
        return (f"The account-level service limit '{instance_type} for training job usage' is {self.instance_quota} "
                f"Instances, with current utilization of {used} Instances and a request delta of {delta} Instances. "
                "Please use AWS Service Quotas to request an increase for this quota. If AWS Service Quotas is not "
                "available, contact AWS support to request an increase for this quota.")

    def _status(self, job: SimJob) -> tuple[str, str]:
        now = self.clock.monotonic()
        if job.status_override:
            return job.status_override, job.status_override
        if job.final is not None:
            return job.final
        if job.stopped_at is not None:
            return "Stopping", "Stopping"
        if now < job.training_starts:
            return "InProgress", "Starting"
        end = job.natural_end
        if end is None or now < end:
            return "InProgress", "Training"
        return self._outcome(job)

    def _summary(self, job: SimJob) -> dict:
        if job.summary is None:
            if self.results is not None:
                job.summary = self.results(job)
            else:
                fold = int(job.request["HyperParameters"]["fold"])
                validation, train = self.scores(fold)
                job.summary = fold_summary(fold, validation, train)
        return job.summary

    def _describe(self, job: SimJob) -> dict:
        status, secondary = self._status(job)
        name = job.name
        out = {k: v for k, v in job.request.items() if k not in ("Tags", "TrainingJobName")}
        out.update({"TrainingJobName": name, "TrainingJobArn": self.arn(name),
                    "ModelArtifacts": {"S3ModelArtifacts": f"{job.request['OutputDataConfig']['S3OutputPath']}/"
                                                          f"{name}/output/model.tar.gz"},
                    "CreationTime": self._datetime(job.created)})
        if status != "InProgress" or secondary != "Starting":
            out["TrainingStartTime"] = self._datetime(job.training_starts)
        if status == "Completed":
            if job.kind != "coordinator" and "fold" in job.request.get("HyperParameters", {}):
                summary = self._summary(job)
                out["FinalMetricDataList"] = [
                    {"MetricName": FOLD_VALIDATION_SCORE.name, "Value": summary["validation_score"]},
                    {"MetricName": FOLD_TRAINING_SCORE.name, "Value": summary["train_score"]}]
        if job.final is not None and job.ended_at is not None:
            out["TrainingEndTime"] = self._datetime(job.ended_at)
            seconds = int(max(0.0, job.ended_at - job.training_starts))
            out["TrainingTimeInSeconds"] = out["BillableTimeInSeconds"] = seconds
        if status == "Failed":
            out["FailureReason"] = job.fail_reason
        if job.warm_pool_status is not None:
            out["WarmPoolStatus"] = dict(job.warm_pool_status)
        out["TrainingJobStatus"], out["SecondaryStatus"] = status, secondary
        return out

    def _datetime(self, monotonic: float) -> datetime:
        return datetime.fromtimestamp(self.clock.time() - (self.clock.monotonic() - monotonic), tz=UTC)

    def _end(self, job: SimJob, final: tuple[str, str], at: float) -> None:
        if job.final is not None or (job.stopped_at is not None and final[0] != "Stopped"):
            return  # already ended, or asked to stop first: the Stopped event ends it
        job.final, job.ended_at = final, at
        started = job.training_starts
        launched = job.ended_at > started and (job.stopped_at is None or job.stopped_at > started)
        keep = job.keep_alive > 0 and launched
        pool = job.pool
        if pool is not None:
            if keep:
                self._make_available(pool, job, at)
            else:
                self._terminate(pool, at)
                job.pool = None
        elif keep and (self.warm_pool_quota is None
                       or self.pool_instances() + job.instance_count <= self.warm_pool_quota):
            pool = Pool(pool_key(job.request), job.instance_type, job.instance_count, job.name, id=len(self.pools) + 1)
            self.pools.append(pool)
            job.pool, job.pool_id = pool, pool.id
            self._make_available(pool, job, at)
        self._track_peaks()

    def _make_available(self, pool: Pool, job: SimJob, at: float) -> None:
        pool.state, pool.holder, pool.since = "Available", job.name, at
        pool.expires_at = at + job.keep_alive
        pool.version += 1
        version = pool.version
        job.warm_pool_status = {"Status": "Available", "ResourceRetainedBillableTimeInSeconds": 0}
        self._at(pool.expires_at, lambda when: self._expire(pool, version, when))

    def _expire(self, pool: Pool, version: int, at: float) -> None:
        if pool.version == version and pool.state == "Available":
            self._terminate(pool, at)

    def _terminate(self, pool: Pool, at: float) -> None:
        held = max(0.0, at - pool.since) * pool.count
        pool.retained += held
        pool.state = "Terminated"
        pool.version += 1
        holder = self.jobs.get(pool.holder)
        if holder is not None:
            holder.warm_pool_status = {"Status": "Terminated", "ResourceRetainedBillableTimeInSeconds": int(held)}
            holder.pool = None

    def _matching_pool(self, request: Mapping[str, Any]) -> Pool | None:
        key = pool_key(request)
        available = [p for p in self.pools if p.state == "Available" and p.key == key]
        return min(available, key=lambda p: (p.expires_at, p.since)) if available else None

    def _take(self, pool: Pool, job: SimJob) -> None:
        now = self.clock.monotonic()
        held = max(0.0, now - pool.since) * pool.count
        pool.retained += held
        previous = self.jobs.get(pool.holder)
        if previous is not None:
            previous.warm_pool_status = {"Status": "Reused", "ReusedByJob": job.name,
                                         "ResourceRetainedBillableTimeInSeconds": int(held)}
            previous.pool = None
        pool.state, pool.holder = "InUse", job.name
        pool.version += 1
        job.pool, job.pool_id = pool, pool.id
        job.warm_pool_status = {"Status": "InUse"}

    def _track_peaks(self) -> None:
        self.peak_instances = max(self.peak_instances, self.instances_in_use())
        self.peak_pool_instances = max(self.peak_pool_instances, self.pool_instances())

    def parent_of(self, job: SimJob) -> str | None:
        """The coordinator that created a fold job (from warmcv's tag)."""
        return next((t["Value"] for t in job.request.get("Tags", []) if t.get("Key") == PARENT_JOB), None)


@dataclass
class SimulatedS3:
    """The S3 client a coordinator reads fold outputs with: the fold jobs' output.tar.gz."""

    sagemaker: SimulatedSageMaker

    def get_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803
        return self.sagemaker.get_object(Bucket=Bucket, Key=Key)
