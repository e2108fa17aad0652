"""The real `train` command of the sagemaker-training toolkit, in framework-module mode, on a temp base dir.

This is exactly what the image runs (minus Docker): the toolkit imports warmcv.modes.entry and calls
`train()` in its own process. Exit codes, the failure file and the logged metric lines are checked
as SageMaker would see them.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from sklearn.metrics import roc_auc_score

from tests.conftest import bin_path, leaf_descendants, subprocess_env, wait_for_training_processes
from warmcv.declarations import VALIDATION_SCORE


def run_train(base: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = subprocess_env(SAGEMAKER_BASE_DIR=str(base), SM_STUDIO_LOCAL_MODE="true",
                         SAGEMAKER_TRAINING_MODULE="warmcv.modes.entry:train", TRAINING_JOB_NAME="test-job")
    return subprocess.run([bin_path("train")], env=env, capture_output=True, text=True, timeout=timeout)


def test_worker_trains_one_fold(contract_dir, prepared_census):
    base = contract_dir({"mode": "worker", "fold": "1", "num_boost_round": "30"}, {"train": prepared_census})
    result = run_train(base)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    validation = float(re.search(r"validation score:(.*?);", out).group(1))
    train = float(re.search(r"(?<!validation )train score:(.*?);", out).group(1))
    metrics = json.loads((base / "output/data/metrics.json").read_text())
    assert metrics["fold"] == 1 and metrics["validation_score"] == validation and metrics["train_score"] == train
    model = json.loads((base / "model/model.json").read_text())
    assert model["classes"] == ["<=50K", ">50K"] and model["fold"] == 1
    assert (base / "model/model.txt").read_text().startswith("tree")
    assert (base / "output/success").exists() and not (base / "output/failure").exists()
    assert not list(base.rglob("*.pkl")) and not list(base.rglob("*.pickle"))
    # What the coordinator reads besides the scores: the fold's importances and its validation predictions.
    assert metrics["splits"] > 0 and sum(metrics["feature_importance"]["split"].values()) == metrics["splits"]
    assert set(metrics["feature_importance"]["gain"]) == {f["name"] for f in model["features"]}
    predictions = np.load(base / "output/data/validation_predictions.npy", allow_pickle=False)
    assert predictions.shape == (metrics["n_valid"],) and ((predictions > 0) & (predictions < 1)).all()


def test_worker_trains_the_full_set(contract_dir, prepared_census):
    base = contract_dir({"mode": "worker", "num_boost_round": "20"}, {"train": prepared_census})
    result = run_train(base)
    assert result.returncode == 0, result.stderr
    assert "validation score:" not in result.stdout
    assert json.loads((base / "model/model.json").read_text())["fold"] == "all"


def test_coordinator_logs_the_tuner_lines_and_writes_the_summary(contract_dir, prepared_census):
    base = contract_dir({"mode": "coordinator", "num_boost_round": "25", "learning_rate": "0.1"},
                        {"train": prepared_census})
    result = run_train(base)
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.findall(VALIDATION_SCORE.regex, result.stdout + result.stderr)
    assert len(found) == 1  # the tuner takes the latest match: there must be exactly one
    summary = json.loads((base / "output/data/cv_summary.json").read_text())
    assert float(found[0]) == summary["validation_mean"]
    assert re.search(r"average model training score:(.*?);", result.stdout)
    assert re.search(r"std model validation score:(.*?);", result.stdout)
    assert len(summary["folds"]) == 3 and summary["n_folds"] == 3
    assert (base / "model/cv_summary.json").exists()
    assert "fold_runner=auto picked local" in result.stdout + result.stderr
    # The trial's out-of-fold predictions and importances travel in its output (the tuner's best job carries them).
    oof = pd.read_parquet(base / "output/data/oof_predictions.parquet")
    manifest = json.loads((prepared_census / "manifest.json").read_text())
    assert len(oof) == manifest["rows"] and list(oof.columns) == ["income", "fold", "probability_<=50K",
                                                                  "probability_>50K"]
    for fold in summary["folds"]:
        rows = oof[oof["fold"] == fold["fold"]]
        assert len(rows) == fold["n_valid"]
        assert roc_auc_score(rows["income"] == ">50K", rows["probability_>50K"]) == pytest.approx(
            fold["validation_score"], abs=1e-12)
    importance = json.loads((base / "output/data/feature_importance.json").read_text())
    assert importance["folds"] == [0, 1, 2] and len(importance["features"]) == len(manifest["schema"])


def test_coordinator_logs_its_trial_to_mlflow_when_the_environment_names_a_tracking_uri(contract_dir,
                                                                                        prepared_census, tmp_path,
                                                                                        monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = (tmp_path / "mlruns").as_uri()
    base = contract_dir({"mode": "coordinator", "num_boost_round": "10"}, {"train": prepared_census})
    env = subprocess_env(SAGEMAKER_BASE_DIR=str(base), SM_STUDIO_LOCAL_MODE="true",
                         SAGEMAKER_TRAINING_MODULE="warmcv.modes.entry:train", MLFLOW_TRACKING_URI=store,
                         MLFLOW_EXPERIMENT_NAME="coordinators", MLFLOW_ALLOW_FILE_STORE="true")
    result = subprocess.run([bin_path("train")], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("coordinators")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("warmcv.role") == "study"]
    [trial] = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    summary = json.loads((base / "output/data/cv_summary.json").read_text())
    assert trial.data.metrics["auc_cv_mean"] == summary["validation_mean"]
    assert trial.data.tags["warmcv.best"] == "true" and trial.data.params["num_boost_round"] == "10"


def test_bad_hyperparameter_fails_the_job_with_a_clean_reason(contract_dir, prepared_census):
    base = contract_dir({"mode": "worker", "num_leaves": "abc"}, {"train": prepared_census})
    result = run_train(base)
    assert result.returncode != 0
    reason = (base / "output/failure").read_text()
    assert reason == "hyperparameter num_leaves='abc': is not an integer (allowed: an integer in [2, 131072])"
    assert not (base / "output/success").exists() and not (base / "model/model.json").exists()


def test_sigterm_stops_the_coordinators_folds_and_exits_promptly(contract_dir, tmp_path):
    """SageMaker stops a trial with SIGTERM; every fold must stop and the job must fail, quickly."""
    from warmcv.data.prepare import PrepareOptions, prepare
    from warmcv.examples import make_census_like

    make_census_like(20000, seed=1).to_csv(tmp_path / "big.csv", index=False)
    prepare(tmp_path / "big.csv", tmp_path / "prepared", PrepareOptions(target="income", folds=3))
    base = contract_dir({"mode": "coordinator", "num_boost_round": "100000", "learning_rate": "0.001",
                         "num_leaves": "255", "min_data_in_leaf": "2"}, {"train": tmp_path / "prepared"})
    env = subprocess_env(SAGEMAKER_BASE_DIR=str(base), SM_STUDIO_LOCAL_MODE="true",
                         SAGEMAKER_TRAINING_MODULE="warmcv.modes.entry:train")
    process = subprocess.Popen([bin_path("train")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        parent = psutil.Process(process.pid)
        wait_for_training_processes(lambda: leaf_descendants(process.pid), count=2)
        all_children = parent.children(recursive=True)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0, output
    assert elapsed < 10, f"took {elapsed:.1f} s to stop"
    assert (base / "output/failure").read_text().startswith("Stopped: received SIGTERM")
    gone, alive = psutil.wait_procs(all_children, timeout=5)
    assert not alive, f"fold processes left running: {alive}"
    assert "average model validation score" not in output

