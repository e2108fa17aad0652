"""MLflow tracking's edges, on a real MLflow file store: URIs, the resume record, and a store that goes away."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import optuna
import pytest

from warmcv.cv import CrossValidationSummary, FoldResult
from warmcv.errors import UserInputError
from warmcv.settings.run import PrepareOptions
from warmcv.tracking.mlflow import STATE_FILE, normalise_uri, saved_run_id, trial_metrics
from warmcv.tuning.run_settings import new_run_settings
from warmcv.tuning.tracking import RUN_ID_ATTR, RunTracking


def test_uris_mean_the_same_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert normalise_uri("mlruns") == (tmp_path / "mlruns").as_uri()
    for uri in ("http://127.0.0.1:5000", "sqlite:///abs/mlflow.db", "file:///abs/mlruns",
                "arn:aws:sagemaker:us-east-1:111122223333:mlflow-tracking-server/x"):
        assert normalise_uri(uri) == uri
    with pytest.raises(UserInputError, match="tracking URI is empty"):
        normalise_uri(" ")


def summary() -> CrossValidationSummary:
    folds = [FoldResult(fold=i, train_score=0.9, validation_score=0.7 + i / 100, best_iteration=5, n_train=8,
                        n_valid=4, seconds=0.1, splits=0) for i in range(2)]
    return CrossValidationSummary.from_results(folds, "auc", "Maximize", "local", 0.2, {"num_leaves": "7"})


def test_trial_metrics_say_which_score_they_are() -> None:
    metrics = trial_metrics(summary())
    assert metrics == {"auc_cv_mean": pytest.approx(0.705), "auc_cv_std": pytest.approx(0.005),
                       "train_auc_cv_mean": 0.9, "best_iteration_mean": 5.0, "auc_fold_0": 0.7, "auc_fold_1": 0.71}
    assert summary().constant_model is True


def test_a_store_that_goes_away_is_a_warning_not_the_end_of_the_search(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    store = tmp_path / "mlruns"
    settings = new_run_settings(tmp_path / "d.csv", "y", PrepareOptions(target="y"),
                                mlflow_tracking_uri=str(store))
    assert settings.mlflow_tracking_uri == store.as_uri()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tracking = RunTracking.open(settings, run_dir, "edge")
    assert saved_run_id(run_dir, store.as_uri()) == tracking.study.run_id
    assert saved_run_id(run_dir, "http://elsewhere") is None and (run_dir / STATE_FILE).is_file()
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr("hyperparameters", {"num_leaves": "7"})
    tracking.trial_completed(trial, summary(), 0.5)
    assert RUN_ID_ATTR in trial.user_attrs
    shutil.rmtree(store / tracking.study.experiment_id)  # the store loses the experiment
    lost = study.ask()
    with caplog.at_level(logging.WARNING, logger="warmcv.tuning.tracking"):
        tracking.trial_completed(lost, summary(), 0.5)
    assert tracking.failures == 1 and RUN_ID_ATTR not in lost.user_attrs
    assert f"MLflow: could not log trial {lost.number}" in caplog.text


def test_a_run_folder_resumes_its_own_parent_run(tmp_path: Path) -> None:
    settings = new_run_settings(tmp_path / "d.csv", "y", PrepareOptions(target="y"),
                                mlflow_tracking_uri=(tmp_path / "mlruns").as_uri())
    first = RunTracking.open(settings, tmp_path, "resume")
    first.end("KILLED")
    again = RunTracking.open(settings, tmp_path, "resume")
    assert again.study.run_id == first.study.run_id
    assert again.study.client.get_run(again.study.run_id).info.status == "RUNNING"
    assert RunTracking.open(settings.replaced(mlflow_tracking_uri=None), tmp_path, "resume") is None


def test_a_pruned_trial_is_a_killed_run_with_the_folds_it_ran(tmp_path: Path) -> None:
    """Pruned is neither finished (its partial mean is not a K-fold mean) nor failed: MLflow's KILLED, the
    scores of the folds it ran, and the decision as a tag."""
    from warmcv.cv.pruning import PruningDecision
    from warmcv.tracking.mlflow import PRUNED_TAG

    settings = new_run_settings(tmp_path / "d.csv", "y", PrepareOptions(target="y"),
                                mlflow_tracking_uri=(tmp_path / "mlruns").as_uri())
    tracking = RunTracking.open(settings, tmp_path, "pruned")
    trial = optuna.create_study().ask()
    trial.set_user_attr("hyperparameters", {"num_leaves": "7"})
    decision = PruningDecision(prune=True, rule="paired-bound", folds_seen=2, n_folds=5, threshold=0.1, statistic=0.01,
                               best_trial=0, reason="cannot beat #0")
    tracking.trial_pruned(trial, summary(), decision, 0.5)
    run = tracking.study.client.get_run(trial.user_attrs[RUN_ID_ATTR])
    assert run.info.status == "KILLED"
    assert set(run.data.metrics) == {"seconds", "auc_fold_0", "auc_fold_1"}
    assert '"rule": "paired-bound"' in run.data.tags[PRUNED_TAG]
