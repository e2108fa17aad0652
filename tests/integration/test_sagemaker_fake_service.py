"""The coordinator on a fake SageMaker: real container processes, real worker, real boto3 over HTTP.

Every job here (coordinators and their folds) is a child process running the image's code on the
container contract, created and stopped through the fake SageMaker service (tests/fakes/sagemaker.py: the
package's one service model, `warmcv.training_service`, behind HTTP), with its data and artifacts in moto's
S3 server. The coordinator finds the fake through AWS_ENDPOINT_URL_SAGEMAKER / AWS_ENDPOINT_URL_S3, exactly
as botocore resolves endpoints in production.
"""

from __future__ import annotations

import itertools
import re
import statistics
import threading
import time

import pytest

from tests.fakes.harness import (
    api_calls,
    coordinator_request,
    fake_factory,
    output_uri,
    read_archive_json,
    s3_with_bucket,
    upload_prepared,
)
from tests.fakes.sagemaker import FakeSageMaker, Fault
from warmcv.aws import tags as tag_keys

pytestmark = pytest.mark.timeout(240)


def is_fold(fold: int | None = None):
    def match(request: dict) -> bool:
        hps = request.get("HyperParameters", {})
        return hps.get("mode") == "worker" and (fold is None or hps.get("fold") == str(fold))
    return match


def not_fold(fold: int):
    def match(request: dict) -> bool:
        hps = request.get("HyperParameters", {})
        return hps.get("mode") == "worker" and hps.get("fold") != str(fold)
    return match


@pytest.fixture(scope="module")
def s3():
    with s3_with_bucket() as server:
        yield server


@pytest.fixture(scope="module")
def data_uri(s3, prepared_census):
    return upload_prepared(s3, prepared_census)


@pytest.fixture
def make_fake(s3, tmp_path):
    with fake_factory(s3.url, tmp_path) as make:
        yield make


def completed(fake: FakeSageMaker, name: str, timeout: float = 180) -> None:
    job = fake.wait(name, timeout)
    assert job.status == "Completed", f"{name}: {job.status} {job.failure_reason}\n{fake.log(name)[-4000:]}"


def report(name: str, calls: dict) -> None:
    print(f"\nAPI calls of {name}: {calls}")


