"""Exact CreateTrainingJob requests of fold jobs, checked field by field with botocore's Stubber.

The Stubber validates every request against the real service model (types, minimums, unknown fields)
but not maximums or name patterns: those limits are checked by warmcv itself and tested here too.
"""

from __future__ import annotations

import io
import logging
import re
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from tests.fakes.simulated import fold_summary, metrics_archive
from warmcv.aws import tags as tag_keys
from warmcv.aws.fold_jobs import (
    JOB_NAME_PATTERN,
    FoldJobTemplate,
    check_hyperparameters,
    clamp_keep_alive,
    fold_job_name,
    fold_tags,
    identity_differences,
)
from warmcv.aws.training_jobs import TrainingJobsApi
from warmcv.clock import ManualClock
from warmcv.cv import FoldTask
from warmcv.declarations import parse_hyperparameters
from warmcv.errors import UserInputError
from warmcv.runners.sagemaker import SageMakerFoldRunner, Timing, region_from_arn

PARENT = "tune-lgbm-0917-003-1a2b3c4d"
PARENT_ARN = f"arn:aws:sagemaker:eu-west-1:123456789012:training-job/{PARENT}"
TUNING_ARN = "arn:aws:sagemaker:eu-west-1:123456789012:hyper-parameter-tuning-job/tune-lgbm-0917"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/warmcv:1.0"
ROLE = "arn:aws:iam::123456789012:role/ml/warmcv-coordinator"
VOLUME_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1111-volume"
OUTPUT_KEY = "arn:aws:kms:eu-west-1:123456789012:key/2222-output"
CHANNELS = [{
    "ChannelName": "train",
    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://ml-bucket/prepared/census",
                                    "S3DataDistributionType": "FullyReplicated"}},
    "CompressionType": "None", "InputMode": "File",
}]
VPC = {"SecurityGroupIds": ["sg-0abc"], "Subnets": ["subnet-1", "subnet-2"]}


def coordinator_description(clock: ManualClock, **changes) -> dict:
    """DescribeTrainingJob of a tuner-launched coordinator, with every setting a fold job must copy."""
    started = datetime.fromtimestamp(clock.time(), tz=UTC) - timedelta(seconds=600)
    description = {
        "TrainingJobName": PARENT, "TrainingJobArn": PARENT_ARN, "TuningJobArn": TUNING_ARN,
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://ml-bucket/out/{PARENT}/output/model.tar.gz"},
        "TrainingJobStatus": "InProgress", "SecondaryStatus": "Training",
        "HyperParameters": {"mode": "coordinator", "num_leaves": "63", "keep_alive_seconds": "900",
                            "_tuning_objective_metric": "validation:score", "sagemaker_estimator_module": '"x"'},
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE, "TrainingInputMode": "File", "EnableSageMakerMetricsTimeSeries": False,
            "MetricDefinitions": [{"Name": "validation:score", "Regex": "average model validation score:(.*?);"}],
        },
        "RoleArn": ROLE, "InputDataConfig": CHANNELS,
        "OutputDataConfig": {"S3OutputPath": "s3://ml-bucket/out", "KmsKeyId": OUTPUT_KEY},
        "ResourceConfig": {"InstanceType": "ml.m5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50,
                           "VolumeKmsKeyId": VOLUME_KEY},
        "VpcConfig": VPC,
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 9000},
        "CreationTime": started - timedelta(seconds=200), "TrainingStartTime": started,
        "EnableNetworkIsolation": False, "EnableInterContainerTrafficEncryption": True,
        "EnableManagedSpotTraining": True,
        "CheckpointConfig": {"S3Uri": "s3://ml-bucket/checkpoints"},
        "Environment": {"WARMCV_LOG_LEVEL": "DEBUG"},
        "RetryStrategy": {"MaximumRetryAttempts": 2},
    }
    description.update(changes)
    return description


COORDINATOR_TAGS = [
    {"Key": "project", "Value": "churn"},
    {"Key": "aws:cloudformation:stack-name", "Value": "ml-stack"},  # reserved: never copied
    {"Key": "sagemaker:pipeline-execution", "Value": "exec-9"},
    {"Key": tag_keys.ROLE, "Value": "something-else"},  # warmcv's own keys are set anew, not copied
]


