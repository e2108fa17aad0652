"""The one small interface through which the coordinator and the driver talk to AWS.

Five SageMaker operations (CreateTrainingJob, DescribeTrainingJob, ListTrainingJobs, StopTrainingJob,
ListTags) and four S3 ones (the fold jobs' outputs read; the driver's checkpoint and result written,
listed and pruned), each turning botocore's error codes into the few outcomes the runner decides on.
The clients are duck-typed: anything with boto3's method names and keyword arguments that raises
`botocore.exceptions.ClientError` works, which is how a simulator drives the real runner with simulated
SageMaker and simulated time. Every call is counted, so a trial can report its API cost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from warmcv.errors import WarmcvError

# Error codes botocore's retry handlers treat as throttling (standard/adaptive modes), plus server errors.
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown",
    "PriorRequestNotComplete", "EC2ThrottledException",
})
SERVER_ERROR_CODES = frozenset({
    "InternalFailure", "InternalError", "InternalServerError", "InternalServerException", "ServiceUnavailable",
    "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException",
})


class SageMakerClient(Protocol):
    """The part of boto3's SageMaker client the coordinator uses (a simulator implements just this)."""

    def create_training_job(self, **request: Any) -> Mapping[str, Any]: ...

    def describe_training_job(self, *, TrainingJobName: str) -> Mapping[str, Any]: ...

    def stop_training_job(self, *, TrainingJobName: str) -> Mapping[str, Any]: ...

    def list_training_jobs(self, **filters: Any) -> Mapping[str, Any]: ...

    def list_tags(self, *, ResourceArn: str, MaxResults: int = ..., NextToken: str = ...) -> Mapping[str, Any]:
        ...


class S3Client(Protocol):
    """`get_object` returns {"Body": <readable>, "ContentLength": int} like boto3's."""

    def get_object(self, *, Bucket: str, Key: str) -> Mapping[str, Any]: ...


class WritableS3Client(S3Client, Protocol):
    """The driver also writes, lists and deletes (its checkpoint and its result); a coordinator only reads."""

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **extra: Any) -> Mapping[str, Any]: ...

    def list_objects_v2(self, *, Bucket: str, Prefix: str, **extra: Any) -> Mapping[str, Any]: ...

    def delete_object(self, *, Bucket: str, Key: str) -> Mapping[str, Any]: ...


class ApiError(WarmcvError):
    """An AWS call did not do what was asked; subclasses say what the runner should make of it."""

    def __init__(self, operation: str, code: str, message: str):
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.aws_message = message


class TransientError(ApiError):
    """Throttled, a server error or no connection, after botocore's own retries: try again later."""

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLING_CODES


class JobExists(ApiError):
    """CreateTrainingJob: a job with this name exists already (ResourceInUse)."""


class JobNotFound(ApiError):
    """No such job (or S3 object)."""


class NotStoppable(ApiError):
    """StopTrainingJob on a job that has already ended."""


class QuotaExceeded(ApiError):
    """ResourceLimitExceeded: an account quota is used up. `quota` is its Service Quotas name when AWS gave it."""

    @property
    def quota(self) -> str | None:
        match = re.search(r"'([^']+)'", self.aws_message)
        return match.group(1) if match else None


class AccessDenied(ApiError):
    """The role lacks a permission."""


class RequestRejected(ApiError):
    """ValidationException and every other client error: the request itself is wrong."""


