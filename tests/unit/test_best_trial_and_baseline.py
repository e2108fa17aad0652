"""What a run keeps of its best trial (and only of it), the constant model it must beat, and the order in which
the search tells its observers and the study."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.metrics import log_loss, mean_absolute_error, r2_score, root_mean_squared_error

from warmcv.cv import CrossValidationSummary, FoldExtras, FoldResult
from warmcv.cv.baseline import beats, constant_model_score
from warmcv.data.manifest import PreparedData, read_manifest
from warmcv.data.prepare import PrepareOptions, prepare
from warmcv.declarations import SCORING_METRICS
from warmcv.runners.pool import WarmWorkerPool
from warmcv.tuning.best_trial import KEPT_DIR, BestTrialKeeper
from warmcv.tuning.search import Search
from warmcv.tuning.space import resolve_space
from warmcv.tuning.study import open_study


def summary(prepared: Path, value: float, predictions: bool = True, seed: int = 0) -> CrossValidationSummary:
    """A trial's summary whose folds carry what real folds send: predictions of their validation rows, importances."""
    data = PreparedData.load(prepared)
    rng = np.random.default_rng(seed)
    folds = []
    for fold in range(data.manifest.n_folds):
        _, valid = data.manifest.fold_masks(data.folds, fold)
        extras = FoldExtras(rng.uniform(size=int(valid.sum())) if predictions else None,
                            {"gain": {"age": 10.0 + fold, "hours": 4.0}, "split": {"age": 3.0, "hours": 1.0}})
        folds.append(FoldResult(fold=fold, train_score=0.9, validation_score=value, best_iteration=10,
                                n_train=int((~valid).sum()), n_valid=int(valid.sum()), seconds=0.1, splits=4,
                                extras=extras))
    return CrossValidationSummary.from_results(folds, "auc", "Maximize", "local", 0.3, {})


def test_only_the_best_trial_and_its_ties_are_kept(tmp_path: Path, prepared_census: Path) -> None:
    manifest = read_manifest(prepared_census)
    keeper = BestTrialKeeper(tmp_path, manifest, prepared_census, maximize=True)
    study = optuna.create_study(direction="maximize")
    trials = [study.ask() for _ in range(5)]
    kept = tmp_path / KEPT_DIR

    def files() -> set[str]:
        return {p.name for p in kept.iterdir()}

    keeper.trial_completed(trials[0], summary(prepared_census, 0.80), 1.0)
    assert files() == {"trial-0.json", "trial-0.parquet"}
    keeper.trial_completed(trials[1], summary(prepared_census, 0.70), 1.0)  # never the best: nothing written
    assert files() == {"trial-0.json", "trial-0.parquet"}
    keeper.trial_completed(trials[2], summary(prepared_census, 0.85, seed=2), 1.0)  # better: trial 0 goes
    keeper.trial_completed(trials[3], summary(prepared_census, 0.85, seed=3), 1.0)  # a tie stays
    assert files() == {"trial-2.json", "trial-2.parquet", "trial-3.json", "trial-3.parquet"}
    stored = pd.read_parquet(kept / "trial-2.parquet")
    assert len(stored) == manifest.rows and list(stored.columns) == ["fold", "probability_<=50K", "probability_>50K"]

    resumed = BestTrialKeeper(tmp_path, manifest, prepared_census, maximize=True)  # a resumed run finds them
    assert resumed.kept == {2: 0.85, 3: 0.85}
    outputs = resumed.finish(3)
    assert files() == {"trial-3.json", "trial-3.parquet"}
    oof = pd.read_parquet(outputs.oof_path)
    data = pd.read_parquet(prepared_census / "data.parquet", columns=["income", "__fold__"])
    assert list(oof.columns) == ["income", "fold", "probability_<=50K", "probability_>50K"]
    assert oof["income"].tolist() == data["income"].tolist() and (oof["fold"] == data["__fold__"]).all()
    pd.testing.assert_frame_equal(oof[stored.columns], pd.read_parquet(kept / "trial-3.parquet"))
    assert outputs.feature_importance["features"][0]["feature"] == "age"
    assert outputs.feature_importance["features"][0]["gain"] == {"mean": 11.0, "std": pytest.approx(np.std([10, 11, 12])),
                                                                 "folds": [10.0, 11.0, 12.0]}


