"""boto3-shaped clients over the service model: what code written against boto3 talks to.

`SageMakerApi` has boto3's SageMaker method names and keyword arguments and raises
`botocore.exceptions.ClientError` with SageMaker's error codes, so the real coordinator (through
`warmcv.aws.training_jobs`) cannot tell it from AWS; each call is first held to the account's request
rate, then recorded in the service's call log. `ObjectsApi` is the S3 side: the outputs the service
wrote for completed jobs, read with `get_object`. Neither retries: a client of one process, with
botocore's retry modes, is `warmcv.simulation.clients.SimulatedClient`; over HTTP, botocore itself.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from warmcv.training_service.service import ServiceError, TrainingService


def client_error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class SageMakerApi:
    """The training-job operations of boto3's SageMaker client, answered by `service`."""

    def __init__(self, service: TrainingService):
        self.service = service

    def call(self, operation: str, name: str, action: Callable[[], Any]) -> Any:
        """Rate-limit, run and record one request; errors come back as ClientError, as from botocore."""
        self.service.catch_up()
        try:
            self.service.admit(operation, name)
            result = action()
        except ServiceError as error:
            self.service.record(operation, name, error.code)
            raise client_error(error.code, error.message, operation, error.status) from None
        self.service.record(operation, name)
        return result

    def create_training_job(self, **request: Any) -> dict[str, Any]:
        name = str(request.get("TrainingJobName", ""))
        return self.call("CreateTrainingJob", name, lambda: {"TrainingJobArn": self.service.create(request).arn})

    def describe_training_job(self, *, TrainingJobName: str) -> dict[str, Any]:  # noqa: N803 - boto3's keyword
        return self.call("DescribeTrainingJob", TrainingJobName, lambda: self.service.describe(TrainingJobName))

    def stop_training_job(self, *, TrainingJobName: str) -> dict[str, Any]:  # noqa: N803
        def stop() -> dict[str, Any]:
            self.service.stop(TrainingJobName)
            return {}
        return self.call("StopTrainingJob", TrainingJobName, stop)

    def update_training_job(self, *, TrainingJobName: str, ResourceConfig: Mapping[str, Any] | None = None,  # noqa: N803
                            **_: Any) -> dict[str, Any]:
        def update() -> dict[str, Any]:
            if ResourceConfig is not None:
                self.service.update_keep_alive(TrainingJobName, int(ResourceConfig["KeepAlivePeriodInSeconds"]))
            return {"TrainingJobArn": self.service.job(TrainingJobName).arn}
        return self.call("UpdateTrainingJob", TrainingJobName, update)

    def list_training_jobs(self, **request: Any) -> dict[str, Any]:
        return self.call("ListTrainingJobs", str(request.get("NameContains") or ""),
                         lambda: self.service.list_jobs(**request))

    def list_tags(self, *, ResourceArn: str, MaxResults: int | None = None,  # noqa: N803
                  NextToken: str | None = None) -> dict[str, Any]:  # noqa: N803
        name = ResourceArn.rsplit("/", 1)[-1]
        return self.call("ListTags", name, lambda: {"Tags": self.service.tags(ResourceArn)})


class Objects:
    """S3 objects the service wrote (completed jobs' outputs), each possibly produced only when first read."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes | Callable[[], bytes]] = {}

    def put(self, uri: str, data: bytes | Callable[[], bytes]) -> None:
        self._objects[uri] = data

    def get(self, uri: str) -> bytes | None:
        data = self._objects.get(uri)
        if callable(data):
            data = self._objects[uri] = data()
        return data


class ObjectsApi:
    """boto3's S3 `get_object` over `Objects`; NoSuchKey (404) for anything not written. Calls are logged in the
    service's call log with the job name the key belongs to (`<prefix>/<job>/output/<file>`)."""

    def __init__(self, service: TrainingService, objects: Objects):
        self.service, self.objects = service, objects

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 - S3's keywords
        self.service.catch_up()
        parts = Key.split("/")
        name = parts[-3] if len(parts) >= 3 else Key
        data = self.objects.get(f"s3://{Bucket}/{Key}")
        if data is None:
            self.service.record("GetObject", name, "NoSuchKey")
            raise client_error("NoSuchKey", "The specified key does not exist.", "GetObject", 404)
        self.service.record("GetObject", name)
        return {"Body": io.BytesIO(data), "ContentLength": len(data)}
