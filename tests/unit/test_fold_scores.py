"""Fold scores come from the booster's running predictions; they must equal a predict-then-score pass.

This guards the speed-up in `train_fold` (no second predict pass): if LightGBM ever stopped keeping
its running predictions in step with `rollback_one_iter`, handed the feval raw scores instead of
probabilities, or if the rollback residue were not merged back into ties (AUC on tied rows moves in
the fifth decimal), these comparisons would fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from warmcv.data.manifest import PreparedData
from warmcv.data.prepare import PrepareOptions, prepare
from warmcv.declarations import parse_hyperparameters
from warmcv.model.params import training_setup
from warmcv.model.training import DatasetCache, metrics_for_task, train_fold


def _prepared(tmp_path: Path, frame: pd.DataFrame, target: str, task: str = "auto") -> PreparedData:
    source = tmp_path / "raw.csv"
    frame.to_csv(source, index=False)
    prepare(source, tmp_path / "prepared", PrepareOptions(target=target, folds=3, task=task, seed=1))
    return PreparedData.load(tmp_path / "prepared")


def _frames() -> dict[str, tuple[pd.DataFrame, str, dict[str, str]]]:
    rng = np.random.default_rng(3)
    n = 1500
    x = rng.normal(size=(n, 4))
    colour = rng.choice(["red", "green", "blue"], n)
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(colour=colour)
    logit = x[:, 0] - x[:, 1] + (colour == "red")
    binary = frame.assign(y=np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no"))
    multiclass = frame.assign(y=np.digitize(logit + rng.normal(0, 0.5, n), [-1.0, 0.5]).astype(str))
    regression = frame.assign(y=1000.123 + 3 * x[:, 0] + rng.normal(0, 1, n))
    counts = frame.assign(y=rng.poisson(np.exp(0.5 * x[:, 0])))
    common = {"num_boost_round": "300", "early_stopping_rounds": "5", "learning_rate": "0.3"}
    return {
        "binary": (binary, "y", common),
        "multiclass": (multiclass, "y", common),
        "regression": (regression, "y", common),
        "poisson": (counts, "y", {**common, "objective": "poisson"}),
    }


@pytest.fixture(params=["snapshot", "rollback"])
def scoring_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways train_fold gets the best round's predictions: kept copies, or rollback plus residue merge."""
    from warmcv.model import training

    if request.param == "rollback":
        monkeypatch.setattr(training._BestRoundPredictions, "available", staticmethod(lambda: False))
    return request.param


@pytest.mark.parametrize("case", ["binary", "multiclass", "regression", "poisson"])
def test_scores_equal_a_predict_pass_after_early_stopping(tmp_path: Path, case: str, scoring_path: str) -> None:
    frame, target, hps = _frames()[case]
    data = _prepared(tmp_path, frame, target, task="regression" if case == "poisson" else "auto")
    setup = training_setup(parse_hyperparameters(hps), data.manifest, num_threads=1)
    outcome = train_fold(data, setup, 1, cache=DatasetCache())
    # Early stopping went past the best round, so the scores must be the best round's, not the last one's.
    assert outcome.best_iteration < 300
    if scoring_path == "snapshot":
        assert outcome.best_iteration < outcome.booster.current_iteration()  # nothing rolled back
    else:
        assert outcome.best_iteration == outcome.booster.current_iteration()

    train_mask, valid_mask = data.manifest.fold_masks(data.folds, 1)
    n_classes = data.manifest.n_classes
    for metric in metrics_for_task(setup.task):
        valid_prediction = outcome.booster.predict(data.features[valid_mask], num_iteration=outcome.best_iteration)
        train_prediction = outcome.booster.predict(data.features[train_mask], num_iteration=outcome.best_iteration)
        assert outcome.validation_metrics[metric.name] == pytest.approx(
            metric.score(data.label[valid_mask], valid_prediction, n_classes), rel=1e-9, abs=1e-12)
        assert outcome.train_metrics[metric.name] == pytest.approx(
            metric.score(data.label[train_mask], train_prediction, n_classes), rel=1e-9, abs=1e-12)
    assert outcome.validation_score == outcome.validation_metrics[setup.metric.name]
    assert outcome.n_valid == int(valid_mask.sum())


def test_cached_dataset_gives_the_same_scores(tmp_path: Path) -> None:
    frame, target, hps = _frames()["binary"]
    data = _prepared(tmp_path, frame, target)
    cache = DatasetCache()
    setup = training_setup(parse_hyperparameters(hps), data.manifest, num_threads=1)
    first = train_fold(data, setup, 0, cache=cache)
    other = training_setup(parse_hyperparameters({**hps, "num_leaves": "7"}), data.manifest, num_threads=1)
    train_fold(data, other, 0, cache=cache)  # another trial in between reuses the cached Dataset
    again = train_fold(data, setup, 0, cache=cache)
    assert (first.dataset_cached, again.dataset_cached) == (False, True)
    assert again.validation_metrics == first.validation_metrics
    assert again.train_metrics == first.train_metrics


