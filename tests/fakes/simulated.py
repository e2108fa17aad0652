"""A boto3-shaped SageMaker (and S3) in simulated time, for unit tests of the runner's timing logic.

The runner sees the same duck-typed methods and `ClientError`s as with boto3, but jobs advance on a
`ManualClock` that the runner itself moves by sleeping: a 5-minute trial runs in milliseconds, and every
poll, gap and backoff can be counted exactly. No botocore retries happen here, so a ThrottlingException
reaches the runner's own backoff directly (as it would after botocore's attempts are used up).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from warmcv.clock import ManualClock

ACCOUNT = "123456789012"


def client_error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


def metrics_archive(summary: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    data = json.dumps(summary).encode()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("metrics.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def fold_summary(fold: int, validation: float, train: float, best_iteration: int = 40) -> dict[str, Any]:
    """What the worker writes to metrics.json (the fields FoldResult.from_summary reads)."""
    return {"fold": fold, "validation_score": validation, "train_score": train, "best_iteration": best_iteration,
            "n_train": 800, "n_valid": 400, "seconds": 1.5, "metric": "auc", "direction": "Maximize"}


@dataclass
class SimJob:
    request: dict
    created: float
    start: float  # seconds in Starting
    train: float  # seconds in Training
    fail_reason: str | None = None
    stopped_at: float | None = None
    status_override: str | None = None


@dataclass
class SimulatedSageMaker:
    clock: ManualClock
    start_seconds: float = 180.0
    train_seconds: float = 120.0
    creates_per_second: float | None = None  # throttle creates above this rate (token bucket, burst 1)
    durations: Callable[[dict], tuple[float, float]] | None = None  # request -> (start, train)
    failures: dict[str, str] = field(default_factory=dict)  # job name -> FailureReason (fails when training ends)
    throttle: dict[str, int] = field(default_factory=dict)  # operation -> next N calls throttled
    throttle_always: set[str] = field(default_factory=set)
    quota_message: str | None = None  # CreateTrainingJob -> ResourceLimitExceeded
    drop_archives: bool = False
    tags: dict[str, list] = field(default_factory=dict)
    jobs: dict[str, SimJob] = field(default_factory=dict)
    calls: list[tuple[float, str, str, str]] = field(default_factory=list)
    scores: Callable[[int], tuple[float, float]] = lambda fold: (0.8 + 0.01 * fold, 0.9 + 0.01 * fold)
    _tokens: float = 1.0
    _tokens_at: float = 0.0

    def _record(self, operation: str, name: str, outcome: str = "OK") -> None:
        self.calls.append((self.clock.monotonic(), operation, name, outcome))

    def _maybe_throttle(self, operation: str, name: str) -> None:
        if operation in self.throttle_always or self.throttle.get(operation, 0) > 0:
            if operation not in self.throttle_always:
                self.throttle[operation] -= 1
            self._record(operation, name, "ThrottlingException")
            raise client_error("ThrottlingException", "Rate exceeded", operation)

    def count(self, operation: str, outcome: str | None = "OK") -> int:
        return sum(1 for c in self.calls if c[1] == operation and (outcome is None or c[3] == outcome))

    # -- boto3-shaped methods ----------------------------------------------------------------------------
    def create_training_job(self, **request: Any) -> dict:
        name = request["TrainingJobName"]
        self._maybe_throttle("CreateTrainingJob", name)
        if self.creates_per_second:
            now = self.clock.monotonic()
            self._tokens = min(1.0, self._tokens + (now - self._tokens_at) * self.creates_per_second)
            self._tokens_at = now
            if self._tokens < 1.0:
                self._record("CreateTrainingJob", name, "ThrottlingException")
                raise client_error("ThrottlingException", "Rate exceeded", "CreateTrainingJob")
            self._tokens -= 1.0
        if self.quota_message:
            self._record("CreateTrainingJob", name, "ResourceLimitExceeded")
            raise client_error("ResourceLimitExceeded", self.quota_message, "CreateTrainingJob")
        if name in self.jobs:
            self._record("CreateTrainingJob", name, "ResourceInUse")
            raise client_error("ResourceInUse", "Training job names must be unique", "CreateTrainingJob")
        start, train = self.durations(request) if self.durations else (self.start_seconds, self.train_seconds)
        self.jobs[name] = SimJob(request, self.clock.monotonic(), start, train, self.failures.get(name))
        self.tags[self.arn(name)] = list(request.get("Tags", []))
        self._record("CreateTrainingJob", name)
        return {"TrainingJobArn": self.arn(name)}

    def describe_training_job(self, TrainingJobName: str) -> dict:
        self._maybe_throttle("DescribeTrainingJob", TrainingJobName)
        job = self.jobs.get(TrainingJobName)
        if job is None:
            self._record("DescribeTrainingJob", TrainingJobName, "ValidationException")
            raise client_error("ValidationException", "Requested resource not found.", "DescribeTrainingJob")
        self._record("DescribeTrainingJob", TrainingJobName)
        return self._describe(job)

    def stop_training_job(self, TrainingJobName: str) -> dict:
        self._maybe_throttle("StopTrainingJob", TrainingJobName)
        job = self.jobs.get(TrainingJobName)
        if job is None:
            self._record("StopTrainingJob", TrainingJobName, "ValidationException")
            raise client_error("ValidationException", "Requested resource not found.", "StopTrainingJob")
        status = self._describe(job)["TrainingJobStatus"]
        if status != "InProgress":
            self._record("StopTrainingJob", TrainingJobName, "ValidationException")
            raise client_error("ValidationException", f"The training job is in status {status}.", "StopTrainingJob")
        job.stopped_at = self.clock.monotonic()
        self._record("StopTrainingJob", TrainingJobName)
        return {}

    def list_tags(self, ResourceArn: str, **_: Any) -> dict:
        self._record("ListTags", ResourceArn)
        return {"Tags": self.tags.get(ResourceArn, [])}

    def get_object(self, Bucket: str, Key: str) -> dict:
        name = Key.split("/")[-3]
        job = self.jobs.get(name)
        self._record("GetObject", name)
        if job is None or self.drop_archives or self._describe(job)["TrainingJobStatus"] != "Completed":
            raise client_error("NoSuchKey", "The specified key does not exist.", "GetObject", 404)
        fold = int(job.request["HyperParameters"]["fold"])
        validation, train = self.scores(fold)
        data = metrics_archive(fold_summary(fold, validation, train))
        return {"Body": io.BytesIO(data), "ContentLength": len(data)}

    # -- state ----------------------------------------------------------------------------------------------
    def arn(self, name: str) -> str:
        return f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/{name}"

    def add_job(self, request: dict, status: str, failure: str | None = None) -> None:
        """A job that exists before the test starts (e.g. from a previous coordinator attempt)."""
        self.jobs[request["TrainingJobName"]] = SimJob(request, self.clock.monotonic() - 10_000, 0, 0, failure,
                                                        status_override=status)

    def end_time(self, name: str) -> float:
        job = self.jobs[name]
        return job.created + job.start + job.train

    def _describe(self, job: SimJob) -> dict:
        now = self.clock.monotonic()
        elapsed = now - job.created
        name = job.request["TrainingJobName"]
        out = {k: v for k, v in job.request.items() if k not in ("Tags", "TrainingJobName")}
        out.update({"TrainingJobName": name, "TrainingJobArn": self.arn(name),
                    "ModelArtifacts": {"S3ModelArtifacts": f"{job.request['OutputDataConfig']['S3OutputPath']}/"
                                                          f"{name}/output/model.tar.gz"},
                    "CreationTime": self.clock.time() - elapsed})
        if job.status_override:
            status, secondary = job.status_override, job.status_override
        elif job.stopped_at is not None:
            status, secondary = ("Stopped", "Stopped") if now >= job.stopped_at + 5 else ("Stopping", "Stopping")
        elif elapsed < job.start:
            status, secondary = "InProgress", "Starting"
        elif elapsed < job.start + job.train:
            status, secondary = "InProgress", "Training"
        elif job.fail_reason:
            status, secondary = "Failed", "Failed"
        else:
            status, secondary = "Completed", "Completed"
            fold = int(job.request["HyperParameters"]["fold"])
            validation, train = self.scores(fold)
            out["FinalMetricDataList"] = [{"MetricName": "validation:score", "Value": validation},
                                          {"MetricName": "train:score", "Value": train}]
            out["TrainingTimeInSeconds"] = int(job.train)
        if status == "Failed":
            out["FailureReason"] = job.fail_reason
        out["TrainingJobStatus"], out["SecondaryStatus"] = status, secondary
        return out


@dataclass
class SimulatedS3:
    sagemaker: SimulatedSageMaker

    def get_object(self, Bucket: str, Key: str) -> dict:
        return self.sagemaker.get_object(Bucket=Bucket, Key=Key)
