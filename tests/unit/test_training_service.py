"""The SageMaker service model against AWS's documented rules, one test (at least) per rule, on a ManualClock.

Each test names the rule it holds the model to (`warmcv.training_service.rules` cites the page); dropping
or bending the rule in the model fails it.
"""

from __future__ import annotations

import copy
import io
import tarfile
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from warmcv.clock import ManualClock
from warmcv.training_service import rules
from warmcv.training_service.api import Objects, ObjectsApi, SageMakerApi
from warmcv.training_service.service import JobPlan, Quotas, TrainingService

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
    "RoleArn": "arn:aws:iam::123456789012:role/other",
    "ResourceConfig.InstanceCount": 2,
    "ResourceConfig.InstanceType": "ml.m5.2xlarge",
    "ResourceConfig.VolumeKmsKeyId": "key-2",
    "ResourceConfig.VolumeSizeInGB": 31,
    "VpcConfig.SecurityGroupIds": ["sg-2"],
    "VpcConfig.Subnets": ["subnet-2"],
    "EnableInterContainerTrafficEncryption": True,
    "EnableNetworkIsolation": True,
}
PROVISIONING, DOWNLOADING, TRAINING, WARM_PROVISIONING = 90.0, 10.0, 50.0, 5.0


def request(name: str, **changes) -> dict:
    out = copy.deepcopy(BASE)
    out["TrainingJobName"] = name
    for dotted, value in changes.items():
        target = out
        *path, last = dotted.split(".")
        for part in path:
            target = target.setdefault(part, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return out


def plan(request_: dict, warm: bool) -> JobPlan:
    """Cold: 90 s to TrainingStartTime, then 10 s of downloads; warm: 5 s, then the same input download."""
    return JobPlan(WARM_PROVISIONING if warm else PROVISIONING, DOWNLOADING, TRAINING,
                   outputs=lambda: {"metrics.json": b"{}"})


def service(**kwargs) -> TrainingService:
    kwargs.setdefault("planner", plan)
    return TrainingService(ManualClock(), **kwargs)


def api(**kwargs) -> SageMakerApi:
    return SageMakerApi(service(**kwargs))


def run_to_end(sim: TrainingService, seconds: float = PROVISIONING + DOWNLOADING + TRAINING) -> None:
    sim.clock.advance(seconds)  # type: ignore[attr-defined]
    sim.catch_up()


def finish_first(sim: TrainingService, **changes) -> None:
    sim.create(request("first", **changes))
    run_to_end(sim)  # Completed: its pool is Available


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as error:
        call()
    return error.value.response["Error"]["Code"], error.value.response["Error"]["Message"]


# -- requests -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "message"), [
    ({"TrainingJobName": "bad_name"}, "failed to satisfy constraint"),
    ({"TrainingJobName": "x" * 64}, "failed to satisfy constraint"),
    ({"HyperParameters": {f"k{i}": "1" for i in range(101)}}, "101 entries"),
    ({"HyperParameters": {"k": "x" * 2501}}, "too long"),
    ({"Tags": [{"Key": f"t{i}", "Value": ""} for i in range(51)]}, "at most 50"),
    ({"Tags": [{"Key": "aws:team", "Value": "x"}]}, "System prefix 'aws:' reserved for AWS usage in tag key: aws:team"),
    ({"AlgorithmSpecification.MetricDefinitions": [{"Name": f"m{i}", "Regex": "x"} for i in range(41)]}, "at most 40"),
    ({"ResourceConfig.KeepAlivePeriodInSeconds": 3601}, "outside 0..3600"),
    ({"EnableManagedSpotTraining": True}, "managed spot"),
    ({"ResourceConfig.InstanceGroups": [{"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                                         "InstanceGroupName": "a"}]}, "heterogeneous"),
])
def test_requests_sagemaker_refuses_are_refused(changes, message):
    client = api()
    code, text = error_of(lambda: client.create_training_job(**request("job", **changes)))
    assert code == "ValidationException" and message in text
    assert not client.service.jobs


def test_names_are_unique():
    client = api()
    client.create_training_job(**request("a"))
    assert error_of(lambda: client.create_training_job(**request("a")))[0] == "ResourceInUse"


def test_an_unknown_job_is_a_validation_error_saying_not_found():
    client = api()
    code, message = error_of(lambda: client.describe_training_job(TrainingJobName="nope"))
    assert code == "ValidationException" and "not found" in message


# -- statuses and billing -----------------------------------------------------------------------------------------------
def test_a_job_moves_starting_downloading_training_uploading_completed_and_bills_from_training_start_time():
    sim = service()
    job = sim.create(request("a"))
    seen = []
    for step in (PROVISIONING - 1, 2, DOWNLOADING, TRAINING - 2, 1):
        run_to_end(sim, step)
        seen.append((job.status, job.secondary))
    assert seen == [("InProgress", "Starting"), ("InProgress", "Downloading"), ("InProgress", "Training"),
                    ("InProgress", "Training"), ("Completed", "Completed")]
    described = sim.describe("a")
    # Billing starts at TrainingStartTime, before the downloads (DescribeTrainingJob: "The start time in
    # CloudWatch Logs might be later ... due to the time it takes to download the training data").
    assert described["TrainingStartTime"] == described["CreationTime"] + timedelta(seconds=PROVISIONING)
    assert described["BillableTimeInSeconds"] == DOWNLOADING + TRAINING
    assert sim.billing()["job"] == pytest.approx(DOWNLOADING + TRAINING)
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]


def test_a_warm_job_still_downloads_its_input_and_is_billed_for_it():
    sim = service()
    finish_first(sim)
    second = sim.create(request("second"))
    assert second.warm
    run_to_end(sim, WARM_PROVISIONING + 1)
    assert second.secondary == "Downloading"
    run_to_end(sim, DOWNLOADING + TRAINING)
    assert sim.describe("second")["BillableTimeInSeconds"] == DOWNLOADING + TRAINING


def test_a_job_stopped_before_its_instances_started_bills_nothing():
    sim = service()
    sim.create(request("a"))
    sim.stop("a")
    run_to_end(sim)
    assert sim.jobs["a"].status == "Stopped" and "TrainingStartTime" not in sim.describe("a")
    assert sim.billing()["job"] == 0


def test_stop_moves_an_in_progress_job_to_stopping_then_stopped_and_refuses_an_ended_one():
    client = api()
    client.create_training_job(**request("a"))
    run_to_end(client.service, PROVISIONING + 20)
    client.stop_training_job(TrainingJobName="a")
    assert client.describe_training_job(TrainingJobName="a")["TrainingJobStatus"] == "Stopping"
    run_to_end(client.service, client.service.stop_seconds)
    assert client.describe_training_job(TrainingJobName="a")["TrainingJobStatus"] == "Stopped"
    code, message = error_of(lambda: client.stop_training_job(TrainingJobName="a"))
    assert code == "ValidationException" and "in status Stopped" in message


def test_a_failing_job_ends_failed_with_its_reason():
    sim = TrainingService(ManualClock(), planner=lambda r, w: JobPlan(10, 0, 100, failure="AlgorithmError: boom",
                                                                     fail_after=30))
    sim.create(request("a"))
    run_to_end(sim, 39)
    assert sim.jobs["a"].status == "InProgress"
    run_to_end(sim, 1)
    assert sim.describe("a")["FailureReason"] == "AlgorithmError: boom"


def test_a_driven_job_waits_in_starting_until_its_driver_moves_it():
    sim = TrainingService(ManualClock())
    sim.create(request("a"))
    run_to_end(sim, 1000)
    assert sim.jobs["a"].secondary == "Starting" and sim.jobs["a"].start_time is None
    sim.advance("a", "Downloading")
    run_to_end(sim, 5)
    sim.advance("a", "Training")
    run_to_end(sim, 20)
    sim.finish("a", "Completed")
    assert sim.describe("a")["BillableTimeInSeconds"] == 25


# -- warm pools -----------------------------------------------------------------------------------------------------
def test_the_variants_cover_every_field_sagemaker_matches_on():
    assert set(VARIANTS) == set(rules.WARM_POOL_MATCH_FIELDS)


def test_a_job_with_the_same_configuration_takes_the_pool_and_starts_warm():
    sim = service()
    finish_first(sim)
    assert sim.describe("first")["WarmPoolStatus"]["Status"] == "Available"
    run_to_end(sim, 30)
    second = sim.create(request("second"))
    assert sim.describe("second")["WarmPoolStatus"] == {"Status": "InUse"} and second.warm
    assert second.plan is not None and second.plan.provisioning == WARM_PROVISIONING
    assert sim.describe("first")["WarmPoolStatus"] == {
        "Status": "Reused", "ReusedByJob": "second", "ResourceRetainedBillableTimeInSeconds": 30}


@pytest.mark.parametrize("field", sorted(VARIANTS))
def test_a_pool_is_reused_only_when_every_matched_field_is_identical(field):
    sim = service()
    finish_first(sim)
    assert not sim.create(request("different", **{field: VARIANTS[field]})).warm
    assert sim.create(request("same")).warm


@pytest.mark.parametrize("field", ["EnableNetworkIsolation", "EnableInterContainerTrafficEncryption"])
def test_an_absent_boolean_is_false(field):
    sim = service()
    finish_first(sim)  # both booleans given as False
    assert sim.create(request("omits-it", **{field: None})).warm


def test_an_absent_key_or_vpc_is_empty_and_an_absent_instance_count_is_one():
    sim = service()
    finish_first(sim, **{"ResourceConfig.VolumeKmsKeyId": None, "VpcConfig": None, "ResourceConfig.InstanceCount": 1})
    assert sim.create(request("empty", **{"ResourceConfig.VolumeKmsKeyId": "", "VpcConfig": None,
                                           "ResourceConfig.InstanceCount": None})).warm


def test_keep_alive_is_not_a_criterion_a_job_without_it_takes_the_pool_and_lets_it_go():
    sim = service()
    finish_first(sim)
    taker = sim.create(request("no-keep-alive", **{"ResourceConfig.KeepAlivePeriodInSeconds": None}))
    assert taker.warm
    run_to_end(sim, 200)
    # "If no KeepAlivePeriodInSeconds is specified, then the warm pool spins down after the training job completes"
    assert sim.describe("no-keep-alive")["WarmPoolStatus"]["Status"] == "Terminated"
    assert sim.pool_instances() == 0 and not sim.create(request("after")).warm


def test_one_job_per_pool():
    sim = service()
    finish_first(sim)
    assert [sim.create(request(n)).warm for n in "ab"] == [True, False]
    run_to_end(sim, 200)
    # a ended on its pool (Available again) and b left a second pool: two jobs, two pools
    jobs = [sim.create(request(n)) for n in "cde"]
    assert [j.warm for j in jobs] == [True, True, False] and jobs[0].pool_id != jobs[1].pool_id


def test_a_pool_expires_after_the_keep_alive_of_the_job_that_ran_on_it_last():
    sim = service()
    finish_first(sim)
    run_to_end(sim, 599)
    taker = sim.create(request("in-time", **{"ResourceConfig.KeepAlivePeriodInSeconds": 60}))
    assert taker.warm
    run_to_end(sim, WARM_PROVISIONING + DOWNLOADING + TRAINING + 60 + 1)  # it ended, then 60 s (its keep-alive) passed
    assert sim.describe("in-time")["WarmPoolStatus"] == {"Status": "Terminated",
                                                         "ResourceRetainedBillableTimeInSeconds": 60}
    assert not sim.create(request("too-late")).warm


def test_pools_are_kept_only_after_the_documented_endings():
    assert rules.keeps_warm_pool("Completed", launched=True)
    assert rules.keeps_warm_pool("Stopped", launched=True) and not rules.keeps_warm_pool("Stopped", launched=False)
    assert rules.keeps_warm_pool("Failed", True, "AlgorithmError: out of memory")
    assert rules.keeps_warm_pool("Failed", True, "ClientError: bad data")
    assert not rules.keeps_warm_pool("Failed", True, "InternalServerError: instance lost")
    sim = TrainingService(ManualClock())
    for name, status, reason in (("ok", "Completed", None), ("algo", "Failed", "AlgorithmError: x"),
                                 ("internal", "Failed", "InternalServerError: y"), ("early", "Stopped", None)):
        sim.create(request(name, **{"ResourceConfig.InstanceType": f"ml.{name}"}))
        if name != "early":
            sim.advance(name, "Training")
        sim.finish(name, status, reason)
    kept = {n: (sim.describe(n).get("WarmPoolStatus") or {}).get("Status") for n in ("ok", "algo", "internal", "early")}
    assert kept == {"ok": "Available", "algo": "Available", "internal": "Terminated", "early": "Terminated"}


def test_without_warm_pool_quota_no_pool_is_kept_and_no_error_is_raised():
    sim = service(quotas=Quotas(warm_pool=0))
    finish_first(sim)
    assert sim.describe("first")["WarmPoolStatus"]["Status"] == "Terminated" and sim.pool_instances() == 0
    assert not sim.create(request("next")).warm


def test_the_warm_pool_quota_caps_available_instances_and_a_reused_pool_gives_its_share_back():
    sim = service(quotas=Quotas(warm_pool={"ml.m5.xlarge": 2}))
    for name in "abc":
        sim.create(request(name))
    run_to_end(sim)
    assert sim.pool_instances("ml.m5.xlarge") == 2 and sim.peak_pool_instances == 2
    assert sim.describe("c")["WarmPoolStatus"]["Status"] == "Terminated"
    sim.create(request("d"))  # takes a pool: "the resources are released when they move to a matching training job"
    assert sim.pool_instances() == 1
    sim.create(request("e", **{"ResourceConfig.VolumeSizeInGB": 99}))
    sim.advance("e", "Training")
    sim.finish("e", "Completed")  # while d still runs on its pool
    assert sim.describe("e")["WarmPoolStatus"]["Status"] == "Available"  # d's share was free again


def test_the_instance_quota_counts_running_jobs_and_pools_of_its_type_with_awss_message():
    client = api(quotas=Quotas(instances=2))
    client.create_training_job(**request("a"))
    client.create_training_job(**request("b"))
    client.create_training_job(**request("other-type", **{"ResourceConfig.InstanceType": "ml.c5.xlarge"}))
    code, message = error_of(lambda: client.create_training_job(**request("c")))
    assert code == "ResourceLimitExceeded"
    assert message == rules.resource_limit_message("ml.m5.xlarge for training job usage", 2, 2, 1)
    assert message.startswith("The account-level service limit 'ml.m5.xlarge for training job usage' is 2 Instances, "
                              "with current utilization of 2 Instances and a request delta of 1 Instances.")
    run_to_end(client.service)  # a and b ended: their instances sit in two Available pools, still counted
    assert client.service.instances_in_use("ml.m5.xlarge") == 2
    assert error_of(lambda: client.create_training_job(**request("c", **{"ResourceConfig.VolumeSizeInGB": 50})))[0] \
        == "ResourceLimitExceeded"  # no matching pool: new instances
    client.create_training_job(**request("d"))  # takes a pool: no new instance
    assert client.service.instances_in_use("ml.m5.xlarge") == 2


def test_update_sets_an_available_pools_keep_alive_and_zero_terminates_it():
    client = api()
    finish_first(client.service)
    run_to_end(client.service, 100)
    client.update_training_job(TrainingJobName="first", ResourceConfig={"KeepAlivePeriodInSeconds": 120})
    run_to_end(client.service, 19)
    assert client.service.pool_instances() == 1
    run_to_end(client.service, 2)  # 120 s after it became Available
    assert client.describe_training_job(TrainingJobName="first")["WarmPoolStatus"]["Status"] == "Terminated"
    finish_first_again = request("second")
    client.create_training_job(**finish_first_again)
    run_to_end(client.service)
    client.update_training_job(TrainingJobName="second", ResourceConfig={"KeepAlivePeriodInSeconds": 0})
    assert client.service.pool_instances() == 0
    code, message = error_of(lambda: client.update_training_job(TrainingJobName="second",
                                                                ResourceConfig={"KeepAlivePeriodInSeconds": 60}))
    assert code == "ValidationException" and "not Available" in message


# -- rates ------------------------------------------------------------------------------------------------------------
def test_requests_beyond_the_accounts_rate_are_throttled():
    client = api(rates={"CreateTrainingJob": (rules.CREATE_TRAINING_JOB_RATE, 1.0)})
    client.create_training_job(**request("a"))
    client.service.clock.advance(0.5)
    assert error_of(lambda: client.create_training_job(**request("b"))) == ("ThrottlingException", "Rate exceeded")
    client.service.clock.advance(0.5)
    client.create_training_job(**request("b"))
    assert client.service.count("CreateTrainingJob", "ThrottlingException") == 1


# -- outputs ----------------------------------------------------------------------------------------------------------
def test_gzip_output_is_one_output_tar_gz_and_none_is_uncompressed_files():
    objects = Objects()
    sim = service(objects=objects)
    s3 = ObjectsApi(sim, objects)
    sim.create(request("gz"))
    sim.create(request("plain", **{"OutputDataConfig.CompressionType": "NONE"}))
    run_to_end(sim)
    body = s3.get_object(Bucket="b", Key="out/gz/output/output.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        assert tar.getnames() == ["metrics.json"]
    assert s3.get_object(Bucket="b", Key="out/plain/output/data/metrics.json")["Body"].read() == b"{}"
    with pytest.raises(ClientError, match="NoSuchKey"):
        s3.get_object(Bucket="b", Key="out/plain/output/output.tar.gz")
    assert sim.describe("plain")["ModelArtifacts"]["S3ModelArtifacts"] == "s3://b/out/plain/output/model/"


# -- tags and listing -----------------------------------------------------------------------------------------------
def test_list_tags_returns_the_tags_a_job_was_created_with():
    client = api()
    arn = client.create_training_job(**request("Mixed-Case", Tags=[{"Key": "team", "Value": "ml"}]))["TrainingJobArn"]
    assert arn.endswith("training-job/mixed-case")  # ARNs carry the name in lower case
    assert client.list_tags(ResourceArn=arn) == {"Tags": [{"Key": "team", "Value": "ml"}]}


def test_list_training_jobs_filters_sorts_and_pages_newest_first():
    client = api()
    for i in range(5):
        client.create_training_job(**request(f"trial-1-f{i}"))
        client.service.clock.advance(1)
    client.create_training_job(**request("trial-12-f0"))
    first = client.list_training_jobs(NameContains="trial-1-f", MaxResults=3)
    assert [s["TrainingJobName"] for s in first["TrainingJobSummaries"]] == ["trial-1-f4", "trial-1-f3", "trial-1-f2"]
    rest = client.list_training_jobs(NameContains="trial-1-f", MaxResults=3, NextToken=first["NextToken"])
    assert [s["TrainingJobName"] for s in rest["TrainingJobSummaries"]] == ["trial-1-f1", "trial-1-f0"]
    assert "NextToken" not in rest
    after = client.describe_training_job(TrainingJobName="trial-1-f2")["CreationTime"]
    newer = client.list_training_jobs(CreationTimeAfter=after, SortOrder="Ascending", MaxResults=100)
    assert [s["TrainingJobName"] for s in newer["TrainingJobSummaries"]] == ["trial-1-f3", "trial-1-f4", "trial-12-f0"]
    summary = newer["TrainingJobSummaries"][0]
    assert set(summary) >= {"TrainingJobName", "TrainingJobArn", "CreationTime", "LastModifiedTime",
                            "TrainingJobStatus", "SecondaryStatus"}
    assert error_of(lambda: client.list_training_jobs(MaxResults=101))[0] == "ValidationException"


def test_list_training_jobs_applies_status_equals_after_max_results_as_documented():
    client = api()
    for i in range(4):
        client.create_training_job(**request(f"j{i}"))
    client.service.finish("j0", "Completed")
    client.service.finish("j3", "Completed")
    page = client.list_training_jobs(MaxResults=2, StatusEquals="Completed")
    assert [s["TrainingJobName"] for s in page["TrainingJobSummaries"]] == ["j3"]  # of the newest 2 (j3, j2)


# -- the tuner's limits ---------------------------------------------------------------------------------------------
def test_the_tuners_documented_limits_are_reported():
    assert rules.tuner_limit_problems(480, 4, 86400) == []
    problems = " ".join(rules.tuner_limit_problems(4 * 1200, 4, 40 * 86400))
    assert "4,800 trials exceed the tuner's 750" in problems and "30 days" in problems
    assert "default of 10" in rules.tuner_limit_problems(100, 20)[0]
    assert "maximum of 100" in rules.tuner_limit_problems(1000, 101)[1]
    assert rules.tuner_limit_problems(5000, 10, strategy="Random") == []