def _classify(error: ClientError, operation: str) -> ApiError:
    details = error.response.get("Error", {})
    code = str(details.get("Code", "Unknown"))
    message = str(details.get("Message", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in THROTTLING_CODES or code in SERVER_ERROR_CODES or status >= 500:
        return TransientError(operation, code, message)
    if code == "ResourceInUse":
        return JobExists(operation, code, message)
    if code in ("ResourceNotFound", "NoSuchKey", "NoSuchBucket", "404") or (
            code == "ValidationException" and "not found" in message.lower()):
        return JobNotFound(operation, code, message)
    if code == "ResourceLimitExceeded":
        return QuotaExceeded(operation, code, message)
    if code in ("AccessDenied", "AccessDeniedException", "403", "UnauthorizedOperation"):
        return AccessDenied(operation, code, message)
    if operation == "StopTrainingJob" and code == "ValidationException":
        return NotStoppable(operation, code, message)
    return RequestRejected(operation, code, message)


@dataclass
class ApiCalls:
    """Calls made by one coordinator (each counted once, however often botocore retried it)."""

    creates: int = 0
    describes: int = 0
    lists: int = 0  # ListTrainingJobs pages
    stops: int = 0
    list_tags: int = 0
    s3_reads: int = 0
    s3_writes: int = 0  # puts, lists and deletes (the driver's checkpoint and result)
    throttled: int = 0  # calls that were still throttled after botocore's retries
    errors: int = 0  # calls that ended in any error (including the expected ResourceInUse on adoption)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.creates} creates, {self.lists} lists, {self.describes} describes, {self.stops} stops, "
                f"{self.list_tags} list-tags, {self.s3_reads} S3 reads ({self.throttled} throttled after retries)"
                + (f", {self.s3_writes} S3 writes" if self.s3_writes else ""))


def split_s3_uri(uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
    if not match:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return match.group(1), match.group(2)


class TrainingJobsApi:
    """SageMaker training jobs and their S3 outputs, as the coordinator needs them.

    `sagemaker` serves creates and polls; `prompt` (defaults to `sagemaker`) serves self-discovery and
    stops, which must answer quickly; `s3` reads the fold jobs' output archives. `creator` (defaults to
    `sagemaker`) sends the creates: the driver paces them itself, through a client without adaptive mode's
    client-side rate limiting, which throttled polls would otherwise turn on for the creates too.
    """

    def __init__(self, sagemaker: SageMakerClient, s3: S3Client | None = None, prompt: SageMakerClient | None = None,
                 calls: ApiCalls | None = None, creator: SageMakerClient | None = None):
        self.sagemaker = sagemaker
        self.prompt = prompt if prompt is not None else sagemaker
        self.creator = creator if creator is not None else sagemaker
        self.s3 = s3
        self.calls = calls if calls is not None else ApiCalls()

    def _call(self, counter: str, operation: str, method: Any, **kwargs: Any) -> Any:
        setattr(self.calls, counter, getattr(self.calls, counter) + 1)
        try:
            return method(**kwargs)
        except ClientError as error:
            classified = _classify(error, operation)
        except (BotoConnectionError, HTTPClientError) as error:
            classified = TransientError(operation, type(error).__name__, str(error))
        self.calls.errors += 1
        if isinstance(classified, TransientError) and classified.throttled:
            self.calls.throttled += 1
        raise classified

    def create_training_job(self, request: dict[str, Any]) -> str:
        """Returns the new job's ARN; raises JobExists when the name is taken."""
        response = self._call("creates", "CreateTrainingJob", self.creator.create_training_job, **request)
        return str(response.get("TrainingJobArn", ""))

    def describe_training_job(self, name: str, prompt: bool = False) -> dict[str, Any]:
        client = self.prompt if prompt else self.sagemaker
        return self._call("describes", "DescribeTrainingJob", client.describe_training_job, TrainingJobName=name)

    def list_training_jobs(self, name_contains: str | None = None,
                           created_after: datetime | None = None) -> list[dict[str, Any]]:
        """Every TrainingJobSummary whose name contains `name_contains` and that was created after `created_after`.

        One ListTrainingJobs request per page of 100 (newest first). The creation-time filter keeps the answer
        to the jobs made since this coordinator's own job was created, however long the account's history.
        """
        summaries: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"MaxResults": 100, "SortBy": "CreationTime", "SortOrder": "Descending"}
        if name_contains:
            kwargs["NameContains"] = name_contains
        if created_after is not None:
            kwargs["CreationTimeAfter"] = created_after
        while True:
            page = self._call("lists", "ListTrainingJobs", self.sagemaker.list_training_jobs, **kwargs)
            summaries.extend(page.get("TrainingJobSummaries", []))
            token = page.get("NextToken")
            if not token:
                return summaries
            kwargs["NextToken"] = token

    def stop_training_job(self, name: str) -> None:
        """Raises NotStoppable when the job has already ended, JobNotFound when it never existed."""
        self._call("stops", "StopTrainingJob", self.prompt.stop_training_job, TrainingJobName=name)

    def list_tags(self, arn: str) -> list[dict[str, str]]:
        tags: list[dict[str, str]] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"ResourceArn": arn, "MaxResults": 100}
            if token:
                kwargs["NextToken"] = token
            response = self._call("list_tags", "ListTags", self.prompt.list_tags, **kwargs)
            tags.extend(response.get("Tags", []))
            token = response.get("NextToken")
            if not token:
                return tags

    def read_s3_object(self, uri: str, max_bytes: int = 256 * 1024 * 1024) -> bytes:
        if self.s3 is None:
            raise RuntimeError("no S3 client configured")
        bucket, key = split_s3_uri(uri)
        response = self._call("s3_reads", "GetObject", self.s3.get_object, Bucket=bucket, Key=key)
        length = int(response.get("ContentLength") or 0)
        if length > max_bytes:
            raise RequestRejected("GetObject", "TooLarge", f"{uri} has {length} bytes (limit {max_bytes})")
        return response["Body"].read()

    def _s3_client(self) -> WritableS3Client:
        if self.s3 is None:
            raise RuntimeError("no S3 client configured")
        return self.s3  # type: ignore[return-value]  # the driver's clients are boto3's, which write too

    def write_s3_object(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        bucket, key = split_s3_uri(uri)
        self._call("s3_writes", "PutObject", self._s3_client().put_object, Bucket=bucket, Key=key, Body=data,
                   ContentType=content_type)

    def list_s3_keys(self, prefix_uri: str) -> list[str]:
        """Every key under `s3://bucket/prefix` (one ListObjectsV2 request per 1,000 keys)."""
        bucket, prefix = split_s3_uri(prefix_uri)
        keys: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        while True:
            page = self._call("s3_writes", "ListObjectsV2", self._s3_client().list_objects_v2, **kwargs)
            keys.extend(item["Key"] for item in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return keys
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def delete_s3_object(self, uri: str) -> None:
        bucket, key = split_s3_uri(uri)
        self._call("s3_writes", "DeleteObject", self._s3_client().delete_object, Bucket=bucket, Key=key)
