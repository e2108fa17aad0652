"""The launcher's configuration: a TOML file plus command-line overrides, validated before any SDK call.

Everything a run on SageMaker needs is here, each value checked with an error that names its key, so a
typo fails on the laptop in a second rather than as a failed pipeline step an hour later. Ranges,
static hyperparameters and the objective are not restated: they are validated and derived through
`warmcv.declarations`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AliasChoices, BeforeValidator, Field, model_validator

from warmcv.declarations import (
    DEFAULT_METRIC,
    SCORING_METRICS,
    TUNING_FIXED,
    TUNING_SEARCHED,
    SearchSpace,
    build_search_space,
    static_hyperparameters,
)
from warmcv.errors import UserInputError
from warmcv.settings.base import Settings, SettingsError
from warmcv.settings.choices import KEEP_ALIVE_RANGE, ApprovalStatus, PruneRule
from warmcv.settings.run import PrepareOptions

# Who runs the trials: SageMaker's tuner, one coordinator job per trial ("amt", automatic model tuning), or
# warmcv's driver, one search process creating every trial's fold jobs itself ("driver").
Strategy = Literal["amt", "driver"]
STRATEGIES: tuple[str, ...] = ("amt", "driver")
# How the next combination is chosen (CreateHyperParameterTuningJob's Strategy). Before the driver existed
# `tuning.strategy` held these; such a config still reads as strategy "amt" with this search strategy.
SearchStrategy = Literal["Bayesian", "Random", "Hyperband", "Grid"]
SEARCH_STRATEGIES: tuple[str, ...] = ("Bayesian", "Random", "Hyperband", "Grid")
# The driver samples with Optuna: Bayesian is its TPE sampler (as `warmcv run`), Random its random sampler.
DRIVER_SAMPLERS = {"Bayesian": "tpe", "Random": "random"}
TunerEarlyStopping = Literal["Off", "Auto"]
# SageMaker's limits on a tuning job (CreateHyperParameterTuningJob ResourceLimits).
MAX_TUNING_JOBS = 500
MAX_PARALLEL_TUNING_JOBS = 100
# Hyperparameters the launcher sets itself for the coordinator; users set them through their own keys.
_LAUNCHER_OWNED = ("mode", "fold", "n_folds", "fold_runner", "keep_alive_seconds")

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]+$")
_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
_LAMBDA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_INSTANCE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")


def _comma_separated(value: Any) -> Any:
    """A list given on the command line arrives as "a,b"; in TOML it is a list already."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


Names = Annotated[list[str], BeforeValidator(_comma_separated)]


class AwsSection(Settings):
    what: ClassVar[str] = "config [aws]"
    region: str = ""
    # Runs every job: processing, the coordinators and their fold jobs, the final training, transform.
    # One role, because a warm pool is reused only by a job with the same RoleArn.
    role_arn: str = ""
    # Assumed by SageMaker Pipelines to create the jobs and invoke the Lambdas.
    pipeline_role_arn: str = ""
    # The Lambda functions' execution role (used by `warmcv pipeline deploy-lambdas`).
    lambda_role_arn: str = ""


class S3Section(Settings):
    what: ClassVar[str] = "config [s3]"
    input: str = ""  # raw CSV/Parquet (a file or a prefix of parts)
    root: str = ""  # everything the run writes goes under here
    # Data the batch transform predicts: the features only (no target), CSV in training column order (the
    # transform splits files by line, so only the first request sees a header) or JSON Lines.
    batch_input: str = ""
    prepared: str = ""  # `warmcv tune --sagemaker` only: already prepared data


class PrepareSection(PrepareOptions):
    """The shared preparation settings, plus the Processing job's instance. The target may come later
    (an override), or not at all for `tune --sagemaker` on prepared data; the split seed keeps the
    config's own key name."""

    what: ClassVar[str] = "config [prepare]"
    target: str = ""
    seed: int = Field(0, ge=0, le=2**32 - 1, validation_alias=AliasChoices("split_seed", "seed"))
    categorical: Annotated[tuple[str, ...] | None, BeforeValidator(_comma_separated)] = None
    drop: Annotated[tuple[str, ...], BeforeValidator(_comma_separated)] = ()
    id_columns: Annotated[tuple[str, ...], BeforeValidator(_comma_separated)] = ()
    instance_type: str = "ml.m5.xlarge"
    volume_size_gb: int = Field(30, ge=1)


