"""coordinator mode: cross-validate one hyperparameter combination over all folds and report the average.

Runner-agnostic: it hands the folds to a `FoldRunner`, so the same code averages folds trained in
local worker processes or in SageMaker training jobs. It prints exactly the lines the tuner's regex
metric definitions read, plus the standard deviations, and writes a per-fold summary.

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
from pathlib import Path

from warmcv.contract import ContainerPaths
from warmcv.cv import CrossValidationSummary, FoldResult, FoldRunner, FoldTask, cross_validate
from warmcv.data.manifest import Manifest
from warmcv.declarations import HyperparameterValues
from warmcv.declarations.metrics import (
    TRAINING_SCORE,
    TRAINING_SCORE_STD,
    VALIDATION_SCORE,
    VALIDATION_SCORE_STD,
)

log = logging.getLogger(__name__)
SUMMARY_FILE = "cv_summary.json"


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


def run_coordinator(paths: ContainerPaths, hps: HyperparameterValues, runner: FoldRunner,
                    manifest: Manifest) -> CrossValidationSummary:
    """The coordinator inside a training job: cross-validate, write the summary, log for the tuner."""
    if getattr(runner, "on_fold", False) is None:  # a runner that tells of each fold: intermediate values
        runner.on_fold = RunningMean(manifest.n_folds)  # type: ignore[attr-defined]
    summary = cross_validate(runner, hps, manifest)
    # In the model dir too, so the tuner's best job's model.tar.gz carries its CV result for the next step.
    write_summary(summary, paths.output_data_dir, paths.model_dir)
    report(summary)
    return summary
