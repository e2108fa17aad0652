"""Small core helpers that `warmcv cv` and `warmcv run` share: final-fit hyperparameters, OpenMP policy, batch predict."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from warmcv.cv import CrossValidationSummary, FoldResult, final_fit_hyperparameters
from warmcv.openmp import prefer_passive_openmp


def _summary(best_iterations: list[int]) -> CrossValidationSummary:
    folds = [FoldResult(fold=i, train_score=0.9, validation_score=0.8, best_iteration=b, n_train=10, n_valid=5,
                        seconds=0.1) for i, b in enumerate(best_iterations)]
    return CrossValidationSummary.from_results(folds, "auc", "Maximize", "local", 1.0, {})


def test_final_fit_uses_the_folds_mean_best_iteration_with_early_stopping() -> None:
    trial = {"num_leaves": "31", "num_boost_round": "1000", "early_stopping_rounds": "50", "mode": "coordinator"}
    final = final_fit_hyperparameters(trial, _summary([100, 120, 141]))
    assert final == {"num_leaves": "31", "num_boost_round": "120", "early_stopping_rounds": "50",
                     "mode": "worker", "fold": "all"}


def test_final_fit_keeps_num_boost_round_without_early_stopping() -> None:
    final = final_fit_hyperparameters({"num_boost_round": "300"}, _summary([300, 300]))
    assert final == {"num_boost_round": "300", "mode": "worker", "fold": "all"}


def test_passive_openmp_is_a_default_the_user_can_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    prefer_passive_openmp()
    import os

    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    prefer_passive_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_predict_file_writes_probabilities_and_labels(tmp_path: Path, prepared_census: Path, census_csv: Path) -> None:
    from warmcv.cv import train_and_save
    from warmcv.data.manifest import PreparedData
    from warmcv.declarations import parse_hyperparameters
    from warmcv.model.artifacts import TrainedModel
    from warmcv.model.batch import predict_file

    hps = parse_hyperparameters({"mode": "worker", "fold": "all", "num_boost_round": "10", "num_threads": "1"})
    train_and_save(PreparedData.load(prepared_census), hps, tmp_path / "model", tmp_path / "out")
    model = TrainedModel.load(tmp_path / "model")
    rows = predict_file(model, census_csv, tmp_path / "p" / "probabilities.csv")
    probabilities = pd.read_csv(tmp_path / "p" / "probabilities.csv")
    assert rows == len(probabilities) == len(pd.read_csv(census_csv))
    assert list(probabilities.columns) == ["probability_<=50K", "probability_>50K"]
    assert probabilities.sum(axis=1).round(9).eq(1).all()
    predict_file(model, census_csv, tmp_path / "p" / "labels.csv", output="labels")
    assert set(pd.read_csv(tmp_path / "p" / "labels.csv")["prediction"]) <= {"<=50K", ">50K"}
    assert not list((tmp_path / "p").glob(".*.tmp"))