class TuningSection(Settings):
    what: ClassVar[str] = "config [tuning]"
    strategy: Strategy = "amt"
    search_strategy: SearchStrategy = "Bayesian"
    parallel_trials: int = Field(4, ge=1, le=MAX_PARALLEL_TUNING_JOBS)  # M
    rounds: int = Field(5, ge=1)  # N: max_jobs = M x N
    tune: Names = []  # names to tune; empty: every declared tunable not set statically
    ranges: Names = []  # overrides "name=low:high[:log]" / "name=a,b"
    early_stopping: TunerEarlyStopping = "Off"  # the tuner's own early stopping (LightGBM's: early_stopping_rounds)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    max_runtime_seconds: int = Field(0, ge=0)  # 0: no limit on the whole tuning job
    target_objective_value: float | None = Field(None, allow_inf_nan=False)
    max_trials_without_improvement: int = Field(0, ge=0)  # 0: off
    complete_on_convergence: bool = False
    # Hyperband's resource is one objective line of a trial: the coordinator prints its running CV mean after each
    # fold, so a trial has K of them. 0: K (prepare.folds, or the Folds parameter of an execution).
    hyperband_min_resource: int = Field(1, ge=1)
    hyperband_max_resource: int = Field(0, ge=0)
    # strategy "driver": fold-level pruning as each fold finishes (warmcv.cv.pruning, the rule warmcv run uses).
    prune: bool = False
    prune_rule: PruneRule = "paired-bound"
    prune_threshold: float = Field(0.1, gt=0, lt=1)
    prune_min_trials: int = Field(5, ge=1)
    # strategy "driver": the driver's own training job (it only waits on SageMaker: a small instance will do).
    driver_instance_type: str = "ml.m5.large"
    driver_max_runtime_seconds: int = Field(5 * 86400, ge=3600, le=28 * 86400)

    @model_validator(mode="before")
    @classmethod
    def _search_strategy_in_strategy(cls, data: Any) -> Any:
        """`strategy = "Random"` (the key's meaning before the driver) reads as the tuner with that search; a
        `search_strategy` given as well (on the command line over such a file, say) is the newer word and wins."""
        if isinstance(data, Mapping) and data.get("strategy") in SEARCH_STRATEGIES:
            data = dict(data)
            given = data.pop("strategy")
            data["strategy"] = "amt"
            data.setdefault("search_strategy", given)
        return data

class TrainingSection(Settings):
    what: ClassVar[str] = "config [training]"
    instance_type: str = "ml.m5.xlarge"  # coordinator, fold jobs and the final training (must match for warm pools)
    # warmcv trains on one instance per job.
    instance_count: int = Field(1, ge=1, le=1)
    volume_size_gb: int = Field(30, ge=1)
    keep_alive_seconds: int = Field(600, ge=KEEP_ALIVE_RANGE[0], le=KEEP_ALIVE_RANGE[1])
    max_runtime_seconds: int = Field(86400, ge=60)


class TransformSection(Settings):
    what: ClassVar[str] = "config [transform]"
    enabled: bool = True
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = Field(1, ge=1)
    content_type: str = "text/csv"
    accept: str = "text/csv"


class MlflowSection(Settings):
    """Where the coordinators log their trials: a SageMaker managed MLflow tracking server (empty: no tracking)."""

    what: ClassVar[str] = "config [mlflow]"
    tracking_server_arn: str = ""  # arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name>
    experiment: str = ""  # default: the pipeline name


class PipelineSection(Settings):
    what: ClassVar[str] = "config [pipeline]"
    name: str = "warmcv"
    model_package_group: str = ""  # default: the pipeline name
    approval_status: ApprovalStatus = "PendingManualApproval"
    best_hyperparameters_lambda: str = "warmcv-best-hyperparameters"
    release_warm_pools: bool = True
    release_warm_pools_lambda: str = "warmcv-release-warm-pools"
    # The CV mean the best trial must beat to be registered (default: a constant model's AUC 0.5 or R2 0;
    # no gate for other metrics). A pipeline parameter, so an execution may set it.
    baseline_objective: float | None = Field(None, allow_inf_nan=False)