@pytest.mark.parametrize("case", ["binary", "multiclass", "regression"])
def test_scores_are_exact_without_early_stopping(tmp_path: Path, case: str) -> None:
    frame, target, hps = _frames()[case]
    data = _prepared(tmp_path, frame, target)
    setup = training_setup(parse_hyperparameters({**hps, "early_stopping_rounds": "0", "num_boost_round": "40"}),
                           data.manifest, num_threads=1)
    outcome = train_fold(data, setup, 2)
    train_mask, valid_mask = data.manifest.fold_masks(data.folds, 2)
    for metric in metrics_for_task(setup.task):
        for scores, mask in ((outcome.validation_metrics, valid_mask), (outcome.train_metrics, train_mask)):
            expected = metric.score(data.label[mask], outcome.booster.predict(data.features[mask]),
                                    data.manifest.n_classes)
            assert scores[metric.name] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_early_stopping_when_lightgbm_runs_out_of_splits(tmp_path: Path) -> None:
    """Rounds that add no tree (nothing left to split) still count as rounds: the best round can lie past
    the last tree. Seen in a real `warmcv run --example` trial; it must score, not crash."""
    from warmcv.examples import EXAMPLE_TARGET, example_path

    prepare(example_path(), tmp_path / "prepared", PrepareOptions(target=EXAMPLE_TARGET, folds=5))
    data = PreparedData.load(tmp_path / "prepared")
    hps = {"early_stopping_rounds": "50", "num_boost_round": "1000", "bagging_fraction": "0.7803775473814579",
           "bagging_freq": "10", "feature_fraction": "0.7290585720858643", "lambda_l1": "6.758293617388397",
           "lambda_l2": "0.0001496463385310683", "learning_rate": "0.08687797145350275", "max_depth": "4",
           "min_data_in_leaf": "5", "min_gain_to_split": "0.6327931578307556", "num_leaves": "117"}
    setup = training_setup(parse_hyperparameters(hps), data.manifest, num_threads=1)
    outcome = train_fold(data, setup, 0)
    assert outcome.best_iteration == outcome.booster.current_iteration() < 1000  # no tree after the best round
    _, valid_mask = data.manifest.fold_masks(data.folds, 0)
    expected = setup.metric.score(data.label[valid_mask], outcome.booster.predict(data.features[valid_mask]), 2)
    assert outcome.validation_score == pytest.approx(expected, rel=1e-9)


def test_single_thread_training_uses_row_wise_histograms_and_the_same_trees(tmp_path: Path) -> None:
    frame, target, hps = _frames()["binary"]
    data = _prepared(tmp_path, frame, target)
    values = parse_hyperparameters(hps)
    one = training_setup(values, data.manifest, num_threads=1)
    two = training_setup(values, data.manifest, num_threads=2)
    assert one.params["force_row_wise"] is True and "force_row_wise" not in two.params
    col_wise = training_setup(values, data.manifest, num_threads=1)
    del col_wise.params["force_row_wise"]
    col_wise.params["force_col_wise"] = True
    a, b = train_fold(data, one, 0), train_fold(data, col_wise, 0)
    assert a.booster.model_to_string().split("parameters:")[0] == b.booster.model_to_string().split("parameters:")[0]
    assert a.validation_score == b.validation_score and a.train_score == b.train_score


def test_rollback_residue_is_merged_but_real_differences_are_kept() -> None:
    from warmcv.model.training import merge_rollback_residue

    eps = np.finfo(np.float64).eps
    p = np.array([0.3, 0.3 + 2 * eps, 0.3 - eps, 0.7, 0.3 + 1e-9, 1 - 1e-12, 1 - 1.1e-12, 1e-300])
    merged = merge_rollback_residue(p, rolled_back=50)
    assert merged[0] == merged[1] == merged[2]  # residue of a few ulps: one tie again
    assert len({merged[0], merged[4], merged[3]}) == 3  # a real difference of 1e-9 stays
    assert merged[5] != merged[6]  # saturated probabilities keep their order
    assert merged[7] == 1e-300
    two_columns = np.column_stack([p, 1 - p])
    assert merge_rollback_residue(two_columns, 50).shape == (8, 2)


def test_tied_rows_keep_their_tie_after_early_stopping(tmp_path: Path, scoring_path: str) -> None:
    """Few distinct feature values: most rows tie under predict; fold AUCs must still be the predict AUCs."""
    rng = np.random.default_rng(8)
    n = 3000
    frame = pd.DataFrame({"a": rng.integers(0, 4, n), "b": rng.choice(["x", "y", "z"], n), "c": rng.integers(0, 3, n)})
    logit = frame.a - 1.5 + (frame.b == "x") - 0.5 * frame.c
    frame["y"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "1", "0")
    data = _prepared(tmp_path, frame, "y")
    hps = {"num_boost_round": "500", "early_stopping_rounds": "30", "learning_rate": "0.3", "num_leaves": "31",
           "min_data_in_leaf": "5"}
    setup = training_setup(parse_hyperparameters(hps), data.manifest, num_threads=1)
    for fold in range(3):
        outcome = train_fold(data, setup, fold)
        assert outcome.best_iteration < 500  # stopped early
        for mask, scores in zip(data.manifest.fold_masks(data.folds, fold),
                                (outcome.train_metrics, outcome.validation_metrics), strict=True):
            prediction = outcome.booster.predict(data.features[mask], num_iteration=outcome.best_iteration)
            assert len(np.unique(prediction)) < 50  # heavily tied
            assert scores["auc"] == setup.metric.score(data.label[mask], prediction, 2)
