"""`warmcv.cross_validate`: one hyperparameter combination, K folds, the same folds `warmcv prepare` makes."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warmcv.cv import CrossValidationSummary
from warmcv.settings.choices import Splitter, Task

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class CrossValidationResult:
    """Scores in fold order; `mean` and `std` (population, ddof=0, like scikit-learn's cv_results_) of them."""

    metric: str
    direction: str  # Maximize or Minimize
    mean: float
    std: float
    scores: list[float]
    train_scores: list[float]
    best_iterations: list[int]
    summary: CrossValidationSummary
    # Every row predicted by the fold model that did not train on it (ID columns, target, fold, predictions),
    # in the data's row order; and each feature's gain and split count, mean and std across folds.
    oof_predictions: pd.DataFrame | None = field(default=None, repr=False)
    feature_importance: pd.DataFrame | None = field(default=None, repr=False)

    @classmethod
    def from_summary(cls, summary: CrossValidationSummary, oof_predictions: pd.DataFrame | None = None,
                     feature_importance: pd.DataFrame | None = None) -> CrossValidationResult:
        folds = sorted(summary.folds, key=lambda r: r.fold)
        return cls(summary.metric, summary.direction, summary.validation_mean, summary.validation_std,
                   [r.validation_score for r in folds], [r.train_score for r in folds],
                   [r.best_iteration for r in folds], summary, oof_predictions, feature_importance)

    def __repr__(self) -> str:
        return (f"CrossValidationResult({self.metric} {self.mean:.6f} +/- {self.std:.6f} over "
                f"{len(self.scores)} folds)")


def cross_validate(data: Any, target: str, *, params: Mapping[str, Any] | None = None, folds: int = 5,
                   task: Task = "auto", splitter: Splitter = "auto", group_column: str | None = None,
                   time_column: str | None = None, categorical: Sequence[str] | None = None,
                   drop: Sequence[str] = (), id_columns: Sequence[str] = (), split_seed: int = 0,
                   workers: int | None = None) -> CrossValidationResult:
    """Cross-validate one combination of LightGBM hyperparameters.

    `data` is a DataFrame or a CSV/Parquet path. The folds are those `warmcv prepare` makes (stratified
    and shuffled with seed 0 for classes, k-fold for regression, grouped or forward-in-time when asked).
    `params` override the declared defaults (`warmcv hyperparameters` lists them; no early stopping unless
    `early_stopping_rounds` is given) and may add any other LightGBM parameter under its name or an alias
    (checked by LightGBM), and nothing else changes, so the scores equal scikit-learn's
    `cross_val_score` of LGBMClassifier/LGBMRegressor with the same parameters on the same folds.
    Folds train in parallel in warm worker processes (`workers`, default one per core).
    """
    from warmcv.api.inputs import data_path
    from warmcv.api.tune import importance_frame
    from warmcv.cv import cross_validate as run_folds
    from warmcv.cv.importance import importance_summary
    from warmcv.cv.oof import oof_frame
    from warmcv.data.manifest import read_manifest
    from warmcv.data.prepare import prepare
    from warmcv.declarations import parse_hyperparameters
    from warmcv.model.params import default_threads
    from warmcv.runners.local import LocalFoldRunner
    from warmcv.runners.pool import WarmWorkerPool
    from warmcv.settings.run import PrepareOptions

    options = PrepareOptions(target=target, folds=folds, task=task, splitter=splitter, group_column=group_column,
                             time_column=time_column, categorical=tuple(categorical) if categorical else None,
                             drop=tuple(drop), id_columns=tuple(id_columns), seed=split_seed)
    hps = parse_hyperparameters({**(params or {}), "mode": "coordinator"})
    with tempfile.TemporaryDirectory(prefix="warmcv-cv-") as scratch:
        source = data_path(data, Path(scratch))
        prepared = Path(scratch) / "prepared"
        prepare(source, prepared, options)
        manifest = read_manifest(prepared)
        cores = default_threads()
        n_workers = min(workers or cores, manifest.n_folds)
        with WarmWorkerPool(workers=n_workers, threads=max(1, cores // n_workers),
                            dataset_dir=Path(scratch) / ".datasets") as pool:
            summary = run_folds(LocalFoldRunner(prepared, pool=pool), hps, manifest)
        oof = oof_frame(summary.folds, manifest, prepared)  # read before the scratch folder goes
    return CrossValidationResult.from_summary(summary, oof, importance_frame(importance_summary(summary.folds)))
