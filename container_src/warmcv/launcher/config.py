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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from warmcv.declarations import (
    DEFAULT_METRIC,
    MAX_KEEP_ALIVE_SECONDS,
    SCORING_METRICS,
    TUNABLE,
    SearchSpace,
    build_search_space,
    static_hyperparameters,
)
from warmcv.errors import UserInputError

STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
TUNER_EARLY_STOPPING = ("Off", "Auto")
APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")
TASKS = ("auto", "binary", "multiclass", "regression")
SPLITTERS = ("auto", "stratified", "kfold", "group", "stratified_group", "time")
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


@dataclass(frozen=True)
class AwsSection:
    region: str = ""
    # Runs every job: processing, the coordinators and their fold jobs, the final training, transform.
    # One role, because a warm pool is reused only by a job with the same RoleArn.
    role_arn: str = ""
    # Assumed by SageMaker Pipelines to create the jobs and invoke the Lambdas.
    pipeline_role_arn: str = ""
    # The Lambda functions' execution role (used by `warmcv pipeline deploy-lambdas`).
    lambda_role_arn: str = ""


@dataclass(frozen=True)
class S3Section:
    input: str = ""  # raw CSV/Parquet (a file or a prefix of parts)
    root: str = ""  # everything the run writes goes under here
    # Data the batch transform predicts: the features only (no target), CSV in training column order (the
    # transform splits files by line, so only the first request sees a header) or JSON Lines.
    batch_input: str = ""
    prepared: str = ""  # `warmcv tune --sagemaker` only: already prepared data


@dataclass(frozen=True)
class PrepareSection:
    target: str = ""
    folds: int = 5  # K
    task: str = "auto"
    splitter: str = "auto"
    group_column: str = ""
    time_column: str = ""
    categorical: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    split_seed: int = 0
    instance_type: str = "ml.m5.xlarge"
    volume_size_gb: int = 30


@dataclass(frozen=True)
class TuningSection:
    strategy: str = "Bayesian"
    parallel_trials: int = 4  # M
    rounds: int = 5  # N: max_jobs = M x N
    tune: list[str] = field(default_factory=list)  # names to tune; empty: every declared tunable not set statically
    ranges: list[str] = field(default_factory=list)  # overrides "name=low:high[:log]" / "name=a,b"
    early_stopping: str = "Off"  # the tuner's own early stopping (Off or Auto)
    seed: int | None = None
    max_runtime_seconds: int = 0  # 0: no limit on the whole tuning job
    target_objective_value: float | None = None
    max_trials_without_improvement: int = 0  # 0: off
    complete_on_convergence: bool = False
    hyperband_min_resource: int = 1
    hyperband_max_resource: int = 0  # 0: rounds


@dataclass(frozen=True)
class TrainingSection:
    instance_type: str = "ml.m5.xlarge"  # coordinator, fold jobs and the final training (must match for warm pools)
    instance_count: int = 1
    volume_size_gb: int = 30
    keep_alive_seconds: int = 600
    max_runtime_seconds: int = 86400


@dataclass(frozen=True)
class TransformSection:
    enabled: bool = True
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
    content_type: str = "text/csv"
    accept: str = "text/csv"


