"""The warm-pool release: exact requests (botocore Stubber), only the run's jobs, races tolerated."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.stub import Stubber

from warmcv.aws import tags as tag_keys
from warmcv.launcher import handlers
from warmcv.launcher.executions import execution_selector
from warmcv.launcher.warm_pools import RunSelector, names, release_warm_pools

ARN = "arn:aws:sagemaker:us-east-1:111122223333:training-job/{}"
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def client():
    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def summary(name: str, status: str = "Available") -> dict:
    return {"TrainingJobName": name, "TrainingJobArn": ARN.format(name), "CreationTime": T0,
            "TrainingJobStatus": "Completed", "WarmPoolStatus": {"Status": status}}


def fold_tags(tuning: str, parent: str, fold: int) -> list[dict]:
    return [{"Key": tag_keys.PARENT_JOB, "Value": parent}, {"Key": tag_keys.TUNING_JOB, "Value": tuning},
            {"Key": tag_keys.FOLD, "Value": str(fold)}, {"Key": tag_keys.ROLE, "Value": tag_keys.ROLE_FOLD},
            {"Key": "team", "Value": "ml"}]


LIST = {"WarmPoolStatusEquals": "Available", "MaxResults": 100, "SortBy": "CreationTime", "SortOrder": "Descending"}


def expect_update(stub: Stubber, name: str) -> None:
    stub.add_response("update_training_job", {"TrainingJobArn": ARN.format(name)},
                      {"TrainingJobName": name, "ResourceConfig": {"KeepAlivePeriodInSeconds": 0}})


def test_releases_only_the_runs_fold_jobs_and_the_final_job():
    sm = client()
    with Stubber(sm) as stub:
        stub.add_response("list_training_jobs", {"TrainingJobSummaries": [
            summary("tune-a-001-f0"), summary("other-run-f1"), summary("final-job")], "NextToken": "p2"}, LIST)
        stub.add_response("list_tags", {"Tags": fold_tags("tune-a", "tune-a-001", 0)},
                          {"ResourceArn": ARN.format("tune-a-001-f0"), "MaxResults": 100})
        expect_update(stub, "tune-a-001-f0")
        stub.add_response("list_tags", {"Tags": fold_tags("tune-b", "tune-b-007", 1)},
                          {"ResourceArn": ARN.format("other-run-f1"), "MaxResults": 100})
        # The final job is named explicitly: no tags needed.
        expect_update(stub, "final-job")
        stub.add_response("list_training_jobs", {"TrainingJobSummaries": [summary("tune-a-002-f1")]},
                          {**LIST, "NextToken": "p2"})
        stub.add_response("list_tags", {"Tags": fold_tags("tune-a", "tune-a-002", 1)},
                          {"ResourceArn": ARN.format("tune-a-002-f1"), "MaxResults": 100})
        expect_update(stub, "tune-a-002-f1")
        report = release_warm_pools(sm, RunSelector(tuning_jobs=frozenset({"tune-a"}),
                                                    training_jobs=frozenset({"final-job"})))
        stub.assert_no_pending_responses()
    assert report.released == ["tune-a-001-f0", "final-job", "tune-a-002-f1"]
    assert report.requests == {"ListTrainingJobs": 2, "ListTags": 3, "UpdateTrainingJob": 3}


def test_pool_gone_between_listing_and_update_is_not_an_error():
    sm = client()
    with Stubber(sm) as stub:
        stub.add_response("list_training_jobs", {"TrainingJobSummaries": [summary("final-job")]},
                          {**LIST, "CreationTimeAfter": T0})
        stub.add_client_error("update_training_job", "ValidationException",
                              "The warm pool of the training job is not available",
                              expected_params={"TrainingJobName": "final-job",
                                               "ResourceConfig": {"KeepAlivePeriodInSeconds": 0}})
        report = release_warm_pools(sm, RunSelector(training_jobs=frozenset({"final-job"})), created_after=T0)
    assert report.released == [] and report.already_gone == ["final-job"]


def test_other_errors_propagate():
    sm = client()
    with Stubber(sm) as stub:
        stub.add_response("list_training_jobs", {"TrainingJobSummaries": [summary("final-job")]}, LIST)
        stub.add_client_error("update_training_job", "AccessDeniedException", "not authorized")
        with pytest.raises(Exception, match="AccessDenied"):
            release_warm_pools(sm, RunSelector(training_jobs=frozenset({"final-job"})))


def test_dry_run_makes_no_update_and_parent_selector_matches():
    sm = client()
    with Stubber(sm) as stub:
        stub.add_response("list_training_jobs", {"TrainingJobSummaries": [summary("c-1-f0"), summary("x")]}, LIST)
        stub.add_response("list_tags", {"Tags": fold_tags("t", "c-1", 0)},
                          {"ResourceArn": ARN.format("c-1-f0"), "MaxResults": 100})
        stub.add_response("list_tags", {"Tags": []}, {"ResourceArn": ARN.format("x"), "MaxResults": 100})
        report = release_warm_pools(sm, RunSelector(parent_jobs=frozenset({"c-1"})), dry_run=True)
        stub.assert_no_pending_responses()
    assert report.released == ["c-1-f0"] and "UpdateTrainingJob" not in report.requests


def test_selector_needs_something():
    with pytest.raises(ValueError):
        RunSelector()


def test_execution_selector_reads_the_steps():
    sm = client()
    execution = "arn:aws:sagemaker:us-east-1:111122223333:pipeline/p/execution/abc"
    with Stubber(sm) as stub:
        stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
            {"StepName": "Tune", "StartTime": T0 + dt.timedelta(minutes=5),
             "Metadata": {"TuningJob": {"Arn": "arn:aws:sagemaker:us-east-1:111122223333:hyper-parameter-tuning-job/tune-a"}}},
            {"StepName": "TrainFinal", "StartTime": T0 + dt.timedelta(hours=2),
             "Metadata": {"TrainingJob": {"Arn": ARN.format("final-job")}}},
            {"StepName": "Prepare", "StartTime": T0, "Metadata": {}},
        ]}, {"PipelineExecutionArn": execution, "MaxResults": 100})
        selector, started = execution_selector(sm, execution)
    assert selector.tuning_jobs == {"tune-a"} and selector.training_jobs == {"final-job"} and started == T0


def test_release_handler_event():
    sm = client()
    with Stubber(sm) as stub:
        stub.add_response("list_training_jobs", {"TrainingJobSummaries": [summary("final-job")]}, LIST)
        expect_update(stub, "final-job")
        out = handlers.release(sm, {"tuning_job_name": "", "training_job_names": ARN.format("final-job")})
    assert out == {"released": 1, "already_gone": 0, "released_jobs": "final-job"}
    with pytest.raises(handlers.HandlerError):
        handlers.release(sm, {})


def test_cli_release_for_an_execution(monkeypatch, capsys):
    """`warmcv release-warm-pools --execution ARN`: steps -> jobs -> only that run's pools, since its start."""
    from warmcv.cli import main
    from warmcv.launcher import warm_pools

    sm = client()
    execution = "arn:aws:sagemaker:us-east-1:111122223333:pipeline/p/execution/abc"
    stub = Stubber(sm)
    stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
        {"StepName": "Tune", "StartTime": T0,
         "Metadata": {"TuningJob": {"Arn": "arn:aws:sagemaker:us-east-1:111122223333:hyper-parameter-tuning-job/tune-a"}}},
        {"StepName": "TrainFinal", "StartTime": T0, "Metadata": {"TrainingJob": {"Arn": ARN.format("final-job")}}},
    ]}, {"PipelineExecutionArn": execution, "MaxResults": 100})
    stub.add_response("list_training_jobs", {"TrainingJobSummaries": [summary("tune-a-001-f0"), summary("final-job")]},
                      {**LIST, "CreationTimeAfter": T0})
    stub.add_response("list_tags", {"Tags": fold_tags("tune-a", "tune-a-001", 0)},
                      {"ResourceArn": ARN.format("tune-a-001-f0"), "MaxResults": 100})
    expect_update(stub, "tune-a-001-f0")
    expect_update(stub, "final-job")
    monkeypatch.setattr(warm_pools, "sagemaker_client", lambda region=None: sm)
    with stub:
        assert main(["release-warm-pools", "--execution", execution]) == 0
        stub.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert "released 2 warm pool(s): tune-a-001-f0, final-job" in out
    assert "requests: ListTags 1, ListTrainingJobs 1, UpdateTrainingJob 2" in out


