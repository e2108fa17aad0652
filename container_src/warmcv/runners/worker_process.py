"""The body of a warm worker process: LightGBM imported once, prepared data and fold Datasets cached.

This is the local counterpart of a warm-pooled SageMaker instance, and warmer: besides skipping the
start, it keeps the parsed data and every fold's binned Dataset in memory across trials.
"""

from __future__ import annotations

import logging
import os
import signal
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from warmcv.cv.folds import VALIDATION_PREDICTIONS
from warmcv.data.manifest import PreparedData, read_manifest
from warmcv.declarations import parse_hyperparameters
from warmcv.errors import UserInputError
from warmcv.model.dataset_store import DatasetStore
from warmcv.model.params import training_setup
from warmcv.model.training import DatasetCache, train_fold


@dataclass(frozen=True)
class WorkRequest:
    data_dir: str
    hyperparameters: dict[str, str]
    fold: int | str
    model_dir: str | None = None  # where to save the model, if it is wanted
    # Every metric of the task, or only the objective for a caller that reads nothing else (the local search).
    all_metrics: bool = True
    # Send back the validation rows' predictions (for out-of-fold predictions): one number per row and class.
    keep_predictions: bool = False


class WorkerState:
    """Caches that survive between tasks in one worker process."""

    def __init__(self, threads: int, max_datasets: int, dataset_dir: str | None = None):
        self.threads = threads
        self.data: dict[str, PreparedData] = {}
        self.datasets = DatasetCache(max_entries=max_datasets,
                                     store=DatasetStore(dataset_dir) if dataset_dir else None)

    def prepared(self, data_dir: str) -> PreparedData:
        # Keyed by the manifest's data hash too: re-preparing into the same folder must not serve stale rows.
        manifest = read_manifest(Path(data_dir))
        key = f"{data_dir}#{manifest.data_sha256}"
        if key not in self.data:
            self.data.clear()  # one data set at a time: a worker pool serves one run
            self.data[key] = PreparedData.load(data_dir)
        return self.data[key]

    def run(self, request: WorkRequest) -> dict[str, Any]:
        hps = parse_hyperparameters(request.hyperparameters)
        data = self.prepared(request.data_dir)
        setup = training_setup(hps, data.manifest, num_threads=self.threads)
        outcome = train_fold(data, setup, request.fold, cache=self.datasets,
                             all_metrics=request.all_metrics or bool(request.model_dir))
        if request.model_dir:
            from warmcv.cv import save_outcome

            save_outcome(Path(request.model_dir), outcome, hps, setup, data.manifest)
        summary = outcome.summary()
        summary["executor"] = f"pid {os.getpid()}"
        if request.keep_predictions and outcome.validation_prediction is not None:
            summary[VALIDATION_PREDICTIONS] = outcome.validation_prediction
        return summary


def worker_main(conn: Connection, threads: int, max_datasets: int, dataset_dir: str | None = None) -> None:
    """Serve requests from `conn` until it closes. Replies ('ok', summary) or ('error', kind, message)."""
    # Ctrl-C reaches the whole process group; the parent decides what to stop, so workers ignore it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING)
    state = WorkerState(threads, max_datasets, dataset_dir)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        reply: tuple[Any, ...]
        try:
            reply = ("ok", state.run(request))
        except UserInputError as error:
            reply = ("error", "user", str(error))
        except Exception as error:  # noqa: BLE001 - reported to the parent, which fails the trial
            reply = ("error", "internal", f"{type(error).__name__}: {error}\n{traceback.format_exc()}")
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return
