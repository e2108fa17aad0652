"""One declaration of every hyperparameter and metric (see `catalog`), and what is derived from it."""

from warmcv.declarations.catalog import (
    DATASET_LEVEL,
    HYPERPARAMETERS,
    MAX_KEEP_ALIVE_SECONDS,
    TUNABLE,
    is_platform_key,
)
from warmcv.declarations.metrics import (
    COORDINATOR_METRICS,
    DEFAULT_METRIC,
    SCORING_METRICS,
    TRAINING_SCORE,
    VALIDATION_SCORE,
    WORKER_METRICS,
    LogMetric,
    ScoringMetric,
)
from warmcv.declarations.search_space import (
    SearchDimension,
    SearchSpace,
    build_search_space,
    default_search_space,
    metric_definitions,
    parse_override,
    sagemaker_parameter_ranges,
    static_hyperparameters,
    tuning_objective,
)
from warmcv.declarations.tuning import TUNING_FIXED, TUNING_SEARCHED
from warmcv.declarations.types import ALL_FOLDS, TuningRange
from warmcv.declarations.values import HyperparameterValues, parse_hyperparameters

__all__ = [
    "ALL_FOLDS", "COORDINATOR_METRICS", "DATASET_LEVEL", "DEFAULT_METRIC", "HYPERPARAMETERS",
    "MAX_KEEP_ALIVE_SECONDS", "SCORING_METRICS", "TRAINING_SCORE", "TUNABLE", "TUNING_FIXED", "TUNING_SEARCHED",
    "VALIDATION_SCORE",
    "WORKER_METRICS", "HyperparameterValues", "LogMetric", "ScoringMetric", "SearchDimension", "SearchSpace",
    "TuningRange", "build_search_space", "default_search_space", "is_platform_key", "metric_definitions",
    "parse_hyperparameters", "parse_override", "sagemaker_parameter_ranges", "static_hyperparameters",
    "tuning_objective",
]
