"""The package's SageMaker service model with simple timings, plus the faults unit tests inject.

Everything SageMaker does (pool matching, quotas, rates, statuses, billing, outputs) is the package's one
model, `warmcv.training_service`; this module only adds what a test needs and AWS never does on purpose:
fixed or per-request durations, throttling on demand, ResourceLimitExceeded on creates, missing output
archives, and tags for resources the model does not hold. The fold runner's timing tests and
bench/sagemaker_api_calls.py drive the real runner against it on a ManualClock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from warmcv.clock import Clock
from warmcv.simulation.workload import fold_summary, metrics_archive, metrics_file
from warmcv.training_service.api import Objects, ObjectsApi, SageMakerApi, client_error
from warmcv.training_service.rules import output_locations
from warmcv.training_service.service import ACCOUNT, JobPlan, Quotas, TrainingJob, TrainingService, archive

__all__ = ["ACCOUNT", "SimulatedS3", "SimulatedSageMaker", "client_error", "fold_summary", "metrics_archive"]


def _kind(request: Mapping[str, Any]) -> str:
    return "fold" if (request.get("HyperParameters") or {}).get("mode") == "worker" else "job"


class SimulatedSageMaker(SageMakerApi):
    """`SageMakerApi` over a `TrainingService` on `clock`, whose jobs take `start_seconds` (cold) or
    `warm_start_seconds` (on a pool) to start and `train_seconds` to train, unless `durations(request)` ->
    (start, train) says otherwise. `failures`: job name -> FailureReason (fails when its training ends)."""

    def __init__(self, clock: Clock, *, start_seconds: float = 180.0, train_seconds: float = 120.0,
                 warm_start_seconds: float = 20.0, download_seconds: float = 0.0,
                 durations: Callable[[dict], tuple[float, float]] | None = None,
                 failures: Mapping[str, str] | None = None, throttle: Mapping[str, int] | None = None,
                 throttle_always: set[str] | None = None, quota_message: str | None = None,
                 quota_times: int | None = None,
                 drop_archives: bool = False, creates_per_second: float | None = None,
                 rate_limits: Mapping[str, tuple[float, float]] | None = None, instance_quota: int | None = None,
                 warm_pool_quota: int | None = None, stop_seconds: float = 5.0,
                 results: Callable[[TrainingJob], dict] | None = None):
        self.start_seconds, self.train_seconds = start_seconds, train_seconds
        self.warm_start_seconds, self.download_seconds = warm_start_seconds, download_seconds
        self.durations = durations
        self.failures = dict(failures or {})
        self.throttle = dict(throttle or {})  # operation -> the next N calls are throttled
        self.throttle_always = set(throttle_always or ())
        self.quota_message = quota_message  # CreateTrainingJob -> ResourceLimitExceeded with this message ...
        self.quota_times = quota_times  # ... this many times (None: every time)
        self.drop_archives = drop_archives
        self.results = results
        self.tags: dict[str, list[dict[str, str]]] = {}  # tags of resources outside the model (ARN -> tags)
        self.objects = Objects()
        rates = dict(rate_limits or {})
        if creates_per_second:
            rates.setdefault("CreateTrainingJob", (creates_per_second, 1.0))
        self._planning = True
        super().__init__(TrainingService(clock, quotas=Quotas(instance_quota, warm_pool_quota), rates=rates,
                                         planner=self._plan, objects=self.objects, stop_seconds=stop_seconds,
                                         kind_of=_kind))

    # -- what tests read -----------------------------------------------------------------------------------------
    @property
    def clock(self) -> Any:
        return self.service.clock

    @property
    def jobs(self) -> dict[str, TrainingJob]:
        return self.service.jobs

    @property
    def calls(self) -> list:
        return self.service.calls

    @calls.setter
    def calls(self, value: list) -> None:
        self.service.calls[:] = value

    def count(self, operation: str, outcome: str | None = "OK") -> int:
        return self.service.count(operation, outcome)

    def end_time(self, name: str) -> float:
        """When the job ends (or ended) by itself: created + its plan's phases, or when it actually ended."""
        job = self.jobs[name]
        plan = job.plan
        if plan is None or plan.training is None:
            return float(job.end_time if job.end_time is not None else job.created)
        run = plan.training if not plan.failure or plan.fail_after is None else min(plan.fail_after, plan.training)
        return job.created + plan.provisioning + plan.downloading + run + plan.uploading

    def status(self, name: str) -> tuple[str, str]:
        self.service.catch_up()
        job = self.jobs[name]
        return job.status, job.secondary

    def add_job(self, request: dict, status: str, failure: str | None = None) -> None:
        """A job that exists before the test starts (e.g. from a previous coordinator attempt), already ended;
        a Completed fold job has its outputs in place, as the service would have left them."""
        self._planning = False
        try:
            job = self.service.create(request)
        finally:
            self._planning = True
        if status == "Completed" and "fold" in (request.get("HyperParameters") or {}):
            plan = self._plan(request, warm=False)
            assert plan is not None and plan.outputs is not None and plan.metrics is not None
            self.objects.put(self.output_uri(job.name), archive(plan.outputs()))
            self.service.set_final_metrics(job.name, plan.metrics())
        self.service.finish(job.name, status, failure)

    # -- the jobs' timing and results ----------------------------------------------------------------------------
    def _plan(self, request: Mapping[str, Any], warm: bool) -> JobPlan | None:
        if not self._planning:
            return None
        name = request["TrainingJobName"]
        if self.durations is not None:
            start, train = self.durations(dict(request))
        else:
            start = self.warm_start_seconds if warm else self.start_seconds
            train = self.train_seconds
        summary: dict[str, Any] = {}

        def result() -> dict[str, Any]:
            if not summary:
                job = self.jobs[name]
                if self.results is not None:
                    summary.update(self.results(job))
                else:
                    fold = int(request["HyperParameters"]["fold"])
                    summary.update(fold_summary(fold, 0.8 + 0.01 * fold, 0.9 + 0.01 * fold))
            return summary

        fold_job = "fold" in (request.get("HyperParameters") or {})
        return JobPlan(
            provisioning=max(0.0, start - self.download_seconds), downloading=min(start, self.download_seconds),
            training=train, failure=self.failures.get(name),
            outputs=(lambda: metrics_file(result())) if fold_job else None,
            metrics=(lambda: [{"MetricName": "validation:score", "Value": result()["validation_score"]},
                              {"MetricName": "train:score", "Value": result()["train_score"]}]) if fold_job else None)

    # -- injected faults -------------------------------------------------------------------------------------------
    def call(self, operation: str, name: str, action: Callable[[], Any]) -> Any:
        injected = operation in self.throttle_always or self.throttle.get(operation, 0) > 0
        if injected:
            if operation not in self.throttle_always:
                self.throttle[operation] -= 1
            self.service.catch_up()
            self.service.record(operation, name, "ThrottlingException")
            raise client_error("ThrottlingException", "Rate exceeded", operation)
        if operation == "CreateTrainingJob" and self.quota_message and self.quota_times != 0:
            if self.quota_times is not None:
                self.quota_times -= 1
            self.service.catch_up()
            self.service.record(operation, name, "ResourceLimitExceeded")
            raise client_error("ResourceLimitExceeded", self.quota_message, operation)
        return super().call(operation, name, action)

    def list_tags(self, *, ResourceArn: str, **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        if ResourceArn in self.tags:
            self.service.record("ListTags", ResourceArn.rsplit("/", 1)[-1])
            return {"Tags": list(self.tags[ResourceArn])}
        return super().list_tags(ResourceArn=ResourceArn, **kwargs)

    def output_uri(self, name: str) -> str:
        return output_locations(self.jobs[name].request, name)["output"]


class SimulatedS3(ObjectsApi):
    """The S3 client a coordinator reads fold outputs with; `drop_archives` on the simulator hides them all."""

    def __init__(self, sagemaker: SimulatedSageMaker):
        super().__init__(sagemaker.service, sagemaker.objects)
        self.sagemaker = sagemaker

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        if self.sagemaker.drop_archives:
            self.service.record("GetObject", Key.split("/")[-3] if Key.count("/") >= 2 else Key, "NoSuchKey")
            raise client_error("NoSuchKey", "The specified key does not exist.", "GetObject", 404)
        return super().get_object(Bucket=Bucket, Key=Key)
