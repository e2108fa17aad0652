"""coordinator mode: cross-validate one hyperparameter combination over all folds and report the average.

Runner-agnostic: it hands the folds to a `FoldRunner`, so the same code averages folds trained in
local worker processes or in SageMaker training jobs. It prints exactly the lines the tuner's regex
metric definitions read, plus the standard deviations, and writes a per-fold summary.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from warmcv.contract import ContainerPaths
from warmcv.cv import CrossValidationSummary, FoldRunner, cross_validate
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
    """The coordinator inside a training job: cross-validate, log for the tuner, write the summary."""
    summary = cross_validate(runner, hps, manifest)
    report(summary)
    # In the model dir too, so the tuner's best job's model.tar.gz carries its CV result for the next step.
    write_summary(summary, paths.output_data_dir, paths.model_dir)
    return summary