@dataclass(frozen=True)
class PipelineSection:
    name: str = "warmcv"
    model_package_group: str = ""  # default: the pipeline name
    approval_status: str = "PendingManualApproval"
    best_hyperparameters_lambda: str = "warmcv-best-hyperparameters"
    release_warm_pools: bool = True
    release_warm_pools_lambda: str = "warmcv-release-warm-pools"


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
        return int(self.hyperparameters.get("early_stopping_rounds", "0"))

    def search_space(self) -> SearchSpace:
        """`tuning.tune` (default: every declared tunable not fixed in [hyperparameters]), then `tuning.ranges`."""
        names = self.tuning.tune or [name for name in TUNABLE if name not in self.hyperparameters]
        return build_search_space(names, self.tuning.ranges)

    def coordinator_hyperparameters(self) -> dict[str, str]:
        """The tuner's static hyperparameters: the user's, plus what makes each trial a K-fold coordinator.

        The coordinator trains fold 0 itself unless [hyperparameters] says coordinator_trains_fold = false:
        K instances per trial instead of K + 1 (0.82 x the instance-hours in docs/simulation.md), never later.
        """
        values = {"coordinator_trains_fold": "true", **self.hyperparameters, "metric": self.metric,
                  "mode": "coordinator",
                  "fold_runner": "sagemaker", "n_folds": str(self.prepare.folds),
                  "keep_alive_seconds": str(self.training.keep_alive_seconds)}
        return static_hyperparameters(values, self.search_space())

    def worker_hyperparameters(self) -> dict[str, str]:
        """The final training's hyperparameters known before the run (the tuned ones come from the Lambda)."""
        values = {**self.hyperparameters, "metric": self.metric, "mode": "worker", "fold": "all",
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


SECTIONS: dict[str, type] = {
    "aws": AwsSection, "s3": S3Section, "prepare": PrepareSection, "tuning": TuningSection,
    "training": TrainingSection, "transform": TransformSection, "pipeline": PipelineSection,
}


def _convert(where: str, expected: Any, value: Any) -> Any:
    """Check a TOML value's type against a dataclass field's (TOML already types its values)."""
    text = str(expected)
    if value is None:
        return None
    if "list[str]" in text:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserInputError(f"config {where}: expected a list of strings, got {value!r}")
        return list(value)
    if "bool" in text:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise UserInputError(f"config {where}: expected true or false, got {value!r}")
    if "int" in text:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise UserInputError(f"config {where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise UserInputError(f"config {where}: expected an integer, got {value!r}") from None
    if "float" in text:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise UserInputError(f"config {where}: expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise UserInputError(f"config {where}: expected a number, got {value!r}") from None
    if not isinstance(value, str):
        raise UserInputError(f"config {where}: expected a string, got {value!r}")
    return value


def _section(name: str, cls: type, raw: Any) -> Any:
    if not isinstance(raw, Mapping):
        raise UserInputError(f"config [{name}] must be a table, got {raw!r}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserInputError(f"config [{name}]: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**{key: _convert(f"{name}.{key}", hints[key], value) for key, value in raw.items()})


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
    sections = {name: _section(name, cls, data.get(name, {})) for name, cls in SECTIONS.items()}
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
    aws, s3, prep, tun, tr = config.aws, config.s3, config.prepare, config.tuning, config.training
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
    _require(p, 2 <= prep.folds <= 100, f"prepare.folds (K) = {prep.folds}: must be between 2 and 100")
    _require(p, prep.task in TASKS, f"prepare.task {prep.task!r}: one of {', '.join(TASKS)}")
    _require(p, prep.splitter in SPLITTERS, f"prepare.splitter {prep.splitter!r}: one of {', '.join(SPLITTERS)}")
    for key in ("prepare", "training", "transform"):
        instance = getattr(config, key).instance_type
        _require(p, bool(_INSTANCE.match(instance)), f"{key}.instance_type {instance!r} is not like ml.m5.xlarge")
    _require(p, tun.strategy in STRATEGIES, f"tuning.strategy {tun.strategy!r}: one of {', '.join(STRATEGIES)}")
    _require(p, 1 <= tun.parallel_trials <= MAX_PARALLEL_TUNING_JOBS,
             f"tuning.parallel_trials (M) = {tun.parallel_trials}: must be 1..{MAX_PARALLEL_TUNING_JOBS}")
    _require(p, tun.rounds >= 1, f"tuning.rounds (N) = {tun.rounds}: must be at least 1")
    _require(p, config.max_jobs <= MAX_TUNING_JOBS,
             f"M x N = {tun.parallel_trials} x {tun.rounds} = {config.max_jobs} trials: SageMaker allows at most "
             f"{MAX_TUNING_JOBS} per tuning job")
    _require(p, tun.early_stopping in TUNER_EARLY_STOPPING,
             f"tuning.early_stopping {tun.early_stopping!r}: one of {', '.join(TUNER_EARLY_STOPPING)} "
             "(the tuner's own; "
             "LightGBM's is the hyperparameter early_stopping_rounds)")
    if tun.seed is not None:
        _require(p, 0 <= tun.seed < 2**31, f"tuning.seed {tun.seed}: must be 0..2147483647")
    _require(p, tun.max_trials_without_improvement >= 0, "tuning.max_trials_without_improvement must be >= 0")
    if tun.strategy == "Grid":
        _require(p, tun.early_stopping == "Off", "tuning.strategy Grid cannot be combined with early_stopping Auto")
    if tun.strategy == "Grid" and not p:
        numeric = sorted(name for name, dim in config.search_space().items() if dim.choices is None)
        _require(p, not numeric, "tuning.strategy Grid takes listed values only (SageMaker's rule); list them for "
                 + ", ".join(numeric) + " (e.g. --range num_leaves=31,63,127) or leave them out with tuning.tune")
    if tun.strategy == "Hyperband":
        _require(p, tun.early_stopping == "Off",
                 "tuning.strategy Hyperband stops trials itself: leave tuning.early_stopping Off")
    _require(p, 0 <= tr.keep_alive_seconds <= MAX_KEEP_ALIVE_SECONDS,
             f"training.keep_alive_seconds {tr.keep_alive_seconds}: SageMaker allows 0..{MAX_KEEP_ALIVE_SECONDS}")
    _require(p, tr.instance_count == 1, "training.instance_count: warmcv trains on one instance per job (set 1)")
    _require(p, tr.max_runtime_seconds >= 60, "training.max_runtime_seconds must be at least 60")
    _require(p, bool(_NAME.match(config.pipeline.name)) and len(config.pipeline.name) <= 256,
             f"pipeline.name {config.pipeline.name!r}: letters, digits and hyphens, up to 256 characters")
    group = config.pipeline.model_package_group or config.pipeline.name
    _require(p, bool(_NAME.match(group)) and len(group) <= 63,
             f"pipeline.model_package_group {group!r}: letters, digits and hyphens, up to 63 characters")
    _require(p, config.pipeline.approval_status in APPROVAL_STATUSES,
             f"pipeline.approval_status: one of {', '.join(APPROVAL_STATUSES)}")
    for key in ("best_hyperparameters_lambda", "release_warm_pools_lambda"):
        value = getattr(config.pipeline, key)
        _require(p, bool(_LAMBDA_NAME.match(value)), f"pipeline.{key} {value!r} is not a Lambda function name")
    metric = config.hyperparameters.get("metric", "auto")
    if metric == "auto" and prep.task == "auto":
        p.append("set hyperparameters.metric (" + ", ".join(SCORING_METRICS) + ") or prepare.task: the tuner needs "
                 "the objective's direction before the data has been seen")
    if p:
        raise UserInputError("invalid launcher config: " + "; ".join(p))
    # Validated through the declarations: ranges, and static values that must not also be tuned.
    config.coordinator_hyperparameters()


def require(config: LauncherConfig, *keys: str) -> None:
    """Fail with the missing keys named, for commands that need more than the definition does."""
    missing = []
    for key in keys:
        section, _, name = key.partition(".")
        if not getattr(getattr(config, section), name):
            missing.append(key)
    if missing:
        raise UserInputError(f"config: set {', '.join(missing)} (in the TOML file or on the command line)")
