"""Setting up a trial on the fake SageMaker: prepared data in moto S3 and a coordinator job request."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.fakes.s3 import MotoS3
from tests.fakes.sagemaker import ACCOUNT, FakeSageMaker
from warmcv.declarations import COORDINATOR_METRICS, metric_definitions

BUCKET = "warmcv-tests"
IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/warmcv:test"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/warmcv-coordinator"
# Test-speed timing for the coordinator processes (production defaults are seconds to a minute).
FAST_TIMING = ("create_interval=0.15,poll_min=0.15,poll_fraction=0.05,poll_max=0.6,retry_min=0.2,retry_max=1.5,"
               "quota_retry_min=0.3,quota_retry_max=1,quota_patience=4,stop_budget=20,deadline_margin=5,local_check=0.1")


def coordinator_request(name: str, data_uri: str, hyperparameters: dict[str, str], *,
                        keep_alive: int = 600, max_runtime: int = 3600, **extra: Any) -> dict[str, Any]:
    """What the tuner sends for one trial: mode=coordinator plus the trial's values."""
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                   "MetricDefinitions": metric_definitions(COORDINATOR_METRICS)},
        "RoleArn": ROLE,
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": data_uri, "S3DataDistributionType": "FullyReplicated"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "HyperParameters": {"mode": "coordinator", "num_threads": "1", "keep_alive_seconds": str(keep_alive),
                            "num_boost_round": "30", **hyperparameters},
        "Tags": [{"Key": "project", "Value": "warmcv-tests"}, {"Key": "cost-center", "Value": "ml-42"}],
    }
    request.update(extra)
    return request


def driver_request(name: str, data_uri: str, hyperparameters: dict[str, str], *, max_runtime: int = 3600,
                   checkpoint: bool = True, **extra: Any) -> dict[str, Any]:
    """What the pipeline's Search step sends: the image in mode=driver on a small instance, a checkpoint location,
    the prepared data as its channel (its fold jobs copy it) and the search's settings."""
    request = coordinator_request(name, data_uri, {}, max_runtime=max_runtime, **extra)
    request["ResourceConfig"] = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}
    request["HyperParameters"] = {"mode": "driver", "num_threads": "1", "keep_alive_seconds": "600",
                                  "num_boost_round": "30", "fold_instance_type": "ml.m5.xlarge",
                                  "result_s3_uri": f"s3://{BUCKET}/evaluation/{name}", **hyperparameters}
    if checkpoint:
        request["CheckpointConfig"] = {"S3Uri": f"s3://{BUCKET}/checkpoints/{name}"}
    return request


def read_json(s3: MotoS3, uri: str) -> dict[str, Any]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return json.loads(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read())


def read_archive_json(s3: MotoS3, uri: str, member: str) -> dict[str, Any]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        handle = tar.extractfile(member)
        assert handle is not None
        return json.loads(handle.read())


def output_uri(fake: FakeSageMaker, name: str, file: str) -> str:
    job = fake.jobs[name]
    return f"{job.request['OutputDataConfig']['S3OutputPath']}/{name}/output/{file}"


def api_calls(fake: FakeSageMaker, coordinator: str) -> dict[str, int]:
    """The SageMaker calls one coordinator's trial made, as the fake saw them (HTTP requests, retries included)."""
    folds = coordinator + "-f"
    return {
        "creates": fake.count("CreateTrainingJob", prefix=folds),
        "creates_ok": fake.count("CreateTrainingJob", "OK", prefix=folds),
        "describes": fake.count("DescribeTrainingJob", prefix=folds),
        "self_describes": sum(1 for c in fake.calls if c.operation == "DescribeTrainingJob" and c.name == coordinator),
        "stops": fake.count("StopTrainingJob", prefix=folds),
        "throttled": sum(1 for c in fake.calls if c.name.startswith(folds) and c.outcome == "ThrottlingException"),
    }


def upload_prepared(s3: MotoS3, prepared: Path, prefix: str = "prepared") -> str:
    return s3.upload_dir(prepared, BUCKET, prefix)


def ensure_bucket(s3: MotoS3) -> None:
    client = s3.client()
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)


def dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))


@contextlib.contextmanager
def fake_factory(s3_url: str, folder: Path) -> Iterator[Callable[..., FakeSageMaker]]:
    """Makes FakeSageMakers for one test (each in a folder of its own, fold jobs on FAST_TIMING unless the
    test says otherwise) and closes every one afterwards."""
    fakes: list[FakeSageMaker] = []

    def make(**options: Any) -> FakeSageMaker:
        options.setdefault("child_env", {"WARMCV_SAGEMAKER_TIMING": FAST_TIMING})
        fake = FakeSageMaker(s3_url, folder / f"fake{len(fakes)}", **options)
        fakes.append(fake)
        return fake

    try:
        yield make
    finally:
        for fake in fakes:
            fake.close()


@contextlib.contextmanager
def s3_with_bucket() -> Iterator[MotoS3]:
    """A moto S3 server on 127.0.0.1 with the tests' bucket, closed afterwards."""
    server = MotoS3()
    ensure_bucket(server)
    try:
        yield server
    finally:
        server.close()
