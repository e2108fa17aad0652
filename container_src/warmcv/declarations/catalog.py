"""Every hyperparameter warmcv accepts, declared once.

LightGBM tunables carry a default tuning range chosen from LightGBM's own parameter-tuning guide;
control hyperparameters steer the modes. The container, the SageMaker launcher and the local tuner
all read this table; nothing else in the code base lists hyperparameter names or ranges.

Every integer has a declared upper bound that LightGBM accepts. The source is LightGBM's parameter
reference (docs/Parameters.rst, https://lightgbm.readthedocs.io/en/latest/Parameters.html): it gives each
parameter's `type` and `constraints`, e.g. `num_leaves`: "type = int, constraints: 1 < num_leaves <= 131072";
`min_data_in_leaf`: "type = int, constraints: min_data_in_leaf >= 0"; `bagging_freq`: "type = int", "0 means
disable bagging"; `max_depth`: "type = int", "<= 0 means no limit"; `max_bin`: "type = int, constraints:
max_bin > 1"; `num_iterations`: "type = int, constraints: num_iterations >= 0". `type = int` is a C++ int
(32 bits): where the reference gives no maximum, INT32_MAX is the largest value LightGBM keeps. Past it the
value wraps (checked with lightgbm 4.7: bagging_freq=3000000000 trained as -1294967296, bagging off;
max_depth=2147483648 as -2147483648, no limit) or fails LightGBM's own check with a traceback
(min_data_in_leaf=2147483648: "Check failed: (min_data_in_leaf) >= (0)"). tests/unit/test_declarations.py
trains with every LightGBM integer at its declared maximum and reads the value back from the model.
"""

from __future__ import annotations

from warmcv.declarations.metrics import SCORING_METRICS
from warmcv.declarations.types import (
    ALL_FOLDS,
    BooleanHyperparameter,
    CategoricalHyperparameter,
    ContinuousHyperparameter,
    FoldHyperparameter,
    Hyperparameter,
    IntegerHyperparameter,
    Interval,
    TextHyperparameter,
    TuningRange,
)
from warmcv.training_service.rules import MAX_KEEP_ALIVE_SECONDS  # AWS's documented limit, re-exported

# LightGBM's `type = int` parameters are 32-bit C++ ints (see the module docstring).
INT32_MAX = 2**31 - 1
# The most folds `warmcv prepare` writes; n_folds and fold indices are bounded by it (warmcv.settings too).
MAX_FOLDS = 100

LIGHTGBM_HYPERPARAMETERS: tuple[Hyperparameter, ...] = (
    IntegerHyperparameter(
        name="num_leaves", help="maximum leaves per tree; the main lever on model complexity",
        default=31, valid=Interval(2, 131072), tuning=TuningRange(8, 256, "Logarithmic"), lightgbm=True),
    ContinuousHyperparameter(
        name="learning_rate", help="shrinkage applied to each tree",
        default=0.1, valid=Interval(0, 1, low_open=True), tuning=TuningRange(0.005, 0.3, "Logarithmic"),
        lightgbm=True),
    IntegerHyperparameter(
        name="min_data_in_leaf", help="minimum rows in a leaf; guards against overfitting small leaves",
        default=20, valid=Interval(0, INT32_MAX), tuning=TuningRange(5, 200, "Logarithmic"), lightgbm=True),
    ContinuousHyperparameter(
        name="feature_fraction", help="share of features sampled for each tree",
        default=1.0, valid=Interval(0, 1, low_open=True), tuning=TuningRange(0.4, 1.0, "Linear"), lightgbm=True),
    ContinuousHyperparameter(
        name="bagging_fraction", help="share of rows sampled every bagging_freq iterations",
        default=1.0, valid=Interval(0, 1, low_open=True), tuning=TuningRange(0.4, 1.0, "Linear"), lightgbm=True),
    IntegerHyperparameter(
        name="bagging_freq", help="resample rows every this many iterations (0: no bagging)",
        default=0, valid=Interval(0, INT32_MAX), tuning=TuningRange(0, 10, "Linear"), lightgbm=True),
    ContinuousHyperparameter(
        name="lambda_l1", help="L1 regularisation of leaf values",
        default=0.0, valid=Interval(0, None), tuning=TuningRange(1e-8, 10.0, "Logarithmic"), lightgbm=True),
    ContinuousHyperparameter(
        name="lambda_l2", help="L2 regularisation of leaf values",
        default=0.0, valid=Interval(0, None), tuning=TuningRange(1e-8, 10.0, "Logarithmic"), lightgbm=True),
    IntegerHyperparameter(
        name="max_depth", help="maximum tree depth (-1: unlimited, num_leaves decides)",
        default=-1, valid=Interval(-1, INT32_MAX), tuning=TuningRange(3, 12, "Linear"), lightgbm=True),
    ContinuousHyperparameter(
        name="min_gain_to_split", help="minimum loss reduction to make a split",
        default=0.0, valid=Interval(0, None), tuning=TuningRange(0.0, 1.0, "Linear"), lightgbm=True),
    IntegerHyperparameter(
        name="max_bin",
        help="maximum histogram bins per feature; tuned over a few values because each value needs its own "
             "binned copy of the data",
        default=255, valid=Interval(2, 65535), tuning_choices=(63, 127, 255, 511), lightgbm=True,
        dataset_level=True),
    IntegerHyperparameter(
        name="num_boost_round", help="boosting iterations (the upper bound when early stopping is on)",
        default=100, valid=Interval(1, 100000), tuning=TuningRange(50, 2000, "Logarithmic")),
    IntegerHyperparameter(
        name="early_stopping_rounds",
        help="stop a fold when its validation metric has not improved for this many rounds (0: off)",
        default=0, valid=Interval(0, 100000), tuning=None),
)

