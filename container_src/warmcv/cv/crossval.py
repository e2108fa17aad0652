"""Cross-validate one hyperparameter combination on a fold runner, and the rule for the final fit."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from warmcv.clock import SYSTEM_CLOCK, Clock
from warmcv.cv.folds import FoldResult, FoldTask
from warmcv.cv.pruning import StagedFolds, TrialPruned
from warmcv.cv.runner import FoldRunner
from warmcv.cv.summary import CrossValidationSummary
from warmcv.data.manifest import Manifest
from warmcv.declarations import HyperparameterValues, ScoringMetric, parse_hyperparameters
from warmcv.errors import UserInputError
from warmcv.model.params import training_setup

log = logging.getLogger(__name__)

# Hyperparameters a cross-validation does not forward to its folds (the runner sets them per fold).
NOT_FORWARDED = frozenset({"mode", "fold"})


def check_n_folds(hps: HyperparameterValues, manifest: Manifest) -> None:
    """n_folds is a promise about the prepared data: 0 (whatever it has) or exactly its fold count."""
    if hps["n_folds"] not in (0, manifest.n_folds):
        raise UserInputError(
            f"hyperparameter n_folds={hps['n_folds']} does not match the prepared data, which has "
            f"{manifest.n_folds} folds; leave n_folds unset (0) or prepare the data with {hps['n_folds']} folds"
        )


def forwarded_hyperparameters(hps: HyperparameterValues) -> dict[str, str]:
    """The combination as a fold receives it: explicit values as strings, without mode and fold."""
    return {k: v for k, v in hps.to_strings().items() if k not in NOT_FORWARDED}


def fold_tasks(hps: HyperparameterValues, manifest: Manifest) -> list[FoldTask]:
    forwarded = forwarded_hyperparameters(hps)
    return [FoldTask(fold, forwarded) for fold in range(manifest.n_folds)]


def cross_validate(runner: FoldRunner, hps: HyperparameterValues, manifest: Manifest,
                   clock: Clock = SYSTEM_CLOCK, staged: StagedFolds | None = None) -> CrossValidationSummary:
    """Run every fold on `runner`; on any failure or stop, stop the folds still running, then re-raise.

    `clock` is the runner's: a simulation reports the trial's simulated seconds, not the real ones.
    With `staged`, the folds go to the runner stage by stage (one `run` call each) and `staged.check`
    decides after each stage but the last whether to go on; a pruned trial raises `TrialPruned` with
    the summary of the folds it ran, and its later folds are never handed out.
    """
    check_n_folds(hps, manifest)
    setup = training_setup(hps, manifest)  # validates objective and metric against the task before any fold starts
    tasks = fold_tasks(hps, manifest)
    started = clock.monotonic()
    if staged is not None and sorted(staged.order) != list(range(len(tasks))):
        raise ValueError(f"staged folds must name each of the {len(tasks)} folds once, got {list(staged.order)}")
    stages = [tasks] if staged is None else [[tasks[f] for f in stage] for stage in staged.stages()]
    results: list[FoldResult] = []
    for number, stage in enumerate(stages):
        try:
            results.extend(runner.run(stage))
        except BaseException:
            runner.stop()
            raise
        if staged is not None and number < len(stages) - 1:
            decision = staged.check(staged.scores(results))
            log.info("%s after %d of %d folds (%s): %s", "pruned" if decision.prune else "going on", len(results),
                     len(tasks), decision.rule, decision.reason)
            if decision.prune:
                raise TrialPruned(_summary(runner, results, setup.metric, hps, clock.monotonic() - started), decision)
    summary = _summary(runner, results, setup.metric, hps, clock.monotonic() - started)
    for result in summary.folds:
        log.info("fold %d: validation %s %.6f, train %.6f, best iteration %d, %.2f s (%s)", result.fold,
                 summary.metric, result.validation_score, result.train_score, result.best_iteration, result.seconds,
                 result.executor or runner.name)
    if not all(math.isfinite(r.validation_score) for r in results):
        log.warning("a fold's validation score is not finite; the average is not meaningful")
    return summary


def _summary(runner: FoldRunner, results: list[FoldResult], metric: ScoringMetric, hps: HyperparameterValues,
             seconds: float) -> CrossValidationSummary:
    """The summary of the folds run, in fold order (stages may have run them in another)."""
    ordered = sorted(results, key=lambda r: r.fold)
    return CrossValidationSummary.from_results(ordered, metric.name, metric.direction, runner.describe(), seconds,
                                               forwarded_hyperparameters(hps))


def final_fit_hyperparameters(trial: Mapping[str, str], summary: CrossValidationSummary) -> dict[str, str]:
    """Worker hyperparameters that train the final model on all data with a cross-validated combination.

    With early stopping each fold picked its own round count on its held-out rows; the full set has
    none to stop on, so it trains for the folds' mean best iteration (what lightgbm.cv users take).
    """
    final = {k: v for k, v in trial.items() if k not in NOT_FORWARDED}
    final.update(mode="worker", fold="all")
    if parse_hyperparameters(final)["early_stopping_rounds"]:
        final["num_boost_round"] = str(summary.recommended_num_boost_round)
    return final
