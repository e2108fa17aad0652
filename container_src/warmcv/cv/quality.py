"""A cross-validation result as SageMaker's model-quality statistics: what a registered model shows.

Standard library only: the pipeline's Lambda (`warmcv.launcher.handlers`, the tuner strategy) and the
driver (`warmcv.tuning.driver`) both write this document, so a model package carries the same metrics
whichever strategy found it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MODEL_QUALITY_KEYS = {"regression": "regression_metrics", "binary": "binary_classification_metrics",
                      "multiclass": "multiclass_classification_metrics"}
_REGRESSION_METRICS = {"rmse", "mae", "r2"}


def model_quality_statistics(summary: Mapping[str, Any], task: str) -> dict[str, Any]:
    """The CV result (a `CrossValidationSummary.to_dict()`) as model-quality statistics: value = the folds'
    mean, standard_deviation = their std."""
    metric = summary["metric"]
    if metric in _REGRESSION_METRICS:
        task = "regression"
    key = MODEL_QUALITY_KEYS.get(task, "classification_metrics")
    return {
        "version": 0.0,
        key: {metric: {"value": summary["validation_mean"], "standard_deviation": summary["validation_std"]}},
        "cross_validation": {k: summary.get(k) for k in (
            "metric", "direction", "n_folds", "validation_mean", "validation_std", "train_mean", "train_std",
            "recommended_num_boost_round", "hyperparameters")},
        "folds": [{k: f.get(k) for k in ("fold", "validation_score", "train_score", "best_iteration")}
                  for f in summary.get("folds", [])],
    }