CONTROL_HYPERPARAMETERS: tuple[Hyperparameter, ...] = (
    CategoricalHyperparameter(
        name="mode", help="coordinator: cross-validate over all folds; worker: train one fold or the full set; "
                          "driver: run a whole search, every trial's folds as fold jobs on warm pools",
        default="worker", choices=("coordinator", "worker", "driver")),
    FoldHyperparameter(
        name="fold", help="worker only: the fold to hold out, or 'all' to train on the full prepared set",
        default=ALL_FOLDS, max_index=MAX_FOLDS - 1),
    IntegerHyperparameter(
        name="n_folds", help="number of folds; 0 takes it from the prepared data, any other value must match it",
        default=0, valid=Interval(0, MAX_FOLDS)),
    CategoricalHyperparameter(
        name="objective",
        help="LightGBM objective; auto picks binary, multiclass or regression from the prepared data's task",
        default="auto",
        choices=("auto", "binary", "multiclass", "regression", "regression_l1", "huber", "poisson")),
    CategoricalHyperparameter(
        name="metric", help="the score to report and optimise; auto: auc (binary), logloss (multiclass), rmse",
        default="auto", choices=("auto", *SCORING_METRICS)),
    IntegerHyperparameter(
        name="seed", help="seed of LightGBM's sampling (bagging, feature fraction)",
        default=0, valid=Interval(0, INT32_MAX)),
    IntegerHyperparameter(
        name="num_threads", help="LightGBM threads per fold (0: all cores, shared fairly between parallel folds)",
        default=0, valid=Interval(0, 1024)),
    CategoricalHyperparameter(
        name="fold_runner",
        help="where the coordinator trains its folds: sagemaker (one job per fold, warm pools), "
             "local (warm worker processes on this machine), auto (sagemaker inside a SageMaker job)",
        default="auto", choices=("auto", "local", "sagemaker")),
    IntegerHyperparameter(
        name="keep_alive_seconds",
        help="warm-pool keep-alive of each fold job in seconds (SageMaker allows 0..3600)",
        default=600, valid=Interval(0, MAX_KEEP_ALIVE_SECONDS)),
    BooleanHyperparameter(
        name="coordinator_trains_fold",
        help="the coordinator trains fold 0 itself instead of launching a job for it (K instances, not K+1)",
        default=False),
)

