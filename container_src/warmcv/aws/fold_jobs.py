"""What a fold job is: its deterministic name and its CreateTrainingJob request, derived from the coordinator.

Pure functions over the coordinator's own DescribeTrainingJob answer, so the request can be checked
field by field without AWS. The fold jobs copy everything that decides where and how they run (image,
role, instances, volume and its KMS key, channels, output path and its KMS key, VPC, network settings,
environment): copying is what lets them run in locked-down accounts, and identical settings across
folds and rounds are what lets SageMaker hand a warm pool from one fold job to the next. One matching
field is deliberately set apart (`separate_fold_pools`), so that no coordinator, final training or other
job of the account can take a fold's pool, while every fold job of every trial still matches every other.

botocore validates types and minimums but not maximums or name patterns, so those limits (documented in
`warmcv.training_service.rules`) are checked here, before a request leaves the process.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from warmcv.aws import tags as tag_keys
from warmcv.declarations import MAX_KEEP_ALIVE_SECONDS, WORKER_METRICS, metric_definitions
from warmcv.errors import UserInputError
from warmcv.training_service.rules import (
    JOB_NAME_MAX,
    JOB_NAME_PATTERN,
    MAX_HYPERPARAMETER_KEY,
    MAX_HYPERPARAMETER_VALUE,
    MAX_HYPERPARAMETERS,
    MAX_METRIC_DEFINITIONS,
    MAX_TAG_VALUE,
    MAX_TAGS,
)

log = logging.getLogger(__name__)

HASH_CHARS = 8
# A restarted coordinator may find its previous attempt's fold job Failed or Stopped; it then starts the
# fold again under the next attempt's name. Bounded, so a fold that always fails cannot loop forever.
MAX_ATTEMPTS = 5

_ALGORITHM_FIELDS = ("TrainingImage", "TrainingInputMode", "ContainerEntrypoint", "ContainerArguments",
                     "TrainingImageConfig", "EnableSageMakerMetricsTimeSeries")
# ResourceConfig fields that must be identical for a job to take over a warm pool (with the VPC, role and
# network settings below). KeepAlivePeriodInSeconds is set per fold job, not copied.
_RESOURCE_FIELDS = ("InstanceType", "InstanceCount", "VolumeSizeInGB", "VolumeKmsKeyId")
_COPIED_FIELDS = ("RoleArn", "InputDataConfig", "OutputDataConfig", "VpcConfig", "EnableNetworkIsolation",
                  "EnableInterContainerTrafficEncryption", "Environment", "RetryStrategy")
# MaxWaitTimeInSeconds belongs to spot training, which fold jobs never use (no warm pools with spot).
_STOPPING_FIELDS = ("MaxRuntimeInSeconds", "MaxPendingTimeInSeconds")


def check_job_name(name: str) -> str:
    """Raise unless `name` is a valid TrainingJobName (length and pattern)."""
    if not (1 <= len(name) <= JOB_NAME_MAX) or not JOB_NAME_PATTERN.fullmatch(name):
        raise UserInputError(
            f"training job name {name!r} is not valid: SageMaker needs 1-{JOB_NAME_MAX} characters matching "
            f"{JOB_NAME_PATTERN.pattern}"
        )
    return name


def fold_job_name(parent: str, fold: int, attempt: int = 1) -> str:
    """`<parent>-f<fold>` (and `-r<attempt>` from the second attempt on), at most 63 characters.

    Deterministic, so a restarted coordinator asks for the same names and finds its jobs instead of
    duplicating them. When the parent's name is too long, it is cut and a hash of the WHOLE parent name
    is inserted: two parents that differ only after the cut still get different fold names.
    """
    if fold < 0 or attempt < 1:
        raise ValueError(f"fold {fold} / attempt {attempt}")
    suffix = f"-f{fold}" if attempt == 1 else f"-f{fold}-r{attempt}"
    if len(parent) + len(suffix) <= JOB_NAME_MAX:
        return check_job_name(parent + suffix)
    digest = hashlib.sha256(parent.encode("utf-8")).hexdigest()[:HASH_CHARS]
    keep = JOB_NAME_MAX - len(suffix) - HASH_CHARS - 1
    return check_job_name(f"{parent[:keep]}-{digest}{suffix}")


def clamp_keep_alive(seconds: int) -> int:
    """KeepAlivePeriodInSeconds within 0..3600 (botocore's model allows 21600 and checks only the minimum)."""
    clamped = min(max(int(seconds), 0), MAX_KEEP_ALIVE_SECONDS)
    if clamped != seconds:
        log.warning("keep-alive %s s is outside 0..%d; using %d s", seconds, MAX_KEEP_ALIVE_SECONDS, clamped)
    return clamped


def check_hyperparameters(hyperparameters: Mapping[str, str]) -> None:
    """CreateTrainingJob's HyperParameters limits: at most 100 entries, keys <= 256 and values <= 2500 chars."""
    problems = []
    if len(hyperparameters) > MAX_HYPERPARAMETERS:
        problems.append(f"{len(hyperparameters)} entries (at most {MAX_HYPERPARAMETERS})")
    for key, value in hyperparameters.items():
        if not isinstance(value, str):
            problems.append(f"{key} is a {type(value).__name__}, not a string")
        elif len(value) > MAX_HYPERPARAMETER_VALUE:
            problems.append(f"the value of {key} has {len(value)} characters (at most {MAX_HYPERPARAMETER_VALUE})")
        if len(key) > MAX_HYPERPARAMETER_KEY:
            problems.append(f"key {key[:40]}... has {len(key)} characters (at most {MAX_HYPERPARAMETER_KEY})")
    if problems:
        raise UserInputError("fold job hyperparameters exceed SageMaker's limits: " + "; ".join(problems))


def tuning_job_name(tuning_job_arn: str | None) -> str | None:
    """`arn:aws:sagemaker:<region>:<account>:hyper-parameter-tuning-job/<name>` -> `<name>`."""
    if not tuning_job_arn:
        return None
    return tuning_job_arn.rsplit("/", 1)[-1] or None


def copyable_user_tags(tags: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The coordinator's own tags a fold job should carry: not `aws:` (reserved for AWS), not `sagemaker:`
    (SageMaker's bookkeeping of the coordinator's own pipeline step), not warmcv's (set anew per fold)."""
    dropped = (tag_keys.RESERVED_PREFIX, tag_keys.SAGEMAKER_PREFIX, tag_keys.TAG_PREFIX)
    return [{"Key": t["Key"], "Value": t.get("Value", "")} for t in tags if not t["Key"].lower().startswith(dropped)]


def fold_tags(parent: str, tuning_job: str | None, fold: int,
              user_tags: Sequence[Mapping[str, str]] = ()) -> list[dict[str, str]]:
    """warmcv's link tags first (the launcher finds a run's fold jobs by them), then copied user tags."""
    ours = [{"Key": tag_keys.PARENT_JOB, "Value": parent}]
    if tuning_job:
        ours.append({"Key": tag_keys.TUNING_JOB, "Value": tuning_job[:MAX_TAG_VALUE]})
    ours += [{"Key": tag_keys.FOLD, "Value": str(fold)}, {"Key": tag_keys.ROLE, "Value": tag_keys.ROLE_FOLD}]
    copied = copyable_user_tags(user_tags)
    room = MAX_TAGS - len(ours)
    if len(copied) > room:
        log.warning("the coordinator has %d tags; fold jobs carry the first %d (SageMaker allows %d per job)",
                    len(copied), room, MAX_TAGS)
        copied = copied[:room]
    return ours + copied


@dataclass(frozen=True)
class FoldJobTemplate:
    """Everything a fold job shares with its siblings; `request()` adds name, hyperparameters and tags."""

    parent: str
    base: Mapping[str, Any]
    tuning_job: str | None = None
    user_tags: tuple[Mapping[str, str], ...] = ()
    keep_alive_seconds: int = 0
    notes: tuple[str, ...] = field(default=())  # what was not copied and why, for the log

    @classmethod
    def from_parent(cls, parent: Mapping[str, Any], keep_alive_seconds: int,
                    user_tags: Sequence[Mapping[str, str]] = (),
                    max_runtime_seconds: int | None = None) -> FoldJobTemplate:
        """From the coordinator's DescribeTrainingJob answer. Refuses what a fold job cannot copy.

        `max_runtime_seconds` caps the fold jobs' MaxRuntimeInSeconds (the coordinator's remaining time), so
        a fold cannot outlive a coordinator that was killed without the chance to stop it.
        """
        name = parent["TrainingJobName"]
        if parent.get("EnableNetworkIsolation"):
            raise UserInputError(network_isolation_message(name))
        algorithm = parent.get("AlgorithmSpecification") or {}
        if not algorithm.get("TrainingImage"):
            raise UserInputError(
                f"coordinator job {name} has no AlgorithmSpecification.TrainingImage (it runs "
                f"{algorithm.get('AlgorithmName') or 'an algorithm resource'}); the coordinator must run the "
                "warmcv image, which its fold jobs then run too"
            )
        resources = parent.get("ResourceConfig") or {}
        if resources.get("InstanceGroups") or not resources.get("InstanceType"):
            raise UserInputError(
                f"coordinator job {name} uses a heterogeneous cluster (ResourceConfig.InstanceGroups); fold "
                "jobs need one InstanceType and InstanceCount (warm pools do not work with instance groups)"
            )
        notes = []
        base: dict[str, Any] = {
            "AlgorithmSpecification": {
                **{k: copy.deepcopy(algorithm[k]) for k in _ALGORITHM_FIELDS if k in algorithm},
                "MetricDefinitions": metric_definitions(WORKER_METRICS),
            },
            "ResourceConfig": {k: resources[k] for k in _RESOURCE_FIELDS if k in resources},
        }
        for key in _COPIED_FIELDS:
            value = parent.get(key)
            if value not in (None, {}, []):
                base[key] = copy.deepcopy(value)
        notes.extend(force_gzip_output(base))
        notes.append(separate_fold_pools(base))
        stopping = {k: v for k, v in (parent.get("StoppingCondition") or {}).items() if k in _STOPPING_FIELDS}
        if max_runtime_seconds is not None:
            capped = max(1, int(max_runtime_seconds))
            if capped < stopping.get("MaxRuntimeInSeconds", capped + 1):
                stopping["MaxRuntimeInSeconds"] = capped
        if stopping:
            base["StoppingCondition"] = stopping
        if parent.get("EnableManagedSpotTraining"):
            notes.append("the coordinator uses managed spot training; fold jobs run on demand, because warm "
                         "pools do not work with spot instances")
        if parent.get("CheckpointConfig"):
            notes.append("CheckpointConfig is not copied: K fold jobs would share one checkpoint location")
        keep_alive = clamp_keep_alive(keep_alive_seconds)
        if keep_alive:
            base["ResourceConfig"]["KeepAlivePeriodInSeconds"] = keep_alive
        return cls(parent=name, base=base, tuning_job=tuning_job_name(parent.get("TuningJobArn")),
                   user_tags=tuple(dict(t) for t in user_tags), keep_alive_seconds=keep_alive, notes=tuple(notes))

    def request(self, fold: int, hyperparameters: Mapping[str, str], attempt: int = 1,
                copy_user_tags: bool = True) -> dict[str, Any]:
        """The complete CreateTrainingJob request for one fold (hyperparameters include mode=worker and fold)."""
        check_hyperparameters(hyperparameters)
        request = copy.deepcopy(dict(self.base))
        request["TrainingJobName"] = fold_job_name(self.parent, fold, attempt)
        request["HyperParameters"] = dict(hyperparameters)
        request["Tags"] = fold_tags(self.parent, self.tuning_job, fold, self.user_tags if copy_user_tags else ())
        if len(request["AlgorithmSpecification"]["MetricDefinitions"]) > MAX_METRIC_DEFINITIONS:
            raise UserInputError(f"more than {MAX_METRIC_DEFINITIONS} metric definitions")
        return request


def driver_fold_parent(driver: Mapping[str, Any], instance_type: str = "", volume_size_gb: int = 0,
                       max_runtime_seconds: int | None = None) -> dict[str, Any]:
    """The driver's own DescribeTrainingJob answer, made into what its fold jobs copy.

    A driver runs on a small instance for the whole search; its fold jobs train on the fold instance type
    (`instance_type`, `volume_size_gb`; the driver's own when empty or 0), one instance each, and each may run
    `max_runtime_seconds`. Everything else (image, role, channels, output, VPC, network, environment) is the
    driver's, as a coordinator's folds copy the coordinator's. Spot and checkpoints are the driver's alone.
    """
    parent = copy.deepcopy(dict(driver))
    resources = dict(parent.get("ResourceConfig") or {})
    resources.pop("InstanceGroups", None)
    if instance_type:
        resources["InstanceType"] = instance_type
    resources["InstanceCount"] = 1
    if volume_size_gb:
        resources["VolumeSizeInGB"] = volume_size_gb
    parent["ResourceConfig"] = resources
    if max_runtime_seconds is not None:
        parent["StoppingCondition"] = {"MaxRuntimeInSeconds": int(max_runtime_seconds)}
    for key in ("EnableManagedSpotTraining", "CheckpointConfig", "TuningJobArn"):
        parent.pop(key, None)
    return parent


# The matching field fold jobs set apart from every other job (rules.WARM_POOL_MATCH_FIELDS).
SEPARATING_FIELD = "EnableInterContainerTrafficEncryption"


def separate_fold_pools(base: dict[str, Any]) -> str:
    """Give fold jobs warm pools that only fold jobs can match. Returns the note for the log.

    SageMaker hands an Available pool to ANY job whose RoleArn, instance type and count, volume size and KMS
    key, VPC, network isolation and inter-container encryption are identical (rules.warm_pool_match_key;
    KeepAlive is not compared, an absent boolean is false). A fold job copies all of them from its
    coordinator, so without a difference the next trial's coordinator, created by the tuner moments before its
    folds, takes one of the previous trial's fold pools, and one fold of every trial starts cold.

    The field set apart is EnableInterContainerTrafficEncryption, turned ON for fold jobs: "Enabling
    inter-container traffic encryption doesn't affect training jobs with a single compute instance"
    (rules.TRAFFIC_ENCRYPTION), and a fold's worker trains on one instance and talks to no other, so it costs
    nothing; it tightens, never loosens, a security setting; coordinators (the tuner's training job
    definition) and the final training (the launcher's ModelTrainer) leave it off, as do other jobs by
    default. Every fold job of every trial sets it the same way, so fold pools pass from trial to trial.
    When the coordinator already has it on, the folds keep it on (never weaken it) and ask for one GB more
    volume instead (VolumeSizeInGB is matched too; a GB of EBS for the fold's hours costs next to nothing).
    """
    resources = base.setdefault("ResourceConfig", {})
    if not base.get(SEPARATING_FIELD):
        base[SEPARATING_FIELD] = True
        return ("fold jobs set EnableInterContainerTrafficEncryption=true (no effect on single-instance jobs), so "
                "their warm pools match only other fold jobs, not the coordinators or the final training")
    resources["VolumeSizeInGB"] = int(resources.get("VolumeSizeInGB") or 0) + 1
    return (f"the coordinator already encrypts inter-container traffic; fold jobs use {resources['VolumeSizeInGB']} "
            "GB volumes (one more) so that their warm pools match only other fold jobs")


def force_gzip_output(base: dict[str, Any]) -> list[str]:
    """Fold jobs upload output/data as output.tar.gz, whatever the coordinator asked for (rules.output_locations):
    with CompressionType NONE there is no output.tar.gz, and the fold's metrics.json could not be read."""
    output = base.get("OutputDataConfig")
    if output is None:
        return []
    notes = []
    if str(output.get("CompressionType", "GZIP")).upper() != "GZIP":
        notes.append(f"the coordinator's OutputDataConfig.CompressionType is {output['CompressionType']}; fold jobs "
                     "use GZIP, so that each fold's metrics.json arrives in output.tar.gz")
    output["CompressionType"] = "GZIP"
    return notes


def fold_name_filter(parent: str, folds: Sequence[int]) -> str:
    """The longest prefix every fold-job name of `parent` shares, for ListTrainingJobs' NameContains.

    Long parent names are cut by different amounts for different suffixes (`fold_job_name`), so this is the
    common prefix of the extremes, not simply `<parent>-f`. It may match other coordinators' jobs too: the
    runner only ever looks at the exact names it created.
    """
    names = [fold_job_name(parent, fold, attempt) for fold in folds for attempt in (1, MAX_ATTEMPTS)]
    return os.path.commonprefix(names)[:JOB_NAME_MAX] if names else parent[:JOB_NAME_MAX]


def network_isolation_message(name: str) -> str:
    return (
        f"coordinator job {name} cannot reach the SageMaker API: it runs with network isolation "
        "(EnableNetworkIsolation=true), which blocks every outbound call, so it cannot launch or stop its fold "
        "jobs. Turn network isolation off for the coordinator (the tuning job's training job definition); in a "
        "VPC, give it a NAT gateway or a com.amazonaws.<region>.sagemaker.api interface endpoint (and S3 access "
        "for the fold results). Or set fold_runner=local to train the folds on the coordinator's own instance."
    )


# Fields that identify a fold job's work: a job with the same name and these values is one this coordinator
# (or its previous attempt) created, and can be adopted.
IDENTITY_FIELDS = ("HyperParameters", "AlgorithmSpecification.TrainingImage", "RoleArn",
                   "OutputDataConfig.S3OutputPath", "ResourceConfig.InstanceType")


def _field(document: Mapping[str, Any], dotted: str) -> Any:
    value: Any = document
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def identity_differences(existing: Mapping[str, Any], request: Mapping[str, Any]) -> list[str]:
    """Which identifying fields of an existing job differ from our request (empty: it is our job)."""
    differences = []
    for dotted in IDENTITY_FIELDS:
        ours, theirs = _field(request, dotted), _field(existing, dotted)
        if dotted == "HyperParameters":
            ours, theirs = dict(ours or {}), dict(theirs or {})
        if ours != theirs:
            differences.append(dotted)
    return differences
