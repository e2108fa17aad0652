"""A fold does no work nobody reads: no metric while boosting without early stopping, only the watched one
with it, only the objective where nothing else is read, and no prediction copies past what a rollback costs.

The scores themselves are checked against a predict pass in test_fold_scores.py and against scikit-learn
in test_cv_equivalence.py; here the tests pin down what is (not) computed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from warmcv.cv import FoldTask
from warmcv.data.manifest import PreparedData, read_manifest
from warmcv.data.prepare import PrepareOptions, prepare
from warmcv.declarations import parse_hyperparameters
from warmcv.model.params import NO_METRIC, training_setup
from warmcv.model.training import DatasetCache, metrics_for_task, train_fold
from warmcv.runners.local import LocalFoldRunner
from warmcv.runners.pool import WarmWorkerPool
from warmcv.runners.worker_process import WorkerState, WorkRequest


@pytest.fixture(scope="module")
def data(prepared_census: Path) -> PreparedData:
    return PreparedData.load(prepared_census)


def test_without_early_stopping_lightgbm_evaluates_nothing_while_boosting(data: PreparedData) -> None:
    setup = training_setup(parse_hyperparameters({"num_boost_round": "30"}), data.manifest, num_threads=1)
    assert setup.params["metric"] == NO_METRIC
    outcome = train_fold(data, setup, 0)
    # What the booster evaluates at every round is what eval_valid returns: nothing is registered.
    assert outcome.booster.eval_valid() == [] and outcome.booster.eval_train() == []
    # The fold is still scored, once, from the running predictions: the predict pass agrees.
    _, valid_mask = data.manifest.fold_masks(data.folds, 0)
    expected = setup.metric.score(data.label[valid_mask], outcome.booster.predict(data.features[valid_mask]), 2)
    assert outcome.validation_score == pytest.approx(expected, rel=1e-12)


def test_with_early_stopping_lightgbm_evaluates_only_the_watched_metric(data: PreparedData) -> None:
    hps = {"num_boost_round": "200", "early_stopping_rounds": "5", "metric": "logloss"}
    setup = training_setup(parse_hyperparameters(hps), data.manifest, num_threads=1)
    outcome = train_fold(data, setup, 0)
    assert [(name, metric) for name, metric, *_ in outcome.booster.eval_valid()] == [("validation", "binary_logloss")]


def test_only_the_objective_is_scored_when_nothing_else_is_read(data: PreparedData) -> None:
    setup = training_setup(parse_hyperparameters({"num_boost_round": "30"}), data.manifest, num_threads=1)
    cache = DatasetCache()
    every = train_fold(data, setup, 1, cache=cache)
    objective = train_fold(data, setup, 1, cache=cache, all_metrics=False)
    assert set(every.validation_metrics) == set(every.train_metrics) == {m.name for m in metrics_for_task("binary")}
    assert objective.validation_metrics == {"auc": every.validation_metrics["auc"]}
    assert objective.train_metrics == {"auc": every.train_metrics["auc"]}
    assert (objective.validation_score, objective.train_score) == (every.validation_score, every.train_score)


def test_a_worker_reports_every_metric_unless_told_otherwise_and_always_with_a_saved_model(
        prepared_census: Path, tmp_path: Path) -> None:
    state = WorkerState(threads=1, max_datasets=4)
    hps = {"num_boost_round": "20"}
    objective_only = state.run(WorkRequest(str(prepared_census), hps, 0, all_metrics=False))
    default = state.run(WorkRequest(str(prepared_census), hps, 0))
    saved = state.run(WorkRequest(str(prepared_census), hps, 0, model_dir=str(tmp_path / "m"), all_metrics=False))
    every = {m.name for m in metrics_for_task("binary")}
    assert set(objective_only["validation_metrics"]) == {"auc"}
    assert set(default["validation_metrics"]) == every
    # A saved model's model.json reports every metric, so the fold computes them whatever the request says.
    assert set(saved["validation_metrics"]) == every
    assert set(json.loads((tmp_path / "m" / "model.json").read_text())["validation_metrics"]) == every


def test_the_local_search_asks_its_folds_for_the_objective_only(prepared_census: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial keeps only the objective's scores, so its folds must not compute more; other users of the local
    runner (`warmcv cv`, a coordinator's cv_summary.json) keep every metric."""
    import optuna

    from warmcv.tuning import search as search_module
    from warmcv.tuning.space import resolve_space

    results = []
    original_run = LocalFoldRunner.run

    def recording_run(self, tasks):
        out = original_run(self, tasks)
        results.extend(out)
        return out

    monkeypatch.setattr(LocalFoldRunner, "run", recording_run)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    with WarmWorkerPool(workers=1, threads=1) as pool:
        search_module.Search(study, resolve_space(), {"num_boost_round": "10", "early_stopping_rounds": "0"},
                             prepared_census, read_manifest(prepared_census), pool, trials=2, parallel=1).run()
        assert len(results) == 6 and all(set(r.validation_metrics) == {"auc"} for r in results)
        default = LocalFoldRunner(prepared_census, pool=pool).run([FoldTask(0, {"num_boost_round": "10"})])
    assert set(default[0].validation_metrics) == {m.name for m in metrics_for_task("binary")}


