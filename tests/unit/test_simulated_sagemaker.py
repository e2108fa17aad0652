"""The simulated SageMaker's invariants: warm pools, quotas, rates, stops and billing, on a ManualClock."""

from __future__ import annotations

import copy

import pytest
from botocore.exceptions import ClientError

from warmcv.clock import ManualClock
from warmcv.simulation.sagemaker import POOL_KEY_FIELDS, SimulatedS3, SimulatedSageMaker

BASE = {
    "AlgorithmSpecification": {"TrainingImage": "img:1", "TrainingInputMode": "File"},
    "RoleArn": "arn:aws:iam::123456789012:role/jobs",
    "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/p"}}}],
    "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
    "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30,
                       "VolumeKmsKeyId": "key-1", "KeepAlivePeriodInSeconds": 600},
    "VpcConfig": {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]},
    "EnableNetworkIsolation": False,
    "EnableInterContainerTrafficEncryption": False,
    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    "HyperParameters": {"mode": "worker", "fold": "0"},
}
VARIANTS = {  # one change per field SageMaker matches on
    "RoleArn": ("RoleArn", "arn:aws:iam::123456789012:role/other"),
    "ResourceConfig.InstanceType": ("ResourceConfig.InstanceType", "ml.m5.2xlarge"),
    "ResourceConfig.InstanceCount": ("ResourceConfig.InstanceCount", 2),
    "ResourceConfig.VolumeSizeInGB": ("ResourceConfig.VolumeSizeInGB", 31),
    "ResourceConfig.VolumeKmsKeyId": ("ResourceConfig.VolumeKmsKeyId", "key-2"),
    "VpcConfig": ("VpcConfig", {"SecurityGroupIds": ["sg-2"], "Subnets": ["subnet-1"]}),
    "EnableNetworkIsolation": ("EnableNetworkIsolation", True),
    "EnableInterContainerTrafficEncryption": ("EnableInterContainerTrafficEncryption", True),
}


def request(name: str, **changes) -> dict:
    out = copy.deepcopy(BASE)
    out["TrainingJobName"] = name
    for dotted, value in changes.items():
        target = out
        *path, last = dotted.split(".")
        for part in path:
            target = target[part]
        target[last] = value
    return out


def service(**kwargs) -> SimulatedSageMaker:
    return SimulatedSageMaker(ManualClock(), start_seconds=100, warm_start_seconds=10, train_seconds=50, **kwargs)


def finish_first(sim: SimulatedSageMaker, **changes) -> None:
    sim.create_training_job(**request("first", **changes))
    sim.clock.advance(150)  # Starting 100 s + Training 50 s: Completed, pool Available


def test_the_variants_cover_every_field_sagemaker_matches_on():
    assert set(VARIANTS) == set(POOL_KEY_FIELDS)


def test_a_job_with_the_same_configuration_takes_the_pool_and_starts_warm():
    sim = service()
    finish_first(sim)
    assert sim.describe_training_job(TrainingJobName="first")["WarmPoolStatus"]["Status"] == "Available"
    sim.clock.advance(30)
    sim.create_training_job(**request("second"))
    second = sim.describe_training_job(TrainingJobName="second")
    assert second["WarmPoolStatus"] == {"Status": "InUse"} and second["SecondaryStatus"] == "Starting"
    assert sim.jobs["second"].warm and sim.jobs["second"].start == 10
    assert sim.describe_training_job(TrainingJobName="first")["WarmPoolStatus"] == {
        "Status": "Reused", "ReusedByJob": "second", "ResourceRetainedBillableTimeInSeconds": 30}


@pytest.mark.parametrize("field", sorted(VARIANTS))
def test_a_pool_is_reused_only_when_every_matched_field_is_identical(field):
    sim = service()
    finish_first(sim)
    dotted, value = VARIANTS[field]
    sim.create_training_job(**request("different", **{dotted: value}))
    assert not sim.jobs["different"].warm and sim.jobs["different"].start == 100
    sim.create_training_job(**request("same"))
    assert sim.jobs["same"].warm


def test_one_job_per_pool():
    sim = service()
    finish_first(sim)
    sim.create_training_job(**request("a"))
    sim.create_training_job(**request("b"))  # the only pool is taken by a
    assert (sim.jobs["a"].warm, sim.jobs["b"].warm) == (True, False)
    sim.clock.advance(200)
    # a ended on its pool (which is Available again) and b left a second pool: two jobs, two pools
    for name in ("c", "d", "e"):
        sim.create_training_job(**request(name))
    assert [sim.jobs[n].warm for n in "cde"] == [True, True, False]
    assert sim.jobs["c"].pool_id != sim.jobs["d"].pool_id