def test_full_trial_averages_the_fold_jobs_metrics(make_fake, s3, data_uri):
    fake = make_fake()
    fake.client().create_training_job(**coordinator_request("trial-full", data_uri, {"num_leaves": "15"}))
    completed(fake, "trial-full")
    folds = fake.fold_jobs("trial-full")
    assert [f.name for f in folds] == ["trial-full-f0", "trial-full-f1", "trial-full-f2"]
    for index, fold in enumerate(folds):
        request = fold.request
        assert request["HyperParameters"] == {"mode": "worker", "fold": str(index), "num_leaves": "15",
                                              "num_threads": "1", "keep_alive_seconds": "600",
                                              "num_boost_round": "30"}
        assert request["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 600
        tags = {t["Key"]: t["Value"] for t in request["Tags"]}
        assert tags[tag_keys.PARENT_JOB] == "trial-full" and tags[tag_keys.FOLD] == str(index)
        assert tags[tag_keys.ROLE] == tag_keys.ROLE_FOLD and tags["project"] == "warmcv-tests"
        assert fold.status == "Completed" and fold.warm_pool["Status"] == "Available"
    fold_scores = [read_archive_json(s3, output_uri(fake, f.name, "output.tar.gz"), "metrics.json")["validation_score"]
                   for f in folds]
    summary = read_archive_json(s3, output_uri(fake, "trial-full", "output.tar.gz"), "cv_summary.json")
    assert [f["validation_score"] for f in summary["folds"]] == fold_scores
    assert summary["validation_mean"] == pytest.approx(statistics.fmean(fold_scores), rel=1e-12)
    # The tuner reads the coordinator's log line through its metric definition.
    objective = {m["MetricName"]: m["Value"] for m in fake.jobs["trial-full"].final_metrics}["validation:score"]
    assert objective == summary["validation_mean"]
    calls = api_calls(fake, "trial-full")
    report("a 3-fold trial", calls)
    assert calls["creates"] == calls["creates_ok"] == 3 and calls["stops"] == 0 and calls["self_describes"] == 1
    assert "API calls for this trial: 3 creates" in fake.log("trial-full")


def test_the_next_trial_reuses_the_folds_warm_pools(make_fake, data_uri):
    """On the shared model (an absent boolean is false, so a coordinator WOULD match a pool of its own settings),
    the next trial's coordinator, created with CreateTrainingJob while round 1's fold pools are Available and
    before its own folds, takes none of them: every fold of round 2 starts warm."""
    fake = make_fake()
    client = fake.client()
    client.create_training_job(**coordinator_request("round-1", data_uri, {"num_leaves": "15"}))
    completed(fake, "round-1")
    assert all(fake.jobs[f"round-1-f{i}"].warm_pool["Status"] == "Available" for i in range(3))
    client.create_training_job(**coordinator_request("round-2", data_uri, {"num_leaves": "31"}))
    assert not fake.jobs["round-2"].model.warm  # created just before its folds, with the pools Available
    completed(fake, "round-2")
    assert all(fake.jobs[f"round-2-f{i}"].model.warm for i in range(3))
    reused_by = {fake.jobs[f"round-1-f{i}"].warm_pool.get("ReusedByJob") for i in range(3)}
    assert reused_by == {f"round-2-f{i}" for i in range(3)}
    assert "3 reused a warm pool" in fake.log("round-2")


def test_without_warm_pool_quota_the_coordinators_log_names_the_quota_to_raise(make_fake, data_uri):
    fake = make_fake()
    fake.warm_pool_quota["ml.m5.xlarge"] = 0  # AWS's default: no pool kept, no error
    fake.client().create_training_job(**coordinator_request("trial-nopool", data_uri, {}))
    completed(fake, "trial-nopool")
    assert all(fold.warm_pool["Status"] == "Terminated" for fold in fake.fold_jobs("trial-nopool"))
    log = fake.log("trial-nopool")
    print("\n".join(line for line in log.splitlines() if "warm pool" in line))
    assert "kept no warm pool" in log and "Raise the Service Quotas (Amazon SageMaker) quota " \
        "'ml.m5.xlarge for training warm pool usage'" in log


def test_three_quota_refusals_in_a_row_cost_a_delay_not_the_trial(make_fake, data_uri):
    fake = make_fake()
    fake.client().create_training_job(**coordinator_request("trial-refused", data_uri, {}))
    fake.refuse_next["CreateTrainingJob"] = 3  # the coordinator's first three fold creates: ResourceLimitExceeded
    completed(fake, "trial-refused")
    assert fake.count("CreateTrainingJob", "ResourceLimitExceeded", prefix="trial-refused-f") == 3
    assert [j.name for j in fake.fold_jobs("trial-refused")] == [f"trial-refused-f{i}" for i in range(3)]
    assert "refused fold 0's job for a quota" in fake.log("trial-refused")


def test_a_failed_fold_stops_its_siblings_and_fails_the_trial_with_its_reason(make_fake, data_uri):
    fake = make_fake()
    fake.faults += [Fault(is_fold(1), corrupt_data=True), Fault(not_fold(1), start_delay=30)]
    fake.client().create_training_job(**coordinator_request("trial-fail", data_uri, {}))
    coordinator = fake.wait("trial-fail", 120)
    assert coordinator.status == "Failed"
    reason = coordinator.failure_reason
    worker_reason = fake.jobs["trial-fail-f1"].failure_reason
    # SageMaker's FailureReason: "AlgorithmError: " and the failure file the coordinator wrote.
    assert reason.startswith("AlgorithmError: fold 1 failed: fold job trial-fail-f1 failed: AlgorithmError: ")
    assert worker_reason and worker_reason[:200] in reason
    assert coordinator.exit_codes[-1] != 0
    for sibling in ("trial-fail-f0", "trial-fail-f2"):
        assert fake.wait(sibling, 30).status == "Stopped"
        assert fake.count("StopTrainingJob", "OK", prefix=sibling) == 1
    report("a trial with a failed fold", api_calls(fake, "trial-fail"))


def test_sigterm_stops_every_running_fold_and_fails_promptly(make_fake, data_uri):
    # The image's real entry: the sagemaker-training toolkit running warmcv.modes.entry:train in-process.
    fake = make_fake(command="toolkit")
    fake.faults.append(Fault(is_fold(), start_delay=60))
    client = fake.client()
    client.create_training_job(**coordinator_request("trial-stop", data_uri, {}))
    fake.wait_until(lambda: len(fake.fold_jobs("trial-stop")) == 3, timeout=90)
    fake.wait_until(lambda: fake.jobs["trial-stop"].process is not None, timeout=10)
    signalled = time.monotonic()
    client.stop_training_job(TrainingJobName="trial-stop")  # the fake sends the container SIGTERM
    coordinator = fake.wait("trial-stop", 60)
    elapsed = time.monotonic() - signalled
    assert coordinator.status == "Stopped"
    assert coordinator.exit_codes == [1], fake.log("trial-stop")  # exited by itself, not SIGKILLed after the grace
    assert elapsed < 15, f"took {elapsed:.1f} s"
    failure = (coordinator.bases[-1] / "output" / "failure").read_text()
    assert failure.startswith("Stopped: received SIGTERM")
    for fold in fake.fold_jobs("trial-stop"):
        assert fake.count("StopTrainingJob", "OK", prefix=fold.name) == 1
        assert fake.wait(fold.name, 30).status == "Stopped"
    calls = api_calls(fake, "trial-stop")
    report("a trial stopped by SIGTERM", calls)
    print(f"coordinator exit after SIGTERM: {elapsed:.2f} s")


def test_a_restarted_coordinator_adopts_its_folds_instead_of_duplicating_them(make_fake, data_uri):
    fake = make_fake()
    fake.faults.append(Fault(is_fold(), start_delay=5, times=3))
    fake.client().create_training_job(**coordinator_request("trial-retry", data_uri, {}))
    fake.wait_until(lambda: len(fake.fold_jobs("trial-retry")) == 3, timeout=90)
    fake.restart("trial-retry")  # SIGKILL, as an instance failure would; SageMaker's RetryStrategy reruns it
    completed(fake, "trial-retry")
    coordinator = fake.jobs["trial-retry"]
    assert coordinator.attempts == 2
    assert sorted(j.name for j in fake.fold_jobs("trial-retry")) == [f"trial-retry-f{i}" for i in range(3)]
    assert fake.count("CreateTrainingJob", "OK", prefix="trial-retry-") == 3
    assert fake.count("CreateTrainingJob", "ResourceInUse", prefix="trial-retry-") == 3
    assert fake.log("trial-retry").count("adopted existing training job") == 3
    report("a restarted trial (both attempts)", api_calls(fake, "trial-retry"))


def test_many_coordinators_at_once_survive_a_throttling_storm(make_fake, data_uri):
    fake = make_fake()
    fake.limit_rate("CreateTrainingJob", per_second=1.0)  # the account's real pace
    fake.limit_rate("ListTrainingJobs", per_second=2.0)  # below what three test-speed pollers ask
    fake.limit_rate("DescribeTrainingJob", per_second=2.0)
    fake.throttle_next["ListTags"] = 3
    # The rate limit throttles lists only when the pollers happen to crowd (a loaded machine spaces them out);
    # these make sure the storm has throttled lists whatever the timing.
    fake.throttle_next["ListTrainingJobs"] = 3
    names = [f"storm-{i}" for i in range(3)]
    client = fake.client()
    threads = [threading.Thread(target=client.create_training_job,
                                kwargs=coordinator_request(name, data_uri, {"seed": str(i)}))
               for i, name in enumerate(names)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in names:
        completed(fake, name, timeout=200)
    fold_names = sorted(n for n in fake.jobs if n.startswith("storm-") and "-f" in n)
    assert fold_names == sorted(f"{name}-f{i}" for name in names for i in range(3))  # no duplicates, no -r2
    create_throttles = fake.count("CreateTrainingJob", "ThrottlingException")
    list_throttles = fake.count("ListTrainingJobs", "ThrottlingException")
    assert create_throttles > 0 and list_throttles > 0
    created = sorted(c.at for c in fake.calls if c.operation == "CreateTrainingJob" and c.outcome == "OK")
    assert min(b - a for a, b in itertools.pairwise(created)) >= 0.9  # 12 creates at the service's 1/s
    for name in names:
        report(name, api_calls(fake, name))
    print(f"throttled responses in the storm: {create_throttles} creates, {list_throttles} lists")


def test_coordinator_trains_one_fold_itself(make_fake, s3, data_uri, prepared_census, tmp_path):
    from warmcv.cv import train_and_save
    from warmcv.data.manifest import PreparedData
    from warmcv.declarations import parse_hyperparameters

    fake = make_fake()
    trial = {"coordinator_trains_fold": "true", "num_leaves": "15"}
    fake.client().create_training_job(**coordinator_request("trial-self", data_uri, trial))
    completed(fake, "trial-self")
    assert [j.name for j in fake.fold_jobs("trial-self")] == ["trial-self-f1", "trial-self-f2"]
    summary = read_archive_json(s3, output_uri(fake, "trial-self", "output.tar.gz"), "cv_summary.json")
    assert summary["folds"][0]["executor"].startswith("coordinator")
    # Fold 0 trained in the coordinator scores exactly what a worker trains on the same fold.
    hps = parse_hyperparameters({**coordinator_request("x", "", trial)["HyperParameters"], "mode": "worker",
                                 "fold": "0"})
    local = train_and_save(PreparedData.load(prepared_census), hps, tmp_path / "m", tmp_path / "o")
    assert summary["folds"][0]["validation_score"] == pytest.approx(local.validation_score, rel=1e-9)
    scores = [f["validation_score"] for f in summary["folds"]]
    assert summary["validation_mean"] == pytest.approx(statistics.fmean(scores), rel=1e-12)
    assert "fold 0 trained by the coordinator" in summary["runner"]


def test_scores_fall_back_to_the_log_metrics_without_an_output_archive(make_fake, s3, data_uri):
    fake = make_fake()
    fake.faults.append(Fault(is_fold(2), skip_output_archive=True))
    fake.client().create_training_job(**coordinator_request("trial-nolog", data_uri, {}))
    completed(fake, "trial-nolog")
    summary = read_archive_json(s3, output_uri(fake, "trial-nolog", "output.tar.gz"), "cv_summary.json")
    scraped = {m["MetricName"]: m["Value"] for m in fake.jobs["trial-nolog-f2"].final_metrics}
    assert summary["folds"][2]["validation_score"] == scraped["validation:score"]
    assert "using the job's FinalMetricDataList" in fake.log("trial-nolog")


def test_a_network_isolated_coordinator_fails_with_a_clear_reason(make_fake, data_uri):
    fake = make_fake()
    fake.client().create_training_job(**coordinator_request("trial-iso", data_uri, {}, EnableNetworkIsolation=True))
    coordinator = fake.wait("trial-iso", 60)
    assert coordinator.status == "Failed"
    assert "network isolation" in coordinator.failure_reason and not fake.fold_jobs("trial-iso")


def test_folds_outliving_the_coordinators_max_runtime_are_stopped(make_fake, data_uri):
    fake = make_fake()
    fake.faults.append(Fault(is_fold(), start_delay=60))
    fake.client().create_training_job(**coordinator_request("trial-late", data_uri, {}, max_runtime=14))
    coordinator = fake.wait("trial-late", 60)
    assert coordinator.status == "Failed"
    assert "did not finish within the coordinator's MaxRuntimeInSeconds" in coordinator.failure_reason
    for fold in fake.fold_jobs("trial-late"):
        assert fake.wait(fold.name, 30).status == "Stopped"
        assert fold.request["StoppingCondition"]["MaxRuntimeInSeconds"] <= 14


def test_a_quota_that_stays_used_up_fails_the_trial_naming_it(make_fake, data_uri):
    fake = make_fake()
    fake.instance_quota["ml.m5.xlarge"] = 3  # the coordinator and two folds fit, the third fold does not ...
    fake.faults.append(Fault(is_fold(), start_delay=30))  # ... while the two take longer than the quota patience
    fake.client().create_training_job(**coordinator_request("trial-quota", data_uri, {}))
    coordinator = fake.wait("trial-quota", 60)
    assert coordinator.status == "Failed"
    assert "quota 'ml.m5.xlarge for training job usage'" in coordinator.failure_reason
    assert fake.count("CreateTrainingJob", "ResourceLimitExceeded", prefix="trial-quota-f2") > 1  # retried first
    for fold in fake.fold_jobs("trial-quota"):
        assert fake.wait(fold.name, 30).status == "Stopped"


def test_the_coordinator_reports_its_running_cv_mean_after_each_fold(make_fake, s3, data_uri):
    """For the tuner's early stopping (Auto) and Hyperband: the objective's line after each of the first K - 1
    folds (the mean of those finished), then the final mean, which is the value the tuner keeps."""
    fake = make_fake()
    fake.client().create_training_job(**coordinator_request("trial-running", data_uri, {"num_leaves": "15"}))
    completed(fake, "trial-running")
    log = fake.log("trial-running")
    values = [float(v) for v in re.findall(r"average model validation score:(.*?);", log)]
    summary = read_archive_json(s3, output_uri(fake, "trial-running", "output.tar.gz"), "cv_summary.json")
    scores = [f["validation_score"] for f in summary["folds"]]
    assert len(values) == 3 and values[-1] == summary["validation_mean"]
    assert values[0] in scores  # the first fold to finish
    assert any(values[1] == pytest.approx((a + b) / 2, abs=1e-15) for a, b in itertools.combinations(scores, 2))
    objective = {m["MetricName"]: m["Value"] for m in fake.jobs["trial-running"].final_metrics}["validation:score"]
    assert objective == summary["validation_mean"]  # the last line is what SageMaker keeps
