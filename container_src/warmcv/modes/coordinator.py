"""coordinator mode: cross-validate one hyperparameter combination over all folds and report the average.

Runner-agnostic: it hands the folds to a `FoldRunner`, so the same code averages folds trained in
local worker processes or in SageMaker training jobs. It logs exactly the lines the tuner's regex
metric definitions read, plus the standard deviation, and writes a per-fold summary.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from warmcv.clock import SYSTEM_CLOCK, Clock
from warmcv.contract import ContainerPaths
from warmcv.data.manifest import Manifest
from warmcv.declarations import HyperparameterValues, parse_hyperparameters
from warmcv.declarations.metrics import (
    TRAINING_SCORE,
    TRAINING_SCORE_STD,
    VALIDATION_SCORE,
    VALIDATION_SCORE_STD,
)
from warmcv.model.params import training_setup
from warmcv.runners.base import FoldResult, FoldRunner, FoldTask

log = logging.getLogger(__name__)
SUMMARY_FILE = "cv_summary.json"
# Hyperparameters a coordinator does not forward to its folds (the runner sets them per fold).
_NOT_FORWARDED = {"mode", "fold"}


@dataclass
class CrossValidationSummary:
    metric: str
    direction: str
    n_folds: int
    validation_mean: float
    validation_std: float
    train_mean: float
    train_std: float
    best_iteration_mean: float
    # Rounds for the final fit on all data: the folds' mean best iteration (what lightgbm.cv users take).
    recommended_num_boost_round: int
    folds: list[FoldResult]
    runner: str
    seconds: float
    hyperparameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_results(cls, results: Sequence[FoldResult], metric: str, direction: str, runner: str,
                     seconds: float, hyperparameters: dict[str, str]) -> CrossValidationSummary:
        validation = np.array([r.validation_score for r in results], dtype=np.float64)
        train = np.array([r.train_score for r in results], dtype=np.float64)
        iterations = np.array([r.best_iteration for r in results], dtype=np.float64)
        # Population standard deviation (ddof=0), the same convention as scikit-learn's cv_results_.
        return cls(metric, direction, len(results), float(validation.mean()), float(validation.std()),
                   float(train.mean()), float(train.std()), float(iterations.mean()),
                   max(1, int(round(iterations.mean()))), list(results), runner, seconds, hyperparameters)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "folds"}
        data["folds"] = [r.to_dict() for r in self.folds]
        return data

    def log_lines(self) -> list[str]:
        """The lines the tuner reads (training first, then the objective), then the spreads."""
        return [TRAINING_SCORE.line(self.train_mean), VALIDATION_SCORE.line(self.validation_mean),
                TRAINING_SCORE_STD.line(self.train_std), VALIDATION_SCORE_STD.line(self.validation_std)]


def fold_tasks(hps: HyperparameterValues, manifest: Manifest) -> list[FoldTask]:
    forwarded = {k: v for k, v in hps.to_strings().items() if k not in _NOT_FORWARDED}
    return [FoldTask(fold, forwarded) for fold in range(manifest.n_folds)]


def cross_validate(runner: FoldRunner, hps: HyperparameterValues, manifest: Manifest,
                   clock: Clock = SYSTEM_CLOCK) -> CrossValidationSummary:
    """Run every fold on `runner`; on any failure or stop, stop the folds still running, then re-raise.

    `clock` is the runner's: a simulation reports the trial's simulated seconds, not the real ones."""
    setup = training_setup(hps, manifest)  # validates objective and metric against the task before any fold starts
    tasks = fold_tasks(hps, manifest)
    started = clock.monotonic()
    try:
        results = runner.run(tasks)
    except BaseException:
        runner.stop()
        raise
    summary = CrossValidationSummary.from_results(
        results, setup.metric.name, setup.metric.direction, runner.describe(), clock.monotonic() - started,
        {k: v for k, v in hps.to_strings().items() if k not in _NOT_FORWARDED},
    )
    for result in summary.folds:
        log.info("fold %d: validation %s %.6f, train %.6f, best iteration %d, %.2f s (%s)", result.fold,
                 summary.metric, result.validation_score, result.train_score, result.best_iteration, result.seconds,
                 result.executor or runner.name)
    if not all(math.isfinite(r.validation_score) for r in results):
        log.warning("a fold's validation score is not finite; the average is not meaningful")
    return summary


def final_fit_hyperparameters(trial: Mapping[str, str], summary: CrossValidationSummary) -> dict[str, str]:
    """Worker hyperparameters that train the final model on all data with a cross-validated combination.

    With early stopping each fold picked its own round count on its held-out rows; the full set has
    none to stop on, so it trains for the folds' mean best iteration (what lightgbm.cv users take).
    """
    final = {k: v for k, v in trial.items() if k not in _NOT_FORWARDED}
    final.update(mode="worker", fold="all")
    if parse_hyperparameters(final)["early_stopping_rounds"]:
        final["num_boost_round"] = str(summary.recommended_num_boost_round)
    return final


def write_summary(summary: CrossValidationSummary, *directories: Path) -> None:
    text = json.dumps(summary.to_dict(), indent=2, sort_keys=True)
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SUMMARY_FILE).write_text(text)


def report(summary: CrossValidationSummary) -> None:
    for line in summary.log_lines():
        print(line, flush=True)
    log.info("cross-validated %s: %.6f +/- %.6f over %d folds in %.1f s on %s", summary.metric,
             summary.validation_mean, summary.validation_std, summary.n_folds, summary.seconds, summary.runner)


def run_coordinator(paths: ContainerPaths, hps: HyperparameterValues, runner: FoldRunner,
                    manifest: Manifest) -> CrossValidationSummary:
    """The coordinator inside a training job: cross-validate, log for the tuner, write the summary."""
    summary = cross_validate(runner, hps, manifest)
    report(summary)
    # In the model dir too, so the tuner's best job's model.tar.gz carries its CV result for the next step.
    write_summary(summary, paths.output_data_dir, paths.model_dir)
    return summary