def test_a_pool_expires_after_the_keep_alive():
    sim = service()
    finish_first(sim)
    sim.clock.advance(599)
    sim.create_training_job(**request("in-time"))
    assert sim.jobs["in-time"].warm
    sim.clock.advance(60 + 600 + 1)  # its job ended at 60 s, its pool expired 600 s later
    assert sim.describe_training_job(TrainingJobName="in-time")["WarmPoolStatus"] == {
        "Status": "Terminated", "ResourceRetainedBillableTimeInSeconds": 600}
    sim.create_training_job(**request("too-late"))
    assert not sim.jobs["too-late"].warm


def test_no_pool_without_keep_alive_or_warm_pool_quota_and_no_error():
    sim = service(warm_pool_quota=0)
    finish_first(sim)
    assert "WarmPoolStatus" not in sim.describe_training_job(TrainingJobName="first")
    sim.create_training_job(**request("next"))
    assert not sim.jobs["next"].warm
    sim = service()
    finish_first(sim, **{"ResourceConfig.KeepAlivePeriodInSeconds": 0})
    assert sim.pools == []


def test_the_warm_pool_quota_caps_the_instances_kept():
    sim = service(warm_pool_quota=2)
    for name in "abc":
        sim.create_training_job(**request(name))
    sim.clock.advance(150)
    sim.catch_up()
    assert sim.pool_instances() == 2 and sim.peak_pool_instances == 2


def test_the_instance_quota_counts_running_jobs_and_pools_of_its_type_and_names_the_quota():
    sim = service(instance_quota=2)
    sim.create_training_job(**request("a"))
    sim.create_training_job(**request("b"))
    sim.create_training_job(**request("other-type", **{"ResourceConfig.InstanceType": "ml.c5.xlarge"}))
    with pytest.raises(ClientError, match="'ml.m5.xlarge for training job usage' is 2 Instances, with current "
                                          "utilization of 2 Instances") as refused:
        sim.create_training_job(**request("c"))
    assert refused.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    sim.clock.advance(150)  # a and b ended: their instances sit in two pools, still counted
    assert sim.instances_in_use("ml.m5.xlarge") == 2
    with pytest.raises(ClientError, match="ResourceLimitExceeded|limit"):
        sim.create_training_job(**request("c", **{"ResourceConfig.VolumeSizeInGB": 50}))  # no matching pool
    sim.create_training_job(**request("d"))  # takes a pool: no new instance
    assert sim.instances_in_use("ml.m5.xlarge") == 2


def test_creates_beyond_the_account_rate_are_throttled():
    sim = service(rate_limits={"CreateTrainingJob": (1.0, 1.0)})
    sim.create_training_job(**request("a"))
    sim.clock.advance(0.5)
    with pytest.raises(ClientError, match="Rate exceeded"):
        sim.create_training_job(**request("b"))
    sim.clock.advance(0.5)
    sim.create_training_job(**request("b"))
    assert sim.count("CreateTrainingJob", "ThrottlingException") == 1


def test_a_stopped_job_ends_stopped_and_keeps_its_pool_if_its_instances_had_started():
    sim = service()
    sim.create_training_job(**request("early"))
    sim.create_training_job(**request("late"))
    sim.stop_training_job(TrainingJobName="early")  # still Starting
    sim.clock.advance(120)
    sim.stop_training_job(TrainingJobName="late")  # Training
    assert sim.describe_training_job(TrainingJobName="late")["TrainingJobStatus"] == "Stopping"
    sim.clock.advance(sim.stop_seconds)
    assert sim.describe_training_job(TrainingJobName="late")["TrainingJobStatus"] == "Stopped"
    assert sim.jobs["early"].pool_id is None and sim.jobs["late"].pool_id is not None
    with pytest.raises(ClientError, match="in status Stopped"):
        sim.stop_training_job(TrainingJobName="late")


def test_billing_counts_training_time_and_pools_held_available():
    sim = service()
    finish_first(sim)  # bills 50 s of training
    sim.clock.advance(40)
    sim.create_training_job(**request("second"))  # pool held 40 s
    sim.clock.advance(60)  # warm start 10 s + training 50 s
    sim.catch_up()
    sim.release_pools()  # released at once
    bill = sim.billing()
    assert bill == {"fold": pytest.approx(100.0), "warm_pool": pytest.approx(40.0)}


def test_completed_fold_results_are_readable_like_a_workers_output():
    from warmcv.aws.fold_results import metrics_from_archive

    sim = service()
    finish_first(sim)
    described = sim.describe_training_job(TrainingJobName="first")
    assert [m["MetricName"] for m in described["FinalMetricDataList"]] == ["validation:score", "train:score"]
    body = SimulatedS3(sim).get_object(Bucket="b", Key="out/first/output/output.tar.gz")["Body"].read()
    assert metrics_from_archive(body)["validation_score"] == pytest.approx(0.8)
