"""worker mode: train one fold (scoring its held-out rows) or the full prepared set, save it, log its scores."""

from __future__ import annotations

from warmcv.contract import ContainerPaths, data_channel
from warmcv.cv import train_and_save
from warmcv.data.manifest import PreparedData
from warmcv.declarations import HyperparameterValues
from warmcv.declarations.metrics import FOLD_TRAINING_SCORE, FOLD_VALIDATION_SCORE
from warmcv.model.training import FoldOutcome


def report(outcome: FoldOutcome) -> None:
    """The worker's metric lines (a fold job's metric definitions read them)."""
    print(FOLD_TRAINING_SCORE.line(outcome.train_score), flush=True)
    if outcome.validation_score is not None:
        print(FOLD_VALIDATION_SCORE.line(outcome.validation_score), flush=True)


def run_worker(paths: ContainerPaths, hps: HyperparameterValues) -> FoldOutcome:
    """worker mode inside a training job: the prepared data comes through the `train` channel."""
    data = PreparedData.load(data_channel(paths))
    outcome = train_and_save(data, hps, paths.model_dir, paths.output_data_dir)
    report(outcome)
    return outcome
