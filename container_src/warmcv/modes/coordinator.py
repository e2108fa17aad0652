"""coordinator mode: cross-validate one hyperparameter combination over all folds and report the average.

Runner-agnostic: it hands the folds to a `FoldRunner`, so the same code averages folds trained in
local worker processes or in SageMaker training jobs. It prints exactly the lines the tuner's regex
metric definitions read, plus the standard deviations, and writes a per-fold summary, the trial's out-of-fold
predictions and fold feature importances, and (with MLflow configured) logs the trial as a nested run.

Intermediate objective values: with the SageMaker runner, after each of the first K - 1 folds to finish
the coordinator prints the running CV mean in the objective's own line, so the tuner's early stopping
(`Auto`: a trial worse than the median of earlier trials at the same step is stopped) and Hyperband (each
line one unit of resource; K lines in all, the last the final mean) can stop a hopeless trial. "All
metrics that correspond to an objective metric are used to derive early stopping decisions"
(HyperbandStrategyConfig, API reference). A trial stopped that way gets SIGTERM and stops its folds.
The summary is written before the final lines, so a trial stopped right at its last line keeps it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from warmcv.contract import ContainerPaths
from warmcv.cv import CrossValidationSummary, FoldResult, FoldRunner, FoldTask, cross_validate
from warmcv.cv.importance import importance_summary
from warmcv.cv.oof import OOF_FILE, oof_frame, write_parquet
from warmcv.data.manifest import Manifest
from warmcv.declarations import HyperparameterValues
from warmcv.declarations.metrics import (
    TRAINING_SCORE,
    TRAINING_SCORE_STD,
    VALIDATION_SCORE,
    VALIDATION_SCORE_STD,
)
from warmcv.files import write_text_atomic

log = logging.getLogger(__name__)
SUMMARY_FILE = "cv_summary.json"
IMPORTANCE_FILE = "feature_importance.json"


def metric_lines(summary: CrossValidationSummary) -> list[str]:
    """The lines the tuner reads (training first, then the objective), then the spreads."""
    return [TRAINING_SCORE.line(summary.train_mean), VALIDATION_SCORE.line(summary.validation_mean),
            TRAINING_SCORE_STD.line(summary.train_std), VALIDATION_SCORE_STD.line(summary.validation_std)]


class RunningMean:
    """`on_fold` of the coordinator's runner: the objective's line with the mean of the folds finished so far,
    after each but the last (the final report prints that one)."""

    def __init__(self, n_folds: int):
        self.n_folds = n_folds
        self.scores: list[float] = []

    def __call__(self, result: FoldResult, task: FoldTask) -> None:
        self.scores.append(result.validation_score)
        if len(self.scores) < self.n_folds:
            print(VALIDATION_SCORE.line(sum(self.scores) / len(self.scores)), flush=True)
            log.info("running CV mean after %d of %d folds: %.6f", len(self.scores), self.n_folds,
                     sum(self.scores) / len(self.scores))


def write_summary(summary: CrossValidationSummary, *directories: Path) -> None:
    text = json.dumps(summary.to_dict(), indent=2, sort_keys=True)
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SUMMARY_FILE).write_text(text)


def report(summary: CrossValidationSummary) -> None:
    for line in metric_lines(summary):
        print(line, flush=True)
    log.info("cross-validated %s: %.6f +/- %.6f over %d folds in %.1f s on %s", summary.metric,
             summary.validation_mean, summary.validation_std, summary.n_folds, summary.seconds, summary.runner)


def write_trial_outputs(summary: CrossValidationSummary, manifest: Manifest, data_dir: Path, directory: Path) -> None:
    """The trial's out-of-fold predictions and fold feature importances, so the tuner's best job carries them
    (in its output.tar.gz). Folds of an image that sends no predictions leave the trial without them."""
    frame = oof_frame(summary.folds, manifest, data_dir)
    if frame is None:
        log.warning("a fold sent no validation predictions (a fold job of an older image?): no %s", OOF_FILE)
    else:
        write_parquet(frame, directory / OOF_FILE)
    importance = importance_summary(summary.folds)
    if importance is not None:
        write_text_atomic(directory / IMPORTANCE_FILE, json.dumps(importance, indent=2))


def track(summary: CrossValidationSummary, hps: HyperparameterValues, started_ms: int) -> None:
    """Log the trial to MLflow when the job's environment names a tracking server (the launcher's [mlflow]).
    A tracking failure is a warning: the trial's score is already in the log for the tuner."""
    try:
        from warmcv.tracking.sagemaker import log_coordinator_trial

        log_coordinator_trial(summary, summary.hyperparameters or hps.to_strings(), started_ms)
    except Exception as error:  # noqa: BLE001 - the tuner reads the score from the log; MLflow is a copy
        log.warning("MLflow: could not log this trial (%s: %s)", type(error).__name__, error)


def run_coordinator(paths: ContainerPaths, hps: HyperparameterValues, runner: FoldRunner,
                    manifest: Manifest, data_dir: Path | None = None) -> CrossValidationSummary:
    """The coordinator inside a training job: cross-validate, log for the tuner, write the summary, the
    out-of-fold predictions and importances (with the prepared data at `data_dir`), and track the trial."""
    started_ms = int(time.time() * 1000)
    if getattr(runner, "on_fold", False) is None:  # a runner that tells of each fold: intermediate values
        runner.on_fold = RunningMean(manifest.n_folds)  # type: ignore[attr-defined]
    summary = cross_validate(runner, hps, manifest)
    # In the model dir too, so the tuner's best job's model.tar.gz carries its CV result for the next step.
    write_summary(summary, paths.output_data_dir, paths.model_dir)
    if data_dir is not None:
        write_trial_outputs(summary, manifest, data_dir, paths.output_data_dir)
    track(summary, hps, started_ms)
    report(summary)
    return summary