# warmcv.settings.choices.PRUNE_RULES (which imports this module, so the names are repeated; a test compares them).
PRUNE_RULE_NAMES = ("paired-bound", "wilcoxon")
# mode=driver only: the search itself (warmcv.modes.driver). Never forwarded to a fold job.
DRIVER_HYPERPARAMETERS: tuple[Hyperparameter, ...] = (
    IntegerHyperparameter(
        name="trials", help="driver: trials to run in all (M x N)", default=20, valid=Interval(1, 100000)),
    IntegerHyperparameter(
        name="parallel_trials", help="driver: trials in flight at once (M), each with its K fold jobs",
        default=4, valid=Interval(1, 1000)),
    CategoricalHyperparameter(
        name="sampler", help="driver: Optuna's sampler, tpe (Bayesian, as warmcv run) or random",
        default="tpe", choices=("tpe", "random")),
    IntegerHyperparameter(
        name="sampler_seed", help="driver: the sampler's seed", default=0, valid=Interval(0, 2**31 - 1)),
    TextHyperparameter(
        name="search", help="driver: the search space as ;-separated overrides name=low:high[:log] or name=a,b "
                            "(empty: what warmcv run searches, less what is fixed)",
        default="", pattern=r"[A-Za-z0-9_]+=[^;=]+(;[A-Za-z0-9_]+=[^;=]+)*",
        example="num_leaves=16:128:log;learning_rate=0.01:0.3:log"),
    TextHyperparameter(
        name="fold_instance_type", help="driver: the fold jobs' instance type (empty: the driver's own)",
        default="", pattern=r"ml\.[a-z0-9]+\.[a-z0-9]+", max_length=64, example="ml.m5.xlarge"),
    IntegerHyperparameter(
        name="fold_volume_size_gb", help="driver: the fold jobs' volume in GB (0: the driver's own)",
        default=0, valid=Interval(0, 16384)),
    IntegerHyperparameter(
        name="fold_max_runtime_seconds", help="driver: MaxRuntimeInSeconds of each fold job",
        default=86400, valid=Interval(60, 28 * 86400)),
    TextHyperparameter(
        name="run_name", help="driver: the name fold jobs are named and tagged after (empty: the first driver "
                              "job's name, kept in the checkpoint)",
        default="", pattern=r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,39}", max_length=40, example="warmcv-run-1"),
    BooleanHyperparameter(
        name="prune", help="driver: stop a trial as its folds finish once they show it cannot beat the best "
                           "(warmcv.cv.pruning, the rule warmcv run uses)", default=False),
    CategoricalHyperparameter(
        name="prune_rule", help="driver: paired-bound (the chance to still beat the best; can prune after one "
                                "fold) or wilcoxon (Optuna's WilcoxonPruner test)",
        default="paired-bound", choices=PRUNE_RULE_NAMES),
    ContinuousHyperparameter(
        name="prune_threshold", help="driver: prune below this chance to beat the best (paired-bound) or p-value "
                                     "(wilcoxon)", default=0.1, valid=Interval(0, 1, low_open=True, high_open=True)),
    IntegerHyperparameter(
        name="prune_min_trials", help="driver: completed trials before any trial is pruned", default=5,
        valid=Interval(1, 100000)),
    TextHyperparameter(
        name="result_s3_uri", help="driver: the S3 prefix where it writes driver_result.json (the best "
                                       "hyperparameters, CV mean and std, rounds) and cv_statistics.json",
        default="", pattern=r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", max_length=1024,
        example="s3://bucket/warmcv/evaluation/run-1"),
)
DRIVER_ONLY: frozenset[str] = frozenset(hp.name for hp in DRIVER_HYPERPARAMETERS)

HYPERPARAMETERS: dict[str, Hyperparameter] = {
    hp.name: hp for hp in (*LIGHTGBM_HYPERPARAMETERS, *CONTROL_HYPERPARAMETERS, *DRIVER_HYPERPARAMETERS)
}

TUNABLE: tuple[str, ...] = tuple(
    hp.name for hp in HYPERPARAMETERS.values() if getattr(hp, "tunable", False)
)

# Passed to LightGBM under their own names.
LIGHTGBM_PARAMETER_NAMES: tuple[str, ...] = tuple(hp.name for hp in HYPERPARAMETERS.values() if hp.lightgbm)

# Changing any of these changes the binned LightGBM Dataset, so a cached Dataset is rebuilt.
DATASET_LEVEL: tuple[str, ...] = tuple(hp.name for hp in HYPERPARAMETERS.values() if hp.dataset_level)

# Keys SageMaker or its SDK add to hyperparameters.json that are not ours to validate.
def is_platform_key(key: str) -> bool:
    """SageMaker's SDK adds `sagemaker_*` keys and the tuner adds `_tuning_objective_metric`."""
    return key.startswith("sagemaker_") or key == "_tuning_objective_metric"
