"""MLflow tracking against a real `mlflow server` started here on 127.0.0.1 (SQLite store, proxied artifacts).

The local API's run logs through the server's REST API; SageMaker coordinators of one tuning job, each its
own process in reality, join one parent run (found by DescribeTrainingJob's TuningJobArn, answered by
botocore's Stubber, which checks the request and the response against SageMaker's service model).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber
from sklearn.datasets import make_classification

import warmcv
from tests.conftest import bin_path, subprocess_env
from warmcv.cv import CrossValidationSummary, FoldResult
from warmcv.tracking.mlflow import MlflowStudy
from warmcv.tracking.sagemaker import log_coordinator_trial

pytestmark = pytest.mark.timeout(900)
REGION = "us-east-1"
TUNING_JOB = "warmcv-tune-2611301200"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [bin_path("mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "art")],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(), start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # its imports take a while on a busy machine
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
        time.sleep(1)
    yield uri
    os.killpg(process.pid, signal.SIGTERM)  # its own session: the server and its worker
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    log.close()


def client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def test_tune_logs_a_parent_run_and_a_nested_run_per_trial(server: str, tmp_path: Path,
                                                           capfd: pytest.CaptureFixture) -> None:
    X, y = make_classification(n_samples=400, n_features=5, random_state=0)
    df = pd.DataFrame(X, columns=list("abcde"))
    df["target"] = y
    result = warmcv.tune(df, target="target", folds=3, trials=4, out=tmp_path / "run", progress=False,
                         fixed={"num_boost_round": 20}, mlflow=server, mlflow_experiment="api-test")
    mlflow = client(server)
    experiment = mlflow.get_experiment_by_name("api-test")
    runs = mlflow.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("warmcv.role") == "study"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.run_id == result.report["mlflow"]["run_id"] and parent.info.status == "FINISHED"
    assert len(trials) == 4
    best = [r for r in trials if r.data.tags.get("warmcv.best") == "true"]
    assert [int(r.data.tags["warmcv.trial"]) for r in best] == [result.best_trial]
    assert best[0].data.metrics["auc_cv_mean"] == result.best_score
    assert {a.path for a in mlflow.list_artifacts(parent.info.run_id)} >= {"model.tar.gz", "report.json", "plots"}
    report = json.loads(Path(mlflow.download_artifacts(parent.info.run_id, "report.json", str(tmp_path))).read_text())
    assert report["best"] == result.report["best"]
    # the sagemaker-mlflow plugin (installed with the SageMaker SDK) misfires on a non-ARN URI: not shown
    # (MLflow's own handler writes to the process's stderr)
    assert "resolving request headers" not in capfd.readouterr().err


def summary(mean: float) -> CrossValidationSummary:
    folds = [FoldResult(fold=i, train_score=0.99, validation_score=mean + (i - 1) * 0.01, best_iteration=40,
                        n_train=200, n_valid=100, seconds=1.5, splits=30) for i in range(3)]
    return CrossValidationSummary.from_results(folds, "auc", "Maximize", "sagemaker", 9.0, {"num_leaves": "31"})


def describe_answer(job: str) -> dict:
    """DescribeTrainingJob of a tuner-launched coordinator: what the service model requires, and TuningJobArn."""
    return {
        "TrainingJobName": job, "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:111122223333:training-job/{job}",
        "TuningJobArn": f"arn:aws:sagemaker:{REGION}:111122223333:hyper-parameter-tuning-job/{TUNING_JOB}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://bucket/tuning/{job}/output/model.tar.gz"},
        "TrainingJobStatus": "InProgress", "SecondaryStatus": "Training",
        "AlgorithmSpecification": {"TrainingImage": "111122223333.dkr.ecr.us-east-1.amazonaws.com/warmcv:1",
                                   "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400}, "CreationTime": datetime.now(UTC),
    }


def test_coordinators_of_one_tuning_job_log_under_one_parent_and_tag_the_best(
        server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "coordinators")
    run_ids = {}
    for job, mean in (("warmcv-tune-2611301200-001-aaaa1111", 0.81), ("warmcv-tune-2611301200-002-bbbb2222", 0.86),
                      ("warmcv-tune-2611301200-003-cccc3333", 0.84)):
        monkeypatch.setenv("TRAINING_JOB_NAME", job)
        monkeypatch.setenv("TRAINING_JOB_ARN", f"arn:aws:sagemaker:{REGION}:111122223333:training-job/{job}")
        sagemaker = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="test",
                                 aws_secret_access_key="test")
        with Stubber(sagemaker) as stub:
            stub.add_response("describe_training_job", describe_answer(job), {"TrainingJobName": job})
            run_ids[job] = log_coordinator_trial(summary(mean), {"num_leaves": "31"}, int(time.time() * 1000),
                                                 client=sagemaker)
            stub.assert_no_pending_responses()
    mlflow = client(server)
    experiment = mlflow.get_experiment_by_name("coordinators")
    runs = mlflow.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("warmcv.role") == "study"]
    assert [p.data.tags["warmcv.study"] for p in parents] == [TUNING_JOB]
    trials = {r.info.run_id: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert set(trials) == set(run_ids.values())
    assert [r.info.run_name for r in trials.values() if r.data.tags.get("warmcv.best") == "true"] == [
        "trial-warmcv-tune-2611301200-002-bbbb2222"]


def test_writers_that_start_together_agree_on_one_parent_run(server: str) -> None:
    found: list[str] = []
    errors: list[BaseException] = []

    def join() -> None:
        try:
            found.append(MlflowStudy.shared(server, "race", study="warmcv-tune-race", run_name="race").run_id)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=join) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(found) == 4 and len(set(found)) == 1
    mlflow = client(server)
    active = mlflow.search_runs([mlflow.get_experiment_by_name("race").experiment_id],
                                "tags.`warmcv.study` = 'warmcv-tune-race'")
    assert [r.info.run_id for r in active] == found[:1]
