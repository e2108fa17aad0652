"""From validated hyperparameters and the prepared data's task to the exact LightGBM parameters."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warmcv.data.manifest import Manifest
from warmcv.declarations import DATASET_LEVEL, DEFAULT_METRIC, SCORING_METRICS, ScoringMetric
from warmcv.declarations.catalog import LIGHTGBM_PARAMETER_NAMES
from warmcv.errors import UserInputError

# LightGBM's name for "register no metric" (aliases na, null, custom): nothing is evaluated while boosting.
NO_METRIC = "None"
OBJECTIVE_FOR_TASK = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}
OBJECTIVES_BY_TASK = {
    "binary": {"binary"},
    "multiclass": {"multiclass"},
    "regression": {"regression", "regression_l1", "huber", "poisson"},
}


@dataclass(frozen=True)
class TrainingSetup:
    task: str
    objective: str
    metric: ScoringMetric
    params: dict[str, Any]  # what lgb.train gets
    num_boost_round: int
    early_stopping_rounds: int
    # The undeclared LightGBM parameters among `params`. Which of them shape the binned Dataset is LightGBM's
    # business, so all of them are part of the Dataset's key (trials usually share them: no rebinning).
    lightgbm_extra: tuple[tuple[str, str], ...] = ()

    @property
    def dataset_key(self) -> tuple:
        """Everything that shapes the binned Dataset: equal keys may share one constructed Dataset."""
        return tuple((name, self.params[name]) for name in (*DATASET_LEVEL, "seed")) + self.lightgbm_extra

    @property
    def dataset_params(self) -> dict[str, Any]:
        return {name: value for name, value in self.dataset_key} | {"verbosity": -1, "feature_pre_filter": False}


def resolve_metric(name: str, task: str) -> ScoringMetric:
    metric = SCORING_METRICS[DEFAULT_METRIC[task] if name == "auto" else name]
    if task not in metric.tasks:
        fitting = [m.name for m in SCORING_METRICS.values() if task in m.tasks]
        raise UserInputError(
            f"hyperparameter metric={metric.name!r} does not apply to a {task} task; choose one of {', '.join(fitting)}"
        )
    return metric


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# Below this many cells (rows x features) a boosting round's parallel work is too small to pay for waking
# a second OpenMP thread at every barrier, and warmcv runs OpenMP passive (warmcv.openmp: spinning crawls on a
# busy machine). Measured on UCI Adult (48,842 x 14, 200 rounds, 73 leaves, 2 cores), the fit on all rows
# took 1.27 s on one thread, 4.48 s on two passive threads, and 0.82 s on two spinning threads on a quiet
# machine but 3.68 s with one core busy; one thread took 1.29 s there. At 200,000 x 40 two threads are faster.
# The threshold between those two measurements is an assumption.
SINGLE_THREAD_CELLS = 2_000_000


def fit_threads(rows: int, features: int) -> int:
    """Threads for one fit that has the machine to itself (the final model): one on small data, else all cores."""
    return 1 if rows * max(features, 1) < SINGLE_THREAD_CELLS else default_threads()


def training_setup(hps: Mapping[str, Any], manifest: Manifest, num_threads: int | None = None) -> TrainingSetup:
    """LightGBM parameters for this task. `num_threads` (from the runner) wins over the hyperparameter.

    `deterministic` and a fixed thread count make a fold's score reproducible; `feature_pre_filter`
    is off so a cached Dataset stays valid when min_data_in_leaf changes between trials.

    LightGBM evaluates its `metric` on every validation set at every round. Only early stopping reads
    those values, so with early stopping it gets the one metric it watches and without it "None" (no
    metric registered): the folds are scored once, after boosting, from the running predictions. Asking
    for AUC without early stopping made LightGBM sort the validation rows at every round for nothing
    (12-15 % of a 200-round fold on UCI Adult; bench/fold_time.py).
    """
    task = manifest.task
    objective = OBJECTIVE_FOR_TASK[task] if hps["objective"] == "auto" else hps["objective"]
    if objective not in OBJECTIVES_BY_TASK[task]:
        raise UserInputError(
            f"hyperparameter objective={objective!r} does not fit the prepared data's task {task}; "
            f"use auto or one of {', '.join(sorted(OBJECTIVES_BY_TASK[task]))}"
        )
    metric = resolve_metric(hps["metric"], task)
    threads = num_threads or hps["num_threads"] or default_threads()
    params: dict[str, Any] = {
        "objective": objective,
        "metric": metric.lightgbm_metric[task] if hps["early_stopping_rounds"] else NO_METRIC,
        "seed": hps["seed"],
        "num_threads": threads,
        "deterministic": True,
        "verbosity": -1,
        "feature_pre_filter": False,
    }
    if threads == 1:
        # LightGBM's own advice for few threads, and the same trees either way: measured 5-7 % faster on
        # 160k x 40 than the col-wise layout its start-up test picked, and that test (~0.1 s a booster) is skipped.
        params["force_row_wise"] = True
    params.update({k: v for k, v in hps.items() if k in LIGHTGBM_PARAMETER_NAMES})
    extra = dict(getattr(hps, "lightgbm_extra", {}))
    params.update(extra)
    if task == "multiclass":
        params["num_class"] = manifest.n_classes
    return TrainingSetup(task, objective, metric, params, hps["num_boost_round"], hps["early_stopping_rounds"],
                         tuple(sorted(extra.items())))
