"""Training LightGBM on one fold (or the full set) and scoring it.

The expensive part that does not depend on the trial, binning the data into a LightGBM Dataset, is
cached per fold and reused across trials as long as the dataset-level parameters stay the same.
Scores are read from the booster's own running predictions instead of predicting the rows again (a
second predict pass over a 40k-row validation fold costs about 6 % of that fold's training): the
training score from `eval_train`, the validation score from the predictions LightGBM hands a feval
at the best iteration. Those are captured during training rather than read after `rollback_one_iter`,
because rolling back subtracts trees in floating point and the residue breaks ties between rows
differently from `predict`, which moves AUC in the fifth decimal on data with many tied rows.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np

from warmcv.data.manifest import PreparedData
from warmcv.declarations import ALL_FOLDS, SCORING_METRICS, ScoringMetric
from warmcv.errors import UserInputError
from warmcv.model.params import TrainingSetup

_FEVAL_PREFIX = "warmcv_"


@dataclass
class FoldOutcome:
    fold: int | str
    booster: lgb.Booster
    best_iteration: int
    train_score: float
    validation_score: float | None
    train_metrics: dict[str, float]
    validation_metrics: dict[str, float]
    n_train: int
    n_valid: int
    seconds: float
    dataset_cached: bool

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (everything but the booster)."""
        return {
            "fold": self.fold, "best_iteration": self.best_iteration, "train_score": self.train_score,
            "validation_score": self.validation_score, "train_metrics": self.train_metrics,
            "validation_metrics": self.validation_metrics, "n_train": self.n_train, "n_valid": self.n_valid,
            "seconds": self.seconds, "dataset_cached": self.dataset_cached,
        }


@dataclass
class DatasetCache:
    """Least-recently-used constructed (train, valid) Dataset pairs, one per fold and dataset key."""

    max_entries: int = 16
    _entries: OrderedDict[Hashable, tuple[lgb.Dataset, lgb.Dataset | None]] = field(default_factory=OrderedDict)
    hits: int = 0
    misses: int = 0

    def get(self, key: Hashable, build: Callable[[], tuple[lgb.Dataset, lgb.Dataset | None]]):
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key], True
        self.misses += 1
        value = build()
        self._entries[key] = value
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value, False

    def keys(self) -> list[Hashable]:
        return list(self._entries)


def metrics_for_task(task: str) -> list[ScoringMetric]:
    return [m for m in SCORING_METRICS.values() if task in m.tasks]


def _build_datasets(data: PreparedData, setup: TrainingSetup, fold: int | str):
    train_mask, valid_mask = data.manifest.fold_masks(data.folds, fold)
    train = lgb.Dataset(data.features[train_mask], label=data.label[train_mask], params=setup.dataset_params,
                        free_raw_data=True)
    valid = None
    if valid_mask.any():
        valid = lgb.Dataset(data.features[valid_mask], label=data.label[valid_mask], reference=train,
                            params=setup.dataset_params, free_raw_data=True)
    # Construct now so the cost lands in the cache, not in the first trial that happens to use it.
    train.construct()
    if valid is not None:
        valid.construct()
    return train, valid


