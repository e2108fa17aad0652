"""The cross-validation core: one hyperparameter combination, K folds, one summary.

Everything here is independent of where folds run and of who reads the result: a fold runner (warm
local processes, SageMaker training jobs, a simulation) trains the folds, `cross_validate` collects
them into a `CrossValidationSummary`, and `final_fit_hyperparameters` turns a winning combination
into the hyperparameters of the final model. `StagedFolds` and `FoldPruner` (warmcv.cv.pruning) let a
cross-validation hand its folds out in stages and stop once a trial cannot beat the best. Nothing here
prints SageMaker's metric lines: that is the job of the container modes (`warmcv.modes`), the only code
that talks to a tuner's log regexes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Lazy, so that code needing only the data types (the SageMaker runner, the planner) does not import
# LightGBM and pandas through this package.
_EXPORTS = {
    "METRICS_FILE": "folds", "FoldResult": "folds", "FoldTask": "folds",
    "FoldRunner": "runner",
    "CrossValidationSummary": "summary",
    "NOT_FORWARDED": "crossval", "check_n_folds": "crossval", "cross_validate": "crossval",
    "final_fit_hyperparameters": "crossval", "fold_tasks": "crossval",
    "FoldPruner": "pruning", "PairedBoundRule": "pruning", "PruningDecision": "pruning", "StagedFolds": "pruning",
    "TrialPruned": "pruning", "WilcoxonRule": "pruning", "rotated_order": "pruning",
    "metrics_document": "fold_outputs", "save_outcome": "fold_outputs", "train_and_save": "fold_outputs",
}
__all__ = [
    "METRICS_FILE", "NOT_FORWARDED", "CrossValidationSummary", "FoldPruner", "FoldResult", "FoldRunner", "FoldTask",
    "PairedBoundRule", "PruningDecision", "StagedFolds", "TrialPruned", "WilcoxonRule", "check_n_folds",
    "cross_validate", "final_fit_hyperparameters", "fold_tasks", "metrics_document", "rotated_order",
    "save_outcome", "train_and_save",
]

if TYPE_CHECKING:
    from warmcv.cv.crossval import NOT_FORWARDED, check_n_folds, cross_validate, final_fit_hyperparameters, fold_tasks
    from warmcv.cv.fold_outputs import metrics_document, save_outcome, train_and_save
    from warmcv.cv.folds import METRICS_FILE, FoldResult, FoldTask
    from warmcv.cv.pruning import (
        FoldPruner,
        PairedBoundRule,
        PruningDecision,
        StagedFolds,
        TrialPruned,
        WilcoxonRule,
        rotated_order,
    )
    from warmcv.cv.runner import FoldRunner
    from warmcv.cv.summary import CrossValidationSummary


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'warmcv.cv' has no attribute {name!r}")
    return getattr(importlib.import_module(f"warmcv.cv.{module}"), name)