def expected_fold_request(fold: int) -> dict:
    """The literal request a fold job must get (written out, not derived from the code under test)."""
    return {
        "TrainingJobName": f"{PARENT}-f{fold}",
        "HyperParameters": {"mode": "worker", "fold": str(fold), "num_leaves": "63", "keep_alive_seconds": "900"},
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE, "TrainingInputMode": "File", "EnableSageMakerMetricsTimeSeries": False,
            "MetricDefinitions": [{"Name": "validation:score", "Regex": "validation score:(.*?);"},
                                  {"Name": "train:score", "Regex": "train score:(.*?);"}],
        },
        "RoleArn": ROLE,
        "InputDataConfig": CHANNELS,
        "OutputDataConfig": {"S3OutputPath": "s3://ml-bucket/out", "KmsKeyId": OUTPUT_KEY},
        "ResourceConfig": {"InstanceType": "ml.m5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50,
                           "VolumeKmsKeyId": VOLUME_KEY, "KeepAlivePeriodInSeconds": 900},
        "VpcConfig": VPC,
        # 7200 s allowed, 600 s used: a fold may not outlive its coordinator. No MaxWaitTimeInSeconds (spot only).
        "StoppingCondition": {"MaxRuntimeInSeconds": 6600},
        "EnableNetworkIsolation": False,
        "EnableInterContainerTrafficEncryption": True,
        "Environment": {"WARMCV_LOG_LEVEL": "DEBUG"},
        "RetryStrategy": {"MaximumRetryAttempts": 2},
        "Tags": [
            {"Key": "warmcv:parent-job", "Value": PARENT},
            {"Key": "warmcv:tuning-job", "Value": "tune-lgbm-0917"},
            {"Key": "warmcv:fold", "Value": str(fold)},
            {"Key": "warmcv:role", "Value": "fold"},
            {"Key": "project", "Value": "churn"},
            {"Key": "sagemaker:pipeline-execution", "Value": "exec-9"},
        ],
    }


def fold_description(fold: int) -> dict:
    request = expected_fold_request(fold)
    name = request["TrainingJobName"]
    return {
        "TrainingJobName": name, "TrainingJobArn": f"arn:aws:sagemaker:eu-west-1:123456789012:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://ml-bucket/out/{name}/output/model.tar.gz"},
        "TrainingJobStatus": "Completed", "SecondaryStatus": "Completed",
        "HyperParameters": request["HyperParameters"], "StoppingCondition": request["StoppingCondition"],
        "CreationTime": datetime(2026, 1, 1, tzinfo=UTC), "TrainingTimeInSeconds": 95,
        "BillableTimeInSeconds": 95, "WarmPoolStatus": {"Status": "Available"},
    }


@pytest.fixture
def clients():
    sagemaker = boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(sagemaker) as sm_stub, Stubber(s3) as s3_stub:
        yield sagemaker, sm_stub, s3, s3_stub
        sm_stub.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()


def test_fold_job_requests_copy_the_coordinator_field_by_field(clients, caplog):
    sagemaker, sm_stub, s3, s3_stub = clients
    clock = ManualClock()
    sm_stub.add_response("describe_training_job", coordinator_description(clock), {"TrainingJobName": PARENT})
    sm_stub.add_response("list_tags", {"Tags": COORDINATOR_TAGS}, {"ResourceArn": PARENT_ARN, "MaxResults": 100})
    for fold in (0, 1):
        sm_stub.add_response("create_training_job", {"TrainingJobArn": f"arn:x/{PARENT}-f{fold}"},
                             expected_fold_request(fold))
    for fold in (0, 1):
        sm_stub.add_response("describe_training_job", fold_description(fold), {"TrainingJobName": f"{PARENT}-f{fold}"})
        data = metrics_archive(fold_summary(fold, 0.8 + fold / 100, 0.9))
        s3_stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(data), len(data)),
                                            "ContentLength": len(data)},
                             {"Bucket": "ml-bucket", "Key": f"out/{PARENT}-f{fold}/output/output.tar.gz"})
    hps = parse_hyperparameters({"mode": "coordinator", "num_leaves": "63", "keep_alive_seconds": "900"})
    api = TrainingJobsApi(sagemaker, s3=s3)
    caplog.set_level(logging.INFO)
    runner = SageMakerFoldRunner.discover(api, PARENT, hps, clock=clock, timing=Timing(jitter=0.0))
    tasks = [FoldTask(fold, {"num_leaves": "63", "keep_alive_seconds": "900"}) for fold in (0, 1)]
    results = runner.run(tasks)
    assert [r.validation_score for r in results] == [0.8, 0.81]
    assert [r.executor for r in results] == [f"{PARENT}-f0", f"{PARENT}-f1"]
    assert api.calls.creates == 2 and api.calls.describes == 3 and api.calls.stops == 0
    # What was deliberately not copied is said in the log.
    assert "managed spot training" in caplog.text and "CheckpointConfig is not copied" in caplog.text


