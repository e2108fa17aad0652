"""The result of cross-validating one combination: per-fold scores, their mean and spread, and the
round count for the final fit. One serialisation (`to_dict` / `from_dict`) serves the study's trial
attributes, report.json, cv_summary.json in a coordinator's output and the final model's metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from warmcv.cv.folds import FoldResult


@dataclass
class CrossValidationSummary:
    metric: str
    direction: str
    n_folds: int
    validation_mean: float
    validation_std: float
    train_mean: float
    train_std: float
    best_iteration_mean: float
    # Rounds for the final fit on all data: the folds' mean best iteration (what lightgbm.cv users take).
    recommended_num_boost_round: int
    folds: list[FoldResult]
    runner: str
    seconds: float
    hyperparameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_results(cls, results: Sequence[FoldResult], metric: str, direction: str, runner: str,
                     seconds: float, hyperparameters: Mapping[str, str]) -> CrossValidationSummary:
        validation = np.array([r.validation_score for r in results], dtype=np.float64)
        train = np.array([r.train_score for r in results], dtype=np.float64)
        iterations = np.array([r.best_iteration for r in results], dtype=np.float64)
        # Population standard deviation (ddof=0), the same convention as scikit-learn's cv_results_.
        return cls(metric, direction, len(results), float(validation.mean()), float(validation.std()),
                   float(train.mean()), float(train.std()), float(iterations.mean()),
                   max(1, int(round(iterations.mean()))), list(results), runner, seconds, dict(hyperparameters))

    @property
    def constant_model(self) -> bool | None:
        """Every fold trained a constant model (no split in any tree), so the score says nothing about the
        features; None when the folds did not count their splits (results from before warmcv did)."""
        counts = [r.splits for r in self.folds]
        if not counts or any(c is None for c in counts):
            return None
        return all(c == 0 for c in counts)

    @property
    def fold_scores(self) -> list[float]:
        """Validation scores in fold order."""
        return [r.validation_score for r in sorted(self.folds, key=lambda r: r.fold)]

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "folds"}
        data["folds"] = [r.to_dict() for r in self.folds]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CrossValidationSummary:
        """The inverse of `to_dict`; also reads the trial attribute of warmcv 0.1.0's studies."""
        if "validation_mean" not in data:
            data = _from_0_1(data)
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["folds"] = [FoldResult.from_dict(f) for f in data["folds"]]
        values["hyperparameters"] = dict(data.get("hyperparameters", {}))
        return cls(**values)


def _from_0_1(data: Mapping[str, Any]) -> dict[str, Any]:
    """warmcv 0.1.0 kept its own short form in a study ("mean", "std", folds' "validation"/"train"), so
    that a run folder made by it can still be resumed and reported."""
    return {"metric": "", "direction": "", "n_folds": len(data["folds"]), "validation_mean": data["mean"],
            "validation_std": data["std"], "train_mean": data["train_mean"], "train_std": data["train_std"],
            "best_iteration_mean": data["best_iteration_mean"],
            "recommended_num_boost_round": data["recommended_num_boost_round"], "runner": "local",
            "seconds": data["seconds"],
            "folds": [{"fold": f["fold"], "train_score": f["train"], "validation_score": f["validation"],
                       "best_iteration": f["best_iteration"], "n_train": f["n_train"], "n_valid": f["n_valid"],
                       "seconds": f["seconds"]} for f in data["folds"]]}
