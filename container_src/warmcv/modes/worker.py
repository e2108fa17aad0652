"""worker mode: train one fold (scoring its held-out rows) or the full prepared set, and save the model."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from warmcv.contract import ContainerPaths, data_channel
from warmcv.data.manifest import Manifest, PreparedData
from warmcv.declarations import ALL_FOLDS, HyperparameterValues
from warmcv.declarations.metrics import FOLD_TRAINING_SCORE, FOLD_VALIDATION_SCORE
from warmcv.errors import UserInputError
from warmcv.model.artifacts import ModelMetadata, save_model
from warmcv.model.params import TrainingSetup, training_setup
from warmcv.model.training import FoldOutcome, fold_label, train_fold

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.json"


def check_n_folds(hps: HyperparameterValues, manifest: Manifest) -> None:
    if hps["n_folds"] not in (0, manifest.n_folds):
        raise UserInputError(
            f"hyperparameter n_folds={hps['n_folds']} does not match the prepared data, which has "
            f"{manifest.n_folds} folds; leave n_folds unset (0) or prepare the data with {hps['n_folds']} folds"
        )


def save_outcome(model_dir: Path, outcome: FoldOutcome, hps: HyperparameterValues, setup: TrainingSetup,
                 manifest: Manifest, cross_validation: dict[str, Any] | None = None) -> ModelMetadata:
    metadata = ModelMetadata(
        task=setup.task, objective=setup.objective, metric=setup.metric.name, target=manifest.target,
        classes=manifest.classes, features=manifest.schema.to_list(), params=setup.params,
        hyperparameters=hps.to_strings(), fold=outcome.fold, best_iteration=outcome.best_iteration,
        train_metrics=outcome.train_metrics, validation_metrics=outcome.validation_metrics,
        data_sha256=manifest.data_sha256, cross_validation=cross_validation,
    )
    save_model(model_dir, outcome.booster, metadata)
    return metadata


def metrics_document(outcome: FoldOutcome, setup: TrainingSetup, hps: HyperparameterValues) -> dict[str, Any]:
    """What a fold job leaves in output/data/metrics.json: the coordinator reads its scores from here."""
    return {**outcome.summary(), "metric": setup.metric.name, "direction": setup.metric.direction,
            "hyperparameters": hps.to_strings()}


def train_and_save(data: PreparedData, hps: HyperparameterValues, model_dir: Path, output_data_dir: Path,
                   cross_validation: dict[str, Any] | None = None) -> FoldOutcome:
    """Train the fold (or full set) named by `hps`, log the worker's metric lines, write model and metrics."""
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
    print(FOLD_TRAINING_SCORE.line(outcome.train_score), flush=True)
    if outcome.validation_score is not None:
        print(FOLD_VALIDATION_SCORE.line(outcome.validation_score), flush=True)
    save_outcome(model_dir, outcome, hps, setup, data.manifest, cross_validation)
    output_data_dir.mkdir(parents=True, exist_ok=True)
    document = metrics_document(outcome, setup, hps)
    (output_data_dir / METRICS_FILE).write_text(json.dumps(document, indent=2, sort_keys=True))
    log.info("%s done in %.2f s: best iteration %d", fold_label(fold), outcome.seconds, outcome.best_iteration)
    return outcome


def run_worker(paths: ContainerPaths, hps: HyperparameterValues) -> FoldOutcome:
    """worker mode inside a training job: the prepared data comes through the `train` channel."""
    data = PreparedData.load(data_channel(paths))
    return train_and_save(data, hps, paths.model_dir, paths.output_data_dir)