def test_client_retries_adaptively():
    """ListTrainingJobs allows ~2 requests/s: botocore's adaptive mode throttles client-side after a 429."""
    from warmcv.launcher.warm_pools import sagemaker_client

    assert sagemaker_client("us-east-1").meta.config.retries == {"mode": "adaptive", "total_max_attempts": 10}


def test_names_match_without_case_as_in_arns_and_tags():
    """An ARN carries the job name lower-cased; SageMaker names are unique regardless of case."""
    sm = client()
    final = "warmcv-final-AbC123"
    with Stubber(sm) as stub:
        stub.add_response("list_training_jobs", {"TrainingJobSummaries": [summary(final), summary("Tune-X-001-f0")]},
                          LIST)
        expect_update(stub, final)
        stub.add_response("list_tags", {"Tags": fold_tags("Tune-X", "Tune-X-001", 0)},
                          {"ResourceArn": ARN.format("Tune-X-001-f0"), "MaxResults": 100})
        expect_update(stub, "Tune-X-001-f0")
        selector = RunSelector(tuning_jobs=frozenset({"tune-x"}),
                               training_jobs=names([ARN.format(final).lower()]))
        report = release_warm_pools(sm, selector)
        stub.assert_no_pending_responses()
    assert report.released == [final, "Tune-X-001-f0"]


def test_a_job_whose_tags_cannot_be_read_is_skipped_and_the_rest_released():
    sm = client()
    with Stubber(sm) as stub:
        stub.add_response("list_training_jobs", {"TrainingJobSummaries": [summary("locked-f0"), summary("tune-a-1-f0")]},
                          LIST)
        stub.add_client_error("list_tags", "AccessDeniedException", "not authorized to perform: sagemaker:ListTags",
                              expected_params={"ResourceArn": ARN.format("locked-f0"), "MaxResults": 100})
        stub.add_response("list_tags", {"Tags": fold_tags("tune-a", "tune-a-1", 0)},
                          {"ResourceArn": ARN.format("tune-a-1-f0"), "MaxResults": 100})
        expect_update(stub, "tune-a-1-f0")
        report = release_warm_pools(sm, RunSelector(tuning_jobs=frozenset({"tune-a"})))
        stub.assert_no_pending_responses()
    assert report.released == ["tune-a-1-f0"] and report.unreadable == ["locked-f0"]