def test_stop_sends_stop_training_job_for_every_running_fold(clients):
    sagemaker, sm_stub, s3, _ = clients
    clock = ManualClock()
    template = FoldJobTemplate.from_parent(coordinator_description(clock), 300)
    for fold in (0, 1, 2):
        request = template.request(fold, {"mode": "worker", "fold": str(fold)})
        sm_stub.add_response("create_training_job", {"TrainingJobArn": "arn:x"}, request)
    runner = SageMakerFoldRunner(TrainingJobsApi(sagemaker, s3=s3), template, clock=clock)
    runner._folds = []
    from warmcv.runners.sagemaker import FoldJob

    for fold in (0, 1, 2):
        job = FoldJob(FoldTask(fold, {}))
        runner._folds.append(job)
        runner._launch(job)
    for fold in (0, 1, 2):
        sm_stub.add_response("stop_training_job", {}, {"TrainingJobName": f"{PARENT}-f{fold}"})
    runner.stop()
    runner.stop()  # idempotent: no second round of StopTrainingJob (the Stubber would reject an extra call)
    assert runner.api.calls.stops == 3


def test_network_isolated_coordinator_fails_with_a_clear_message(clients):
    sagemaker, sm_stub, s3, _ = clients
    clock = ManualClock()
    sm_stub.add_response("describe_training_job", coordinator_description(clock, EnableNetworkIsolation=True),
                         {"TrainingJobName": PARENT})
    sm_stub.add_response("list_tags", {"Tags": []}, {"ResourceArn": PARENT_ARN, "MaxResults": 100})
    with pytest.raises(UserInputError, match="network isolation") as error:
        SageMakerFoldRunner.discover(TrainingJobsApi(sagemaker, s3=s3), PARENT,
                                     parse_hyperparameters({"mode": "coordinator"}), clock=clock)
    assert "EnableNetworkIsolation" in str(error.value) and "fold_runner=local" in str(error.value)


def test_unreachable_api_is_reported_as_a_network_problem():
    """With network isolation the coordinator cannot even describe itself: say so instead of a traceback."""
    sagemaker = boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x",
                             endpoint_url="http://127.0.0.1:9",  # nothing listens on the discard port
                             config=__import__("botocore.config").config.Config(
                                 retries={"total_max_attempts": 1}, connect_timeout=1))
    with pytest.raises(UserInputError, match="cannot reach the SageMaker API") as error:
        SageMakerFoldRunner.discover(TrainingJobsApi(sagemaker), PARENT, parse_hyperparameters({"mode": "coordinator"}))
    assert "NAT gateway" in str(error.value) and "sagemaker.api" in str(error.value)


