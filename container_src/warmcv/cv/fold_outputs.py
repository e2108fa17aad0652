"""What training a fold (or the full set) leaves behind: the model directory and metrics.json.

A fold job's metrics.json (in its output.tar.gz) is how a SageMaker coordinator reads the fold's exact
scores, and a local worker saves the same model directory, so both live here, below every runner.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from warmcv.cv.crossval import check_n_folds
from warmcv.cv.folds import METRICS_FILE, PREDICTIONS_FILE
from warmcv.data.manifest import Manifest, PreparedData
from warmcv.declarations import ALL_FOLDS, HyperparameterValues
from warmcv.files import atomic_path, write_text_atomic
from warmcv.model.artifacts import ModelMetadata, save_model
from warmcv.model.params import TrainingSetup, training_setup
from warmcv.model.training import FoldOutcome, fold_label, train_fold

log = logging.getLogger(__name__)


def save_outcome(model_dir: Path, outcome: FoldOutcome, hps: HyperparameterValues, setup: TrainingSetup,
                 manifest: Manifest, cross_validation: dict[str, Any] | None = None) -> ModelMetadata:
    metadata = ModelMetadata(
        task=setup.task, objective=setup.objective, metric=setup.metric.name, target=manifest.target,
        classes=manifest.classes, features=manifest.schema.to_list(), params=setup.params,
        hyperparameters=hps.to_strings(), fold=outcome.fold, best_iteration=outcome.best_iteration,
        train_metrics=outcome.train_metrics, validation_metrics=outcome.validation_metrics,
        data_sha256=manifest.data_sha256, cross_validation=cross_validation, id_columns=list(manifest.id_columns),
    )
    save_model(model_dir, outcome.booster, metadata)
    return metadata


def metrics_document(outcome: FoldOutcome, setup: TrainingSetup, hps: HyperparameterValues) -> dict[str, Any]:
    """What a fold job leaves in output/data/metrics.json: the coordinator reads its scores from here."""
    return {**outcome.summary(), "metric": setup.metric.name, "direction": setup.metric.direction,
            "hyperparameters": hps.to_strings()}


def train_and_save(data: PreparedData, hps: HyperparameterValues, model_dir: Path, output_data_dir: Path,
                   cross_validation: dict[str, Any] | None = None) -> FoldOutcome:
    """Train the fold (or full set) named by `hps`, then write the model and metrics.json."""
    check_n_folds(hps, data.manifest)
    fold = hps["fold"]
    data.manifest.check_fold(fold)
    setup = training_setup(hps, data.manifest)
    if fold == ALL_FOLDS and setup.early_stopping_rounds:
        log.info("early stopping needs a validation fold: training the full set for num_boost_round=%d rounds",
                 setup.num_boost_round)
    log.info("training %s: %d rows, objective %s, metric %s, %d threads", fold_label(fold),
             data.manifest.rows, setup.objective, setup.metric.name, setup.params["num_threads"])
    outcome = train_fold(data, setup, fold)
    save_outcome(model_dir, outcome, hps, setup, data.manifest, cross_validation)
    output_data_dir.mkdir(parents=True, exist_ok=True)
    document = json.dumps(metrics_document(outcome, setup, hps), indent=2, sort_keys=True)
    if outcome.validation_prediction is not None:
        # The fold's out-of-fold predictions, for the coordinator (written before metrics.json, which marks the
        # output complete).
        with atomic_path(output_data_dir / PREDICTIONS_FILE) as tmp, tmp.open("wb") as handle:
            np.save(handle, np.asarray(outcome.validation_prediction, dtype=np.float64), allow_pickle=False)
    write_text_atomic(output_data_dir / METRICS_FILE, document)
    log.info("%s done in %.2f s: best iteration %d", fold_label(fold), outcome.seconds, outcome.best_iteration)
    return outcome