@dataclass(frozen=True)
class LauncherConfig:
    image_uri: str
    aws: AwsSection
    s3: S3Section
    prepare: PrepareSection
    tuning: TuningSection
    training: TrainingSection
    transform: TransformSection
    pipeline: PipelineSection
    hyperparameters: dict[str, str]  # static, validated strings (the user's, not the launcher-owned ones)
    mlflow: MlflowSection = MlflowSection()

    # ---- derived values -------------------------------------------------------------------------------
    @property
    def account(self) -> str:
        match = _ROLE_ARN.match(self.aws.role_arn)
        return match.group(1) if match else ""

    @property
    def max_jobs(self) -> int:
        return self.tuning.parallel_trials * self.tuning.rounds

    @property
    def metric(self) -> str:
        """The scoring metric: given, or the task's default; the tuner needs its direction up front."""
        given = self.hyperparameters.get("metric", "auto")
        if given != "auto":
            return given
        return DEFAULT_METRIC[self.prepare.task]

    @property
    def early_stopping_rounds(self) -> int:
        return int(self.static_hyperparameters().get("early_stopping_rounds", "0"))

    def search_space(self) -> SearchSpace:
        """`tuning.tune` (default: what `warmcv run` searches, less what [hyperparameters] fixes), then
        `tuning.ranges`: the same default space on SageMaker as on one machine."""
        names = self.tuning.tune or [name for name in TUNING_SEARCHED if name not in self.hyperparameters]
        return build_search_space(names, self.tuning.ranges)

    def static_hyperparameters(self) -> dict[str, str]:
        """The user's [hyperparameters] over the values `warmcv run` holds fixed unless told otherwise
        (num_boost_round as an upper bound, early stopping on), minus anything being searched."""
        space = self.search_space()
        return {**{k: v for k, v in TUNING_FIXED.items() if k not in space}, **self.hyperparameters}

    def coordinator_hyperparameters(self) -> dict[str, str]:
        """The tuner's static hyperparameters: the user's, plus what makes each trial a K-fold coordinator.

        The coordinator trains fold 0 itself unless [hyperparameters] says coordinator_trains_fold = false:
        K instances per trial instead of K + 1 (0.82 x the instance-hours in docs/simulation.md), never later.
        """
        values = {"coordinator_trains_fold": "true", **self.static_hyperparameters(), "metric": self.metric,
                  "mode": "coordinator",
                  "fold_runner": "sagemaker", "n_folds": str(self.prepare.folds),
                  "keep_alive_seconds": str(self.training.keep_alive_seconds)}
        return static_hyperparameters(values, self.search_space())

    def driver_hyperparameters(self) -> dict[str, str]:
        """The driver job's hyperparameters (strategy "driver"): every trial's static values, as the coordinators
        get them, and the search itself (M x N trials, M in flight, the sampler, the space, the fold jobs)."""
        from warmcv.tuning.driver import search_setting

        space = self.search_space()
        values = {**self.static_hyperparameters(), "metric": self.metric, "mode": "driver",
                  "n_folds": str(self.prepare.folds), "keep_alive_seconds": str(self.training.keep_alive_seconds),
                  "trials": str(self.max_jobs), "parallel_trials": str(self.tuning.parallel_trials),
                  "sampler": DRIVER_SAMPLERS.get(self.tuning.search_strategy, "tpe"),
                  "sampler_seed": str(self.tuning.seed or 0), "search": search_setting(space),
                  "fold_instance_type": self.training.instance_type,
                  "fold_volume_size_gb": str(self.training.volume_size_gb),
                  "fold_max_runtime_seconds": str(self.training.max_runtime_seconds)}
        if self.tuning.prune:
            values.update(prune="true", prune_rule=self.tuning.prune_rule,
                          prune_threshold=repr(self.tuning.prune_threshold),
                          prune_min_trials=str(self.tuning.prune_min_trials))
        return static_hyperparameters(values, space)

    def worker_hyperparameters(self) -> dict[str, str]:
        """The final training's hyperparameters known before the run (the tuned ones come from the Lambda)."""
        values = {**self.static_hyperparameters(), "metric": self.metric, "mode": "worker", "fold": "all",
                  "n_folds": str(self.prepare.folds)}
        return static_hyperparameters(values, self.search_space())

    def final_from_tuning(self) -> list[str]:
        """Names the final training takes from the best trial: the tuned ones, and the rounds CV found."""
        names = sorted(self.search_space())
        if self.early_stopping_rounds and "num_boost_round" not in names:
            names.append("num_boost_round")
        return names

    def uri(self, *parts: str) -> str:
        return "/".join([self.s3.root.rstrip("/"), *parts])

    def coordinator_environment(self) -> dict[str, str]:
        """The coordinators' environment: MLflow's own variables when [mlflow] names a tracking server (the
        sagemaker-mlflow plugin in the image turns the ARN into signed requests)."""
        if not self.mlflow.tracking_server_arn:
            return {}
        return {"MLFLOW_TRACKING_URI": self.mlflow.tracking_server_arn,
                "MLFLOW_EXPERIMENT_NAME": self.mlflow.experiment or self.pipeline.name}

    def transform_data_processing(self) -> dict[str, str] | None:
        """The batch transform's DataProcessing when the data has ID columns (None without): the IDs (the
        first columns of the batch input) are kept out of what the model sees and joined back to its output.

        SageMaker's rules (developer guide, "Associate Prediction Results with Input Records"): a CSV row is
        a JSON array (index paths only, negative indexes allowed); JoinSource=Input appends the model's
        output to the original row, or puts it under SageMakerOutput in a JSON object; InputFilter and
        OutputFilter are at most 63 characters (API reference, DataProcessing).
        """
        ids = list(self.prepare.id_columns)
        if not ids:
            return None
        if media_type(self.transform.content_type) == "text/csv":
            outputs = self.prediction_columns()
            keep = [str(i) for i in range(len(ids))] + ([str(-i) for i in range(outputs, 0, -1)] if outputs else [])
            return {"InputFilter": f"$[{len(ids)}:]", "JoinSource": "Input",
                    "OutputFilter": f"$[{','.join(keep)}]" if outputs else "$"}
        names = ",".join(f"'{name}'" for name in [*ids, "SageMakerOutput"])
        return {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": f"$[{names}]"}

    def prediction_columns(self) -> int | None:
        """Columns one prediction row has in CSV: 1 for values or labels, 2 for a binary task's probabilities;
        None when it depends on the data (a multiclass task's probabilities: one per class)."""
        task = self.prepare.task
        if task == "auto":
            task = "regression" if self.metric in ("rmse", "mae", "r2") else "auto"
        if task == "regression" or "output=labels" in self.transform.accept.replace(" ", "").lower():
            return 1
        return 2 if task == "binary" else None


SECTIONS: dict[str, type[Settings]] = {
    "aws": AwsSection, "s3": S3Section, "prepare": PrepareSection, "tuning": TuningSection,
    "training": TrainingSection, "transform": TransformSection, "pipeline": PipelineSection, "mlflow": MlflowSection,
}
# SageMaker's tracking server ARN (CreateMlflowTrackingServer's TrackingServerArn).
_TRACKING_SERVER_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:mlflow-tracking-server/[a-zA-Z0-9-]{1,256}$")
# DataProcessing's InputFilter and OutputFilter: at most 63 characters (API reference, DataProcessing).
MAX_FILTER_CHARS = 63


def media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UserInputError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as error:
        raise UserInputError(f"config file {path} is not valid TOML: {error}") from None


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides win, table by table (`{"tuning": {"rounds": 3}}` keeps the other tuning keys)."""
    merged: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = dict(value) if isinstance(value, Mapping) else value
    return merged


def load_config(data: Mapping[str, Any]) -> LauncherConfig:
    """Build and validate the config from the merged mapping (file, then overrides)."""
    top = {"image_uri", "hyperparameters", *SECTIONS}
    unknown = sorted(set(data) - top)
    if unknown:
        raise UserInputError(
            f"config: unknown key(s) or table(s) {', '.join(unknown)}; known: {', '.join(sorted(top))}")
    sections: dict[str, Any] = {}
    problems = []
    for name, cls in SECTIONS.items():
        raw = data.get(name, {})
        if not isinstance(raw, Mapping):
            raise UserInputError(f"config [{name}] must be a table, got {raw!r}")
        try:
            sections[name] = cls.model_validate(dict(raw))
        except SettingsError as error:
            problems += [f"{name}.{problem}" for problem in error.problems]
    if problems:
        raise UserInputError("invalid launcher config: " + "; ".join(problems))
    image_uri = data.get("image_uri", "")
    if not isinstance(image_uri, str):
        raise UserInputError(f"config image_uri: expected a string, got {image_uri!r}")
    raw_hps = data.get("hyperparameters", {})
    if not isinstance(raw_hps, Mapping):
        raise UserInputError("config [hyperparameters] must be a table of name = value")
    owned = sorted(set(raw_hps) & set(_LAUNCHER_OWNED))
    if owned:
        raise UserInputError(
            f"config [hyperparameters]: {', '.join(owned)} are set by the launcher (folds come from prepare.folds, "
            "keep-alive from training.keep_alive_seconds); remove them"
        )
    hps = static_hyperparameters({k: v for k, v in raw_hps.items()})
    config = LauncherConfig(image_uri=image_uri, hyperparameters=hps, **sections)
    _validate(config)
    return config


def _require(problems: list[str], ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def _validate(config: LauncherConfig) -> None:
    """Collect every problem, so a user fixes a config in one round trip."""
    p: list[str] = []
    aws, s3, prep, tun = config.aws, config.s3, config.prepare, config.tuning
    _require(p, bool(config.image_uri) and ":" in config.image_uri.rsplit("/", 1)[-1] or "@sha256:" in config.image_uri,
             f"image_uri {config.image_uri!r} must be a full ECR image URI with a tag or digest "
             "(docker/build_and_push.sh prints it), e.g. 111122223333.dkr.ecr.us-east-1.amazonaws.com/warmcv:1a2b3c4")
    _require(p, bool(_REGION.match(aws.region)), f"aws.region {aws.region!r} is not an AWS region like us-east-1")
    for key in ("role_arn", "pipeline_role_arn"):
        value = getattr(aws, key)
        _require(p, bool(_ROLE_ARN.match(value)),
                 f"aws.{key} {value!r} must be a full IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    if aws.lambda_role_arn:
        _require(p, bool(_ROLE_ARN.match(aws.lambda_role_arn)),
                 f"aws.lambda_role_arn {aws.lambda_role_arn!r} must be a full IAM role ARN")
    for key in ("input", "root", "batch_input", "prepared"):
        value = getattr(s3, key)
        if value or key == "root":
            _require(p, bool(_S3_URI.match(value)), f"s3.{key} {value!r} must be an s3://bucket/prefix URI")
    for key in ("prepare", "training", "transform"):
        instance = getattr(config, key).instance_type
        _require(p, bool(_INSTANCE.match(instance)), f"{key}.instance_type {instance!r} is not like ml.m5.xlarge")
    if tun.strategy == "amt":
        _require(p, config.max_jobs <= MAX_TUNING_JOBS,
                 f"M x N = {tun.parallel_trials} x {tun.rounds} = {config.max_jobs} trials: SageMaker allows at most "
                 f"{MAX_TUNING_JOBS} per tuning job (the driver strategy has no such limit)")
    search = tun.search_strategy
    if tun.strategy == "amt":
        _require(p, not tun.prune, "tuning.prune is the driver's fold-level pruning; with the tuner, stop hopeless "
                 "trials with tuning.early_stopping = \"Auto\" or search_strategy = \"Hyperband\" (each coordinator "
                 "reports its running CV mean after every fold)")
    if tun.strategy == "driver" and tun.prune:
        from warmcv.tuning.driver import Pruning, check_pruning

        try:
            check_pruning(Pruning(tun.prune_rule, tun.prune_threshold, tun.prune_min_trials), prep.folds,
                          config.max_jobs)
        except UserInputError as error:
            p.append(f"tuning.{error}")
    if tun.strategy == "driver":
        _require(p, search in DRIVER_SAMPLERS,
                 f"tuning.search_strategy {search} is the tuner's; the driver samples with Optuna: Bayesian (TPE, as "
                 "warmcv run) or Random")
        _require(p, tun.early_stopping == "Off",
                 "tuning.early_stopping Auto is the tuner's early stopping; the driver has no tuner")
        _require(p, bool(_INSTANCE.match(tun.driver_instance_type)),
                 f"tuning.driver_instance_type {tun.driver_instance_type!r} is not like ml.m5.large")
        ignored = [key for key, value in (("max_runtime_seconds", tun.max_runtime_seconds),
                                          ("target_objective_value", tun.target_objective_value),
                                          ("max_trials_without_improvement", tun.max_trials_without_improvement),
                                          ("complete_on_convergence", tun.complete_on_convergence)) if value]
        _require(p, not ignored, f"tuning.{', tuning.'.join(ignored)} are the tuner's completion criteria, which the "
                 "driver does not have (it runs M x N trials; bound its time with tuning.driver_max_runtime_seconds)")
        if not p:
            reverse = sorted(n for n, d in config.search_space().items()
                             if d.range is not None and d.range.scaling == "ReverseLogarithmic")
            _require(p, not reverse, f"tuning.ranges: ReverseLogarithmic scaling ({', '.join(reverse)}) is SageMaker's "
                     "tuner's; the driver samples with Optuna: use log or linear")
    if search == "Grid":
        _require(p, tun.early_stopping == "Off",
                 "tuning.search_strategy Grid cannot be combined with early_stopping Auto")
    if search == "Grid" and not p:
        numeric = sorted(name for name, dim in config.search_space().items() if dim.choices is None)
        _require(p, not numeric, "tuning.search_strategy Grid takes listed values only (SageMaker's rule); list "
                 "them for " + ", ".join(numeric) + " (e.g. --range num_leaves=31,63,127) or leave them out with "
                 "tuning.tune")
    if search == "Hyperband":
        _require(p, tun.early_stopping == "Off",
                 "tuning.search_strategy Hyperband stops trials itself: leave tuning.early_stopping Off")
        top = tun.hyperband_max_resource or prep.folds
        _require(p, top <= prep.folds,
                 f"tuning.hyperband_max_resource = {top}: a trial reports {prep.folds} values (its running CV mean "
                 f"after each of the {prep.folds} folds), and Hyperband stops a trial that reaches the maximum, so "
                 f"it must be at most {prep.folds} (0: the folds)")
        _require(p, tun.hyperband_min_resource <= top,
                 f"tuning.hyperband_min_resource = {tun.hyperband_min_resource} is above the maximum resource {top}")
    _require(p, bool(_NAME.match(config.pipeline.name)) and len(config.pipeline.name) <= 256,
             f"pipeline.name {config.pipeline.name!r}: letters, digits and hyphens, up to 256 characters")
    group = config.pipeline.model_package_group or config.pipeline.name
    _require(p, bool(_NAME.match(group)) and len(group) <= 63,
             f"pipeline.model_package_group {group!r}: letters, digits and hyphens, up to 63 characters")
    for key in ("best_hyperparameters_lambda", "release_warm_pools_lambda"):
        value = getattr(config.pipeline, key)
        _require(p, bool(_LAMBDA_NAME.match(value)), f"pipeline.{key} {value!r} is not a Lambda function name")
    arn = config.mlflow.tracking_server_arn
    if arn:
        _require(p, bool(_TRACKING_SERVER_ARN.match(arn)),
                 f"mlflow.tracking_server_arn {arn!r} is not a SageMaker MLflow tracking server ARN "
                 "(arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name>)")
    if prep.id_columns and config.transform.enabled:
        formats = {media_type(config.transform.content_type), media_type(config.transform.accept)}
        _require(p, len(formats) == 1 and formats <= {"text/csv", "application/jsonlines"},
                 f"prepare.id_columns: batch transform joins the IDs to the predictions only when transform."
                 f"content_type and transform.accept are both text/csv or both application/jsonlines (got "
                 f"{config.transform.content_type!r} and {config.transform.accept!r})")
    metric = config.hyperparameters.get("metric", "auto")
    if metric == "auto" and prep.task == "auto":
        p.append("set hyperparameters.metric (" + ", ".join(SCORING_METRICS) + ") or prepare.task: the tuner needs "
                 "the objective's direction before the data has been seen")
    if p:
        raise UserInputError("invalid launcher config: " + "; ".join(p))
    processing = config.transform_data_processing() if config.transform.enabled else None
    for key, value in (processing or {}).items():
        if len(value) > MAX_FILTER_CHARS:
            raise UserInputError(f"invalid launcher config: the batch transform's {key} {value!r} is over SageMaker's "
                                 f"{MAX_FILTER_CHARS} characters; use fewer ID columns")
    # Validated through the declarations: ranges, and static values that must not also be tuned.
    config.coordinator_hyperparameters()


# CreateHyperParameterTuningJob, HyperParameterTuningJobName: length 1-32, pattern below (API reference;
# botocore's model checks neither, so a bad name would fail only at AWS).
_TUNING_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")


def check_tuning_job_name(name: str) -> None:
    if len(name) > 32 or not _TUNING_JOB_NAME.match(name):
        raise UserInputError(
            f"tuning job name {name!r} ({len(name)} characters): SageMaker takes 1-32 letters, digits and "
            "hyphens, starting and ending with a letter or digit")


def require(config: LauncherConfig, *keys: str) -> None:
    """Fail with the missing keys named, for commands that need more than the definition does."""
    missing = []
    for key in keys:
        section, _, name = key.partition(".")
        if not getattr(getattr(config, section), name):
            missing.append(key)
    if missing:
        raise UserInputError(f"config: set {', '.join(missing)} (in the TOML file or on the command line)")