def test_a_best_trial_without_predictions_is_reported_with_the_reason(tmp_path: Path, prepared_census: Path) -> None:
    keeper = BestTrialKeeper(tmp_path, read_manifest(prepared_census), prepared_census, maximize=False)
    study = optuna.create_study()
    first, second = study.ask(), study.ask()
    keeper.trial_completed(first, summary(prepared_census, 0.4, predictions=False), 1.0)
    keeper.trial_completed(second, summary(prepared_census, 0.5), 1.0)  # worse when minimising
    outputs = keeper.finish(first.number)
    assert outputs.oof_path is None and outputs.skipped == "trial #0's folds sent no predictions"
    assert outputs.feature_importance is not None
    missing = keeper.finish(7)
    assert missing.oof_path is None and missing.feature_importance is None
    assert "trial #7 kept no out-of-fold predictions" in missing.skipped


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("regression")
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"x": rng.normal(size=300)})
    df["y"] = 3 * df["x"] + rng.exponential(2.0, size=300)
    df.to_csv(folder / "data.csv", index=False)
    prepare(folder / "data.csv", folder / "p", PrepareOptions(target="y", folds=4))
    return folder / "p"


def test_the_constant_models_score_is_each_folds_best_constant(prepared_census: Path, regression: Path) -> None:
    data = PreparedData.load(prepared_census)
    manifest = data.manifest
    assert constant_model_score(SCORING_METRICS["auc"], manifest, prepared_census) == 0.5
    expected_logloss, expected_accuracy = [], []
    for fold in range(manifest.n_folds):
        train, valid = manifest.fold_masks(data.folds, fold)
        prior = np.bincount(data.label[train], minlength=2) / train.sum()
        expected_logloss.append(log_loss(data.label[valid], np.tile(prior, (valid.sum(), 1)), labels=[0, 1]))
        expected_accuracy.append(np.mean(data.label[valid] == prior.argmax()))
    assert constant_model_score(SCORING_METRICS["logloss"], manifest, prepared_census) == pytest.approx(
        np.mean(expected_logloss), rel=1e-12)
    assert constant_model_score(SCORING_METRICS["accuracy"], manifest, prepared_census) == pytest.approx(
        np.mean(expected_accuracy), rel=1e-12)

    data = PreparedData.load(regression)
    scores = {"rmse": [], "mae": [], "r2": []}
    for fold in range(data.manifest.n_folds):
        train, valid = data.manifest.fold_masks(data.folds, fold)
        y_valid = data.label[valid]
        scores["rmse"].append(root_mean_squared_error(y_valid, np.full(valid.sum(), data.label[train].mean())))
        scores["mae"].append(mean_absolute_error(y_valid, np.full(valid.sum(), np.median(data.label[train]))))
        scores["r2"].append(r2_score(y_valid, np.full(valid.sum(), data.label[train].mean())))
    for name, values in scores.items():
        assert constant_model_score(SCORING_METRICS[name], data.manifest, regression) == pytest.approx(
            np.mean(values), rel=1e-12)
    assert np.mean(scores["r2"]) < 0  # the training folds' mean is not the validation fold's


@pytest.mark.parametrize("metric, score, baseline, better", [
    ("auc", 0.5, 0.5, False), ("auc", 0.5 + 1e-12, 0.5, False), ("auc", 0.51, 0.5, True), ("auc", 0.49, 0.5, False),
    ("logloss", 0.6 - 1e-13, 0.6, False), ("logloss", 0.59, 0.6, True), ("rmse", 12.0, 11.0, False),
])
def test_beating_the_constant_model_means_more_than_rounding(metric: str, score: float, baseline: float,
                                                           better: bool) -> None:
    assert beats(SCORING_METRICS[metric], score, baseline) is better


class Recorder:
    """An observer that looks at the study while it is told of a trial."""

    def __init__(self, study: optuna.Study):
        self.study = study
        self.seen: list[tuple[str, int, str]] = []
        self.threads: set[str] = set()

    def _state(self, trial) -> str:
        return next(t.state.name for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)

    def trial_completed(self, trial, summary, seconds) -> None:
        self.threads.add(threading.current_thread().name)
        assert summary.folds[0].extras.validation_predictions is not None
        self.seen.append(("completed", trial.number, self._state(trial)))

    def trial_failed(self, trial, error, seconds) -> None:
        self.seen.append(("failed", trial.number, self._state(trial)))


def test_observers_hear_of_each_trial_before_the_study_records_it(tmp_path: Path, prepared_census: Path) -> None:
    study = open_study(tmp_path, "Maximize", optuna.samplers.RandomSampler(seed=0), create=True)
    recorder = Recorder(study)
    space = resolve_space(["num_leaves=4:16:log"], exclude=["max_depth", "min_gain_to_split", "lambda_l1"])
    with WarmWorkerPool(workers=2, threads=1) as pool:
        Search(study, space, {"num_boost_round": "10"}, prepared_census, read_manifest(prepared_census), pool,
               trials=3, parallel=2, observers=[recorder]).run()
    assert sorted(n for _, n, _ in recorder.seen) == [0, 1, 2]
    assert {state for _, _, state in recorder.seen} == {"RUNNING"}  # told before the study's tell
    assert recorder.threads == {threading.current_thread().name}  # the search's main thread, never a trial's
