"""Every bad input ends in a clear reason in the failure file and a non-zero exit, through the real entry points.

Training-job inputs go through `run_training_job` (the function the toolkit's `train` calls; the
exit-code path through the toolkit itself is covered in test_train_command.py). Data problems go
through `warmcv prepare`, which the Processing step runs with --failure-file /opt/ml/output/message.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import subprocess_env
from warmcv.contract import ContainerPaths
from warmcv.data.manifest import DATA_FILE
from warmcv.examples import make_census_like
from warmcv.modes.entry import run_training_job


def job_failure(contract_dir, hyperparameters, channels):
    base = contract_dir(hyperparameters, channels)
    code = run_training_job(ContainerPaths(base))
    failure = base / "output" / "failure"
    assert code != 0
    assert failure.exists(), "no failure file"
    assert not (base / "model" / "model.json").exists(), "a failed job left a model that looks complete"
    return failure.read_text()


def test_unknown_hyperparameter(contract_dir, prepared_census):
    reason = job_failure(contract_dir, {"mode": "worker", "learning_rat": "0.1"}, {"train": prepared_census})
    assert reason.startswith("unknown hyperparameter 'learning_rat' (did you mean 'learning_rate'?)")


def test_out_of_range_value(contract_dir, prepared_census):
    reason = job_failure(contract_dir, {"mode": "worker", "feature_fraction": "1.5"}, {"train": prepared_census})
    assert reason == "hyperparameter feature_fraction='1.5': out of range (allowed: a number in (0, 1])"


def test_mistyped_value(contract_dir, prepared_census):
    reason = job_failure(contract_dir, {"mode": "coordinator", "num_leaves": "abc"}, {"train": prepared_census})
    assert reason == "hyperparameter num_leaves='abc': is not an integer (allowed: an integer in [2, 131072])"


@pytest.mark.parametrize(("name", "value", "reason"), [
    # LightGBM keeps 32-bit ints: these trained as min_data_in_leaf=0 and bagging_freq=-1294967296 (no bagging)
    ("min_data_in_leaf", "1e300", "out of range (allowed: an integer in [0, 2147483647])"),
    ("bagging_freq", "3000000000", "out of range (allowed: an integer in [0, 2147483647])"),
    # int() reads '31_0' as 310
    ("num_leaves", "31_0", "is not an integer (allowed: an integer in [2, 131072])"),
])
def test_integers_lightgbm_would_wrap_or_misread_are_refused(contract_dir, prepared_census, name, value, reason):
    reason_found = job_failure(contract_dir, {"mode": "worker", name: value}, {"train": prepared_census})
    assert reason_found == f"hyperparameter {name}={value!r}: {reason}"


def test_fold_index_out_of_range(contract_dir, prepared_census):
    reason = job_failure(contract_dir, {"mode": "worker", "fold": "3"}, {"train": prepared_census})
    assert reason == ("hyperparameter fold=3 is out of range: the prepared data has 3 folds (0..2), "
                      "or use fold=all")


def test_n_folds_that_disagree_with_the_data(contract_dir, prepared_census):
    reason = job_failure(contract_dir, {"mode": "coordinator", "n_folds": "5"}, {"train": prepared_census})
    assert "n_folds=5 does not match the prepared data, which has 3 folds" in reason


def test_metric_that_does_not_fit_the_task(contract_dir, prepared_census):
    reason = job_failure(contract_dir, {"mode": "coordinator", "metric": "rmse"}, {"train": prepared_census})
    assert reason.startswith("hyperparameter metric='rmse' does not apply to a binary task; choose one of auc")


def test_missing_channel(contract_dir):
    reason = job_failure(contract_dir, {"mode": "worker"}, {})
    assert reason.startswith("input channel 'train' not found")


def test_corrupt_prepared_data(contract_dir, prepared_census, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(prepared_census, broken)
    (broken / DATA_FILE).write_bytes(b"PAR1 this is not parquet")
    reason = job_failure(contract_dir, {"mode": "worker"}, {"train": broken})
    assert "does not match its manifest (sha256 differs)" in reason


def test_channel_without_prepared_data(contract_dir, census_csv, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(census_csv, raw)
    reason = job_failure(contract_dir, {"mode": "worker"}, {"train": raw})
    assert reason.startswith("no prepared data in") and "written by `warmcv prepare`" in reason


def test_internal_errors_are_reported_with_a_traceback(contract_dir, prepared_census, monkeypatch):
    from warmcv.modes import worker

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(worker, "train_and_save", explode)
    reason = job_failure(contract_dir, {"mode": "worker"}, {"train": prepared_census})
    assert reason.startswith("Internal error: RuntimeError: boom\nTraceback")


# --- data problems, through `warmcv prepare` as the Processing job runs it ------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warmcv", *args], env=subprocess_env(), capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(("name", "make", "target", "expected"), [
    ("missing-target", lambda: make_census_like(40), "label", "target column 'label' not found"),
    ("nan-target", lambda: make_census_like(40).assign(income=lambda f: f.income.where(f.index != 3)), "income",
     "target column 'income' has 1 missing value(s)"),
    ("single-class", lambda: make_census_like(40).assign(income="<=50K"), "income",
     "classification needs at least two classes"),
    ("too-few-rows", lambda: make_census_like(3), "income", "5 folds need at least 5 rows, but the data has 3"),
])
def test_prepare_failures_reach_the_failure_file(tmp_path, name, make, target, expected):
    make().to_csv(tmp_path / f"{name}.csv", index=False)
    message = tmp_path / "output" / "message"
    result = run_cli("--failure-file", str(message), "prepare", "--data", str(tmp_path / f"{name}.csv"),
                     "--target", target, "--out", str(tmp_path / "out"), "--folds", "5")
    assert result.returncode == 2
    assert expected in message.read_text() and expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_prepare_empty_file_via_cli(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    message = tmp_path / "message"
    result = run_cli("--failure-file", str(message), "prepare", "--data", str(tmp_path / "empty.csv"),
                     "--target", "y", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "is an empty file" in message.read_text()


def test_prediction_columns_that_differ_from_training(tmp_path, prepared_census):
    model_dir = tmp_path / "model"
    assert run_cli("fit", "--prepared", str(prepared_census), "--out", str(model_dir),
                   "--set", "num_boost_round=10").returncode == 0
    frame = make_census_like(20, seed=3).drop(columns=["income", "occupation"])
    frame.to_csv(tmp_path / "new.csv", index=False)
    result = run_cli("predict", "--model", str(model_dir), "--data", str(tmp_path / "new.csv"),
                     "--out", str(tmp_path / "pred.csv"))
    assert result.returncode == 2
    assert "missing column(s) 'occupation' that the model was trained on" in result.stderr
    assert not (tmp_path / "pred.csv").exists()

    frame = make_census_like(20, seed=3)
    frame["age"] = frame["age"].astype(object)
    frame.loc[2, "age"] = "forty"
    frame.to_csv(tmp_path / "typed.csv", index=False)
    result = run_cli("predict", "--model", str(model_dir), "--data", str(tmp_path / "typed.csv"),
                     "--out", str(tmp_path / "pred.csv"))
    assert result.returncode == 2 and "column 'age' must be numeric but holds 'forty' (row 2)" in result.stderr