def train_fold(data: PreparedData, setup: TrainingSetup, fold: int | str, cache: DatasetCache | None = None) -> FoldOutcome:
    """Train on fold `fold` (score its held-out rows) or on all rows for `fold == "all"`."""
    started = time.perf_counter()
    data.manifest.check_fold(fold)
    key = (data.manifest.data_sha256, fold, setup.dataset_key)
    if cache is None:
        (train, valid), cached = _build_datasets(data, setup, fold), False
    else:
        (train, valid), cached = cache.get(key, lambda: _build_datasets(data, setup, fold))
    early_stopping = setup.early_stopping_rounds if valid is not None else 0
    callbacks = [lgb.early_stopping(early_stopping, first_metric_only=True, verbose=False)] if early_stopping else []
    # Only early stopping rolls trees back; without it the booster's final validation predictions are exact.
    capture = _RecentPredictions(early_stopping + 1) if early_stopping else None
    try:
        booster = lgb.train(setup.params, train, num_boost_round=setup.num_boost_round,
                            valid_sets=[valid] if valid is not None else None, valid_names=["validation"],
                            feval=capture, callbacks=callbacks, keep_training_booster=True)
    except lgb.basic.LightGBMError as error:
        raise UserInputError(f"LightGBM rejected the training parameters: {error}") from None
    # Boosting rounds and trees differ when LightGBM runs out of splits: the remaining rounds add no tree,
    # so early stopping's best round may lie past the last tree.
    best_round = booster.best_iteration if early_stopping and booster.best_iteration > 0 else None
    valid_prediction = None
    if capture is not None:
        valid_prediction = capture.at_round(best_round)
    elif valid is not None:
        valid_prediction = _predictions(booster.eval_valid)
    best = min(best_round, booster.current_iteration()) if best_round else booster.current_iteration()
    while booster.current_iteration() > best:
        booster.rollback_one_iter()

    n_classes = data.manifest.n_classes
    task_metrics = metrics_for_task(setup.task)
    train_mask, valid_mask = data.manifest.fold_masks(data.folds, fold)
    # The exact labels (float64 for regression), not the float32 copy the Dataset holds.
    train_metrics = _evaluate(booster.eval_train, task_metrics, data.label[train_mask], n_classes)
    validation_metrics: dict[str, float] = {}
    n_valid = 0
    if valid_prediction is not None:
        n_valid = int(valid_mask.sum())
        y_valid = data.label[valid_mask]
        validation_metrics = {m.name: m.score(y_valid, valid_prediction, n_classes) for m in task_metrics}
    name = setup.metric.name
    return FoldOutcome(
        fold=fold, booster=booster, best_iteration=best,
        train_score=train_metrics[name],
        validation_score=validation_metrics.get(name) if valid is not None else None,
        train_metrics=train_metrics, validation_metrics=validation_metrics,
        n_train=train.num_data(), n_valid=n_valid,
        seconds=time.perf_counter() - started, dataset_cached=cached,
    )


class _RecentPredictions:
    """A feval that keeps the validation predictions of the last `window` boosting rounds and scores nothing.

    LightGBM calls it once per round with the transformed predictions (probabilities for
    classification), accumulated tree by tree exactly as `predict` sums them. Early stopping ends
    training at most `early_stopping_rounds` rounds after the best one, so a window of that length + 1
    always holds the best round's predictions.
    """

    name = "warmcv_capture"

    def __init__(self, window: int):
        self.window = window
        self.rounds = 0  # calls so far: the 1-based number of the round just evaluated
        self._recent: deque[np.ndarray] = deque(maxlen=window)

    def __call__(self, prediction: np.ndarray, _dataset: lgb.Dataset) -> tuple[str, float, bool]:
        self.rounds += 1
        self._recent.append(np.array(prediction, copy=True))
        return self.name, 0.0, True

    def at_round(self, round_number: int | None) -> np.ndarray:
        """Predictions after round `round_number` (1-based, as Booster.best_iteration), or the last round's."""
        back = 0 if round_number is None else self.rounds - round_number
        if not 0 <= back < len(self._recent):
            raise RuntimeError(f"predictions of round {round_number} were not kept "
                               f"(last round {self.rounds}, window {self.window})")
        return self._recent[-1 - back]


def _predictions(evaluate: Callable[..., list]) -> np.ndarray:
    """The running predictions LightGBM keeps for a data set, as a feval receives them."""
    kept: list[np.ndarray] = []
    evaluate(feval=lambda prediction, _dataset: (kept.append(np.array(prediction, copy=True)), ("x", 0.0, True))[1])
    return kept[0]


def _evaluate(evaluate: Callable[..., list], metrics: list[ScoringMetric], y: np.ndarray,
              n_classes: int) -> dict[str, float]:
    """Scores from the booster's running predictions of one data set (`eval_train` or `eval_valid`).

    LightGBM hands a feval the transformed predictions (probabilities for classification), exactly
    what `Booster.predict` would return for those rows, so the scores equal a predict-then-score pass.
    """

    def feval_for(metric: ScoringMetric):
        def feval(prediction: np.ndarray, _dataset: lgb.Dataset):
            return _FEVAL_PREFIX + metric.name, metric.score(y, prediction, n_classes), metric.direction == "Maximize"
        return feval

    results = evaluate(feval=[feval_for(m) for m in metrics])
    return {
        r.metric_name[len(_FEVAL_PREFIX):]: float(r.metric_value)
        for r in results if r.metric_name.startswith(_FEVAL_PREFIX)
    }


def fold_label(fold: int | str) -> str:
    return "full data set" if fold == ALL_FOLDS else f"fold {fold}"
