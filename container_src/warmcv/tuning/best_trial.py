"""What the run keeps of its best trial: out-of-fold predictions and fold feature importances.

Where they come from: each fold returns its validation rows' predictions (the running predictions it was
scored with) and its model's gain and split importances beside its scores, so a finished trial has them in
the search's main process without a second pass over the data.

What is stored, and why: every trial's predictions would cost rows x trials. A trial's are written to
`.best_trial/` only while it could still be the best: when it finishes as good as the best so far (ties
included) it is written, and the trials it beats are deleted. So the folder holds the best trial (and any
that tie it): rows x (1 + ties), a few bytes per row. It is written before the study records the trial as
complete, so a run killed at any moment never has a best trial whose predictions are missing (a file of a
trial the study never completed is removed once a better trial arrives, or at the end).

The alternative, keeping predictions in the worker processes until a trial is known to be the best, would
save one pipe transfer per fold (8 bytes per validation row and class), but a worker can crash or be
replaced, nothing records which worker trained which fold, and a resumed run's best trial may have been
run by an earlier process: the run folder is the one place all three survive.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from warmcv.cv import CrossValidationSummary
from warmcv.cv.importance import importance_summary
from warmcv.cv.oof import OOF_FILE, fold_predictions, read_prepared_columns, with_row_columns, write_parquet
from warmcv.data.manifest import FOLD_COLUMN, Manifest
from warmcv.files import write_text_atomic

log = logging.getLogger(__name__)

KEPT_DIR = ".best_trial"


@dataclass
class BestTrialOutputs:
    """What `BestTrialKeeper.finish` found for the best trial."""

    trial: int
    oof_path: Path | None
    oof_rows: int
    feature_importance: dict[str, Any] | None
    skipped: str | None  # why there are none

    def report(self) -> dict[str, Any]:
        return {"trial": self.trial, "path": str(self.oof_path) if self.oof_path else None, "rows": self.oof_rows,
                "skipped": self.skipped}


class BestTrialKeeper:
    """A search observer: keeps the predictions and importances of the trials that are (or tie) the best."""

    def __init__(self, run_dir: Path, manifest: Manifest, prepared_dir: Path, maximize: bool):
        self.run_dir = Path(run_dir)
        self.directory = self.run_dir / KEPT_DIR
        self.manifest = manifest
        self.prepared_dir = Path(prepared_dir)
        self.maximize = maximize
        self._folds: Any = None
        self.kept: dict[int, float] = {}
        for marker in sorted(self.directory.glob("trial-*.json")):  # left by the run being resumed
            try:
                self.kept[int(marker.stem.removeprefix("trial-"))] = float(json.loads(marker.read_text())["value"])
            except (ValueError, KeyError, OSError):
                log.warning("ignoring %s: not a kept trial", marker)

    def _paths(self, number: int) -> tuple[Path, Path]:
        stem = self.directory / f"trial-{number}"
        return stem.with_suffix(".parquet"), stem.with_suffix(".json")

    def _worse(self, value: float, than: float) -> bool:
        return value < than if self.maximize else value > than

    # -- the observer ---------------------------------------------------------------------------------------
    def trial_completed(self, trial: Any, summary: CrossValidationSummary, seconds: float) -> None:
        value = summary.validation_mean
        if not math.isfinite(value) or any(self._worse(value, kept) for kept in self.kept.values()):
            return
        if self._folds is None:
            self._folds = read_prepared_columns(self.prepared_dir, [FOLD_COLUMN])[FOLD_COLUMN].to_numpy()
        predictions = fold_predictions(summary.folds, self.manifest, self._folds)
        importance = importance_summary(summary.folds)
        self.directory.mkdir(parents=True, exist_ok=True)
        table, marker = self._paths(trial.number)
        if predictions is not None:
            write_parquet(predictions, table)
        write_text_atomic(marker, json.dumps({"value": value, "feature_importance": importance,
                                              "predictions": predictions is not None}))
        self.kept[trial.number] = value
        for number, kept in list(self.kept.items()):
            if self._worse(kept, value):
                self._drop(number)

    def trial_failed(self, trial: Any, error: str, seconds: float) -> None:
        """A failed trial has nothing to keep."""

    def trial_pruned(self, trial: Any, summary: CrossValidationSummary, decision: Any, seconds: float) -> None:
        """A pruned trial cannot be the best: it kept nothing."""

    def _drop(self, number: int) -> None:
        for path in self._paths(number):
            path.unlink(missing_ok=True)
        self.kept.pop(number, None)

    # -- the end --------------------------------------------------------------------------------------------
    def finish(self, best: int) -> BestTrialOutputs:
        """Write oof_predictions.parquet for the study's best trial (IDs, target, fold, predictions) and
        return its importances; drop what was kept for any other trial."""
        for number in list(self.kept):
            if number != best:
                self._drop(number)
        table, marker = self._paths(best)
        if not marker.is_file():
            return BestTrialOutputs(best, None, 0, None, f"trial #{best} kept no out-of-fold predictions or feature "
                                    "importances (it ran under a warmcv that did not keep them)")
        kept = json.loads(marker.read_text())
        importance = kept.get("feature_importance")
        if not table.is_file():
            return BestTrialOutputs(best, None, 0, importance, f"trial #{best}'s folds sent no predictions")
        frame = with_row_columns(pd.read_parquet(table), self.manifest, self.prepared_dir)
        path = self.run_dir / OOF_FILE
        write_parquet(frame, path)
        return BestTrialOutputs(best, path, len(frame), importance, None)

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