def _long_improving(tmp_path: Path) -> PreparedData:
    """A smooth signal whose log loss a small learning rate keeps improving for hundreds of rounds."""
    rng = np.random.default_rng(4)
    n = 3000
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["y"] = np.where(rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] + 0.5 * x[:, 1]))), "1", "0")
    frame.to_csv(tmp_path / "raw.csv", index=False)
    prepare(tmp_path / "raw.csv", tmp_path / "prepared", PrepareOptions(target="y", folds=3, seed=1))
    return PreparedData.load(tmp_path / "prepared")


def test_prediction_copies_stop_at_twice_the_patience_and_the_rollback_scores_the_best_round(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from warmcv.model import training

    copies: list[int] = []
    best_rounds: set[int] = set()
    original_call = training._BestRoundPredictions.__call__

    def counting_call(self, env):
        original_call(self, env)
        copies.append(self.copies)
        best_rounds.add(self.round)

    monkeypatch.setattr(training._BestRoundPredictions, "__call__", counting_call)
    data = _long_improving(tmp_path)
    hps = {"num_boost_round": "2000", "early_stopping_rounds": "3", "learning_rate": "0.02", "num_leaves": "4",
           "metric": "logloss"}
    setup = training_setup(parse_hyperparameters(hps), data.manifest, num_threads=1)
    outcome = train_fold(data, setup, 0)
    assert max(copies) == 6 and len(best_rounds) > 50  # 2 x patience, although it improved far more often
    assert outcome.best_iteration == outcome.booster.current_iteration() < 2000  # rolled back to the best round
    train_mask, valid_mask = data.manifest.fold_masks(data.folds, 0)
    for mask, scores in ((valid_mask, outcome.validation_metrics), (train_mask, outcome.train_metrics)):
        prediction = outcome.booster.predict(data.features[mask])
        for metric in metrics_for_task("binary"):
            assert scores[metric.name] == pytest.approx(metric.score(data.label[mask], prediction, 2),
                                                        rel=1e-9, abs=1e-12)


def test_without_early_stopping_the_scores_hold_when_lightgbm_runs_out_of_splits(data: PreparedData) -> None:
    """Rounds that add no tree: the attached validation set's running predictions still equal predict's (adding
    the set after training would not, in LightGBM 4.7.0: bench/fold_time.py --ways shows it)."""
    hps = {"num_boost_round": "50", "min_data_in_leaf": "5000"}  # more rows per leaf than the fold has: no split
    setup = training_setup(parse_hyperparameters(hps), data.manifest, num_threads=1)
    outcome = train_fold(data, setup, 2)
    assert outcome.booster.current_iteration() < 50
    train_mask, valid_mask = data.manifest.fold_masks(data.folds, 2)
    for mask, scores in ((valid_mask, outcome.validation_metrics), (train_mask, outcome.train_metrics)):
        prediction = outcome.booster.predict(data.features[mask])
        for metric in metrics_for_task("binary"):
            assert scores[metric.name] == pytest.approx(metric.score(data.label[mask], prediction, 2),
                                                        rel=1e-12, abs=1e-15)


def test_when_lightgbm_runs_out_of_splits_the_best_round_is_scored_by_rollback_not_copies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Copies taken during boosting differed from predict at the best round after LightGBM ran out of splits (AUC
    by 1.5e-5 relative on a UCI Adult fold, min_gain_to_split 0.52); the rolled-back booster matched it exactly."""
    from warmcv.examples import EXAMPLE_TARGET, example_path
    from warmcv.model import training

    prepare(example_path(), tmp_path / "prepared", PrepareOptions(target=EXAMPLE_TARGET, folds=5))
    data = PreparedData.load(tmp_path / "prepared")
    hps = {"early_stopping_rounds": "50", "num_boost_round": "1000", "learning_rate": "0.0869", "max_depth": "4",
           "min_data_in_leaf": "5", "min_gain_to_split": "0.6328", "num_leaves": "117", "lambda_l1": "6.76"}
    setup = training_setup(parse_hyperparameters(hps), data.manifest, num_threads=1)
    scored_by_rollback = []
    original = training._running_predictions
    monkeypatch.setattr(training, "_running_predictions",
                        lambda *args: scored_by_rollback.append(1) or original(*args))
    outcome = train_fold(data, setup, 0)
    assert outcome.booster.current_iteration() < 1000 and scored_by_rollback  # out of splits: no copy used
    _, valid_mask = data.manifest.fold_masks(data.folds, 0)
    expected = setup.metric.score(data.label[valid_mask], outcome.booster.predict(data.features[valid_mask]), 2)
    assert outcome.validation_score == pytest.approx(expected, rel=1e-12)