def test_keep_alive_is_clamped_to_sagemakers_range(caplog):
    # botocore's model allows up to 21600 and validates only the minimum: the service rejects > 3600.
    assert clamp_keep_alive(99999) == 3600
    assert clamp_keep_alive(-5) == 0
    assert clamp_keep_alive(3600) == 3600
    assert "outside 0..3600" in caplog.text
    template = FoldJobTemplate.from_parent(coordinator_description(ManualClock()), 99999)
    assert template.request(0, {"fold": "0"})["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 3600
    no_pool = FoldJobTemplate.from_parent(coordinator_description(ManualClock()), 0)
    assert "KeepAlivePeriodInSeconds" not in no_pool.request(0, {"fold": "0"})["ResourceConfig"]


def test_botocore_would_accept_what_sagemaker_rejects_so_warmcv_checks_it(clients):
    sagemaker, sm_stub, _, _ = clients
    request = FoldJobTemplate.from_parent(coordinator_description(ManualClock()), 600).request(0, {"fold": "0"})
    request["TrainingJobName"] = "x" * 70 + "_bad"
    request["ResourceConfig"]["KeepAlivePeriodInSeconds"] = 9999
    sm_stub.add_response("create_training_job", {"TrainingJobArn": "arn:x"}, request)
    sagemaker.create_training_job(**request)  # accepted client-side: only the service would refuse it
    with pytest.raises(UserInputError, match="not valid"):
        fold_job_name("bad_name", 0)


@pytest.mark.parametrize("parent", [PARENT, "a", "x" * 63, "y" * 60 + "-z1", "a-" * 31 + "b"])
@pytest.mark.parametrize("fold", [0, 7, 99])
@pytest.mark.parametrize("attempt", [1, 2, 5])
def test_fold_job_names_are_valid_and_deterministic(parent, fold, attempt):
    name = fold_job_name(parent, fold, attempt)
    assert len(name) <= 63 and JOB_NAME_PATTERN.fullmatch(name)
    assert name == fold_job_name(parent, fold, attempt)
    assert name.endswith(f"-f{fold}" if attempt == 1 else f"-f{fold}-r{attempt}")
    if len(parent) + len(f"-f{fold}") <= 63 and attempt == 1:
        assert name == f"{parent}-f{fold}"  # short names stay readable


def test_truncated_fold_job_names_stay_unique():
    # Tuner-launched names differ only at the end (the trial number and a random suffix).
    parents = [f"{'p' * 52}-{i:03d}-{i * 7919 % 10**8:08d}" for i in range(200)]
    names = {fold_job_name(p, f) for p in parents for f in range(10)}
    assert len(names) == 200 * 10
    assert all(len(n) <= 63 and JOB_NAME_PATTERN.fullmatch(n) for n in names)
    # The cut keeps a readable prefix and inserts a hash of the whole parent name.
    assert re.fullmatch(r"p+-[0-9a-f]{8}-f3", fold_job_name(parents[0], 3))


def test_fold_tags_link_to_parent_and_tuning_job_and_respect_the_tag_limit(caplog):
    many = [{"Key": f"team-{i}", "Value": str(i)} for i in range(60)]
    tags = fold_tags(PARENT, "tune-lgbm-0917", 4, many + [{"Key": "AWS:reserved", "Value": "x"}])
    assert len(tags) == 50
    assert tags[:4] == [{"Key": tag_keys.PARENT_JOB, "Value": PARENT},
                        {"Key": tag_keys.TUNING_JOB, "Value": "tune-lgbm-0917"},
                        {"Key": tag_keys.FOLD, "Value": "4"}, {"Key": tag_keys.ROLE, "Value": "fold"}]
    assert not any(t["Key"].lower().startswith("aws:") for t in tags)
    assert "fold jobs carry the first 46" in caplog.text
    without_tuner = fold_tags(PARENT, None, 0)
    assert [t["Key"] for t in without_tuner] == [tag_keys.PARENT_JOB, tag_keys.FOLD, tag_keys.ROLE]


def test_hyperparameter_limits_are_checked_before_the_request_leaves():
    with pytest.raises(UserInputError, match="101 entries"):
        check_hyperparameters({f"k{i}": "1" for i in range(101)})
    with pytest.raises(UserInputError, match="2501 characters"):
        check_hyperparameters({"k": "x" * 2501})
    check_hyperparameters({f"k{i}": "x" * 2500 for i in range(100)})


@pytest.mark.parametrize("change, message", [
    ({"EnableNetworkIsolation": True}, "network isolation"),
    ({"AlgorithmSpecification": {"AlgorithmName": "xgboost", "TrainingInputMode": "File"}}, "TrainingImage"),
    ({"ResourceConfig": {"InstanceGroups": [{"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                                             "InstanceGroupName": "a"}]}}, "heterogeneous"),
])
def test_coordinators_whose_settings_cannot_be_copied_are_refused(change, message):
    with pytest.raises(UserInputError, match=message):
        FoldJobTemplate.from_parent(coordinator_description(ManualClock(), **change), 600)


def test_adoption_identity_compares_the_work_not_the_bookkeeping():
    request = expected_fold_request(2)
    same = {**fold_description(2), "AlgorithmSpecification": request["AlgorithmSpecification"], "RoleArn": ROLE,
            "OutputDataConfig": request["OutputDataConfig"], "ResourceConfig": request["ResourceConfig"]}
    assert identity_differences(same, request) == []
    other = {**same, "HyperParameters": {**request["HyperParameters"], "num_leaves": "15"}}
    assert identity_differences(other, request) == ["HyperParameters"]
    assert identity_differences({**same, "RoleArn": "arn:aws:iam::1:role/x"}, request) == ["RoleArn"]


def test_region_comes_from_the_training_job_arn():
    assert region_from_arn(PARENT_ARN) == "eu-west-1"
    with pytest.raises(UserInputError, match="not a training job ARN"):
        region_from_arn("nonsense")


def test_timing_overrides_are_parsed_strictly():
    assert Timing.parse("poll_min=0.5, poll_max=3").poll_max == 3.0
    assert Timing.parse(None) == Timing()
    with pytest.raises(UserInputError, match="WARMCV_SAGEMAKER_TIMING"):
        Timing.parse("poll_minimum=1")
    with pytest.raises(UserInputError, match="WARMCV_SAGEMAKER_TIMING"):
        Timing.parse("poll_min=-1")


def test_outside_a_training_job_the_sagemaker_runner_says_what_to_use(monkeypatch, tmp_path):
    from warmcv.contract import ContainerPaths

    monkeypatch.delenv("TRAINING_JOB_NAME", raising=False)
    monkeypatch.delenv("TRAINING_JOB_ARN", raising=False)
    with pytest.raises(UserInputError, match="fold_runner=local"):
        SageMakerFoldRunner.from_environment(parse_hyperparameters({"mode": "coordinator"}), ContainerPaths(tmp_path))
