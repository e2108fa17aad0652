"""Training LightGBM on one fold (or the full set) and scoring it.

The expensive part that does not depend on the trial, binning the data into a LightGBM Dataset, is
cached per fold and reused across trials as long as the dataset-level parameters stay the same.

Nothing is computed during boosting that nobody reads. Without early stopping LightGBM evaluates no
metric (params.NO_METRIC); the validation set is still attached, because LightGBM then keeps its
running predictions, tree by tree, on the binned rows: equal to a predict pass and cheaper (0.07-0.09 s
against 0.11-0.12 s for 200 trees on a UCI Adult fold, bench/fold_time.py). Adding the set after training
(Booster.add_valid) costs the same but is wrong when LightGBM ran out of splits before the last round:
its running predictions then differ from predict's (LightGBM 4.7.0; bench/fold_time.py shows it on
breast_cancer). With early stopping LightGBM evaluates the one metric early stopping watches.

The fold is scored once, after boosting, from the booster's own running predictions (training rows
included), with the metrics the caller reports: every metric of the task where they are written down (a
fold job's metrics.json, a saved model's model.json, a coordinator's cv_summary.json), only the
objective where nothing else is read (the local search).

With early stopping, the scores belong to the best round, not the last. Each time the validation metric
improves, a copy of the running predictions is kept (exactly what `predict` returns at that round), so
nothing needs rolling back. Each copy is a pass over every row, and a fold that improves for hundreds of
rounds makes hundreds of them (14 % of a UCI Adult fold at learning rate 0.05). So the copies stop after
twice early stopping's patience, and the trees after the best round (at most the patience's worth) are
rolled back instead: rolling back one tree cost 0.3 to 2.4 copies (8 to 255 leaves, on Adult and on 200k
synthetic rows), so the rollback costs about what the copies already made did, or less. Copies are not
used either when LightGBM ran out of splits (fewer trees than rounds): they then differed from predict
at the best round (AUC by 1.5e-5 relative on a UCI Adult fold) while the rollback matched it. A rollback's
floating-point residue breaks AUC's ties (it moved AUC in the fifth decimal on tied rows), so it is
merged back into ties with a tolerance derived from the rollback's rounding error.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np

from warmcv.data.manifest import PreparedData
from warmcv.declarations import ALL_FOLDS, SCORING_METRICS, ScoringMetric
from warmcv.errors import UserInputError
from warmcv.model.dataset_store import DatasetStore, categorical_columns
from warmcv.model.params import TrainingSetup


@dataclass
class FoldOutcome:
    """One trained fold. `train_metrics` and `validation_metrics` hold every metric of the task, or only the
    objective when the caller asked for no more (`train_fold(all_metrics=False)`)."""

    fold: int | str
    # May hold trees past the best round (early stopping's patience): the model is its first
    # best_iteration trees, which is what save_model writes and Booster.predict uses by default.
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
    """Least-recently-used constructed (train, valid) Dataset pairs, one per fold and dataset key.

    With a `store`, a pair another worker has already binned is loaded from its binary file instead.
    """

    max_entries: int = 16
    store: DatasetStore | None = None
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


def _load_or_build_datasets(data: PreparedData, setup: TrainingSetup, fold: int | str, key: Hashable,
                            store: DatasetStore | None):
    if store is None:
        return _build_datasets(data, setup, fold)
    positions, categories = categorical_columns(data.features)
    loaded = store.load(key, setup.dataset_params, categories, positions)
    if loaded is not None:
        return loaded
    train, valid = _build_datasets(data, setup, fold)
    if valid is not None:  # the full set is trained once per run: nobody else will want it
        store.save(key, train, valid)
    return train, valid


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


def train_fold(data: PreparedData, setup: TrainingSetup, fold: int | str,
               cache: DatasetCache | None = None, all_metrics: bool = True) -> FoldOutcome:
    """Train on fold `fold` (score its held-out rows) or on all rows for `fold == "all"`.

    `all_metrics=False` scores the objective metric only: for callers that read nothing else.
    """
    started = time.perf_counter()
    data.manifest.check_fold(fold)
    key = (data.manifest.data_sha256, fold, setup.dataset_key)
    if cache is None:
        (train, valid), cached = _build_datasets(data, setup, fold), False
    else:
        (train, valid), cached = cache.get(key, lambda: _load_or_build_datasets(data, setup, fold, key, cache.store))
    early_stopping = setup.early_stopping_rounds if valid is not None else 0
    snapshot = (_BestRoundPredictions(max_copies=2 * early_stopping)
                if early_stopping and _BestRoundPredictions.available() else None)
    callbacks = [lgb.early_stopping(early_stopping, first_metric_only=True, verbose=False)] if early_stopping else []
    try:
        booster = lgb.train(setup.params, train, num_boost_round=setup.num_boost_round,
                            valid_sets=[valid] if valid is not None else None, valid_names=["validation"],
                            callbacks=callbacks + ([snapshot] if snapshot else []), keep_training_booster=True)
    except lgb.basic.LightGBMError as error:
        raise UserInputError(f"LightGBM rejected the training parameters: {error}") from None
    # Boosting rounds and trees differ when LightGBM runs out of splits: the remaining rounds add no tree,
    # so early stopping's best round may lie past the last tree.
    best_round = booster.best_iteration if early_stopping and booster.best_iteration > 0 else None
    best = min(best_round, booster.current_iteration()) if best_round else booster.current_iteration()
    n_classes = data.manifest.n_classes
    # When LightGBM ran out of splits (fewer trees than rounds), copies taken during boosting were seen to
    # differ from predict at the best round (AUC by 1e-5 relative on UCI Adult); the rollback matches it.
    ran_out_of_splits = snapshot is not None and booster.current_iteration() < snapshot.rounds
    if (snapshot is not None and snapshot.round == best_round and snapshot.train is not None
            and not ran_out_of_splits):
        train_prediction, valid_prediction = snapshot.train, snapshot.valid
    else:
        rolled_back = booster.current_iteration() - best
        while booster.current_iteration() > best:
            booster.rollback_one_iter()
        train_prediction = _running_predictions(booster.eval_train, rolled_back, n_classes)
        valid_prediction = (_running_predictions(booster.eval_valid, rolled_back, n_classes)
                            if valid is not None else None)

    task_metrics = metrics_for_task(setup.task) if all_metrics else [setup.metric]
    train_mask, valid_mask = data.manifest.fold_masks(data.folds, fold)
    # The exact labels (float64 for regression), not the float32 copy the Dataset holds.
    train_metrics = {m.name: m.score(data.label[train_mask], train_prediction, n_classes) for m in task_metrics}
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


class _BestRoundPredictions:
    """A callback keeping copies of the running training and validation predictions at the best round.

    It applies early stopping's own rule (strictly better on the first validation metric) and runs
    just before it in each round, so its best round is early stopping's. The predictions come from the
    booster's private `__inner_predict` (what a feval receives, without evaluating anything); if a
    LightGBM release drops it, `available()` is false and `train_fold` rolls back instead.

    After `max_copies` copies it stops copying and drops what it holds (`train` is None): past that
    point, rolling back the trees after the best round (at most the patience's worth) is the cheaper way.
    """

    order = 29  # lightgbm.early_stopping is 30 and raises at the last round before later callbacks run
    before_iteration = False

    def __init__(self, max_copies: int) -> None:
        self.max_copies = max_copies
        self.copies = 0
        self.rounds = 0  # boosting rounds run so far
        self.best: float | None = None
        self.round: int | None = None
        self.train: np.ndarray | None = None
        self.valid: np.ndarray | None = None

    @staticmethod
    def available() -> bool:
        return hasattr(lgb.Booster, "_Booster__inner_predict")

    def __call__(self, env: Any) -> None:
        self.rounds = env.iteration + 1
        result = next(r for r in env.evaluation_result_list if r.dataset_name == "validation")
        score = result.metric_value
        if self.best is not None and not (score > self.best if result.maximize else score < self.best):
            return
        self.best, self.round = score, env.iteration + 1
        if self.copies >= self.max_copies:
            self.train = self.valid = None
            return
        self.copies += 1
        inner_predict = env.model._Booster__inner_predict
        self.train = _copy_into(self.train, inner_predict(data_idx=0))
        self.valid = _copy_into(self.valid, inner_predict(data_idx=1))


def _copy_into(buffer: np.ndarray | None, values: np.ndarray) -> np.ndarray:
    if buffer is None or buffer.shape != values.shape:
        return np.array(values, dtype=np.float64, copy=True)
    np.copyto(buffer, values)
    return buffer


def _running_predictions(evaluate: Callable[..., list], rolled_back: int, n_classes: int) -> np.ndarray:
    """The predictions LightGBM keeps for one data set (what a feval receives: probabilities for
    classification), with the rollback's floating-point residue merged back into ties."""
    kept: list[np.ndarray] = []

    def keep(prediction: np.ndarray, _dataset: lgb.Dataset) -> tuple[str, float, bool]:
        kept.append(np.array(prediction, dtype=np.float64, copy=True))
        return "warmcv_keep", 0.0, True

    evaluate(feval=keep)
    prediction = kept[0]
    if rolled_back and n_classes:  # regression metrics are continuous: a residue cannot change them visibly
        prediction = merge_rollback_residue(prediction, rolled_back)
    return prediction


# Bound on |raw score partial sums| used for the rollback error: sigmoid/softmax saturate far below it.
_SCORE_MAGNITUDE = 64.0


def merge_rollback_residue(probabilities: np.ndarray, rolled_back: int) -> np.ndarray:
    """Undo the tie-breaking noise that rolling back `rolled_back` trees leaves in class probabilities.

    Adding and then subtracting n trees rounds 2n times, each off by at most half an ulp of a partial
    sum, so a raw score ends within 2n x eps x |partial sums| of where `predict` puts it; through the
    sigmoid or softmax a probability p moves by at most 4 p (1 - p) times that. Neighbouring values (in
    sorted order, per class column) closer than this bound become one value. Genuinely different scores
    that close are vanishingly rare (~1e-12 apart in raw score), and merging them changes AUC by at most
    one pair in n_pos x n_neg.
    """
    tolerance = 4 * 2 * (rolled_back + 1) * np.finfo(np.float64).eps * _SCORE_MAGNITUDE
    columns = probabilities.reshape(len(probabilities), -1)
    merged = np.empty_like(columns)
    for j in range(columns.shape[1]):
        order = np.argsort(columns[:, j], kind="stable")
        values = columns[order, j]
        width = values * (1.0 - values)
        close = np.diff(values) <= tolerance * np.maximum(width[1:], width[:-1])
        starts = np.concatenate(([True], ~close))
        merged[order, j] = values[starts][np.cumsum(starts) - 1]
    return merged.reshape(probabilities.shape)


def fold_label(fold: int | str) -> str:
    return "full data set" if fold == ALL_FOLDS else f"fold {fold}"
