"""SageMaker's documented training-job rules, each once, each with its source.

Pure data and pure functions: the service model (`warmcv.training_service.service`), the fold runner's
client-side checks (`warmcv.aws.fold_jobs`), the simulator and `warmcv plan` all read these, so a rule
cannot drift between them. Every rule names the page it comes from; where AWS's documents are silent
the behaviour is an ASSUMPTION and says so (docs/simulation.md lists them with how results move).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# -- sources --------------------------------------------------------------------------------------------------
_DG = "https://docs.aws.amazon.com/sagemaker/latest/dg/"
_API = "https://docs.aws.amazon.com/sagemaker/latest/APIReference/"
WARM_POOLS = _DG + "train-warm-pools.html"
WARM_POOL_QUOTA = _DG + "train-warm-pools-resource-limits.html"
WARM_POOL_STATUS = _API + "API_WarmPoolStatus.html"
CREATE_TRAINING_JOB = _API + "API_CreateTrainingJob.html"
DESCRIBE_TRAINING_JOB = _API + "API_DescribeTrainingJob.html"
LIST_TRAINING_JOBS = _API + "API_ListTrainingJobs.html"
STOP_TRAINING_JOB = _API + "API_StopTrainingJob.html"
UPDATE_TRAINING_JOB = _API + "API_UpdateTrainingJob.html"
OUTPUT_DATA_CONFIG = _API + "API_OutputDataConfig.html"
UNCOMPRESSED_OUTPUT = _DG + "model-train-storage-uncompressed.html"
TRAFFIC_ENCRYPTION = _DG + "train-encrypt.html"
TRAINING_QUOTAS = _DG + "feature-store-feature-processor-quotas.html"  # "Training limits per Region"
TUNING_LIMITS = _DG + "automatic-model-tuning-limits.html"
CHECKPOINTS = _DG + "model-checkpoints.html"
CHECKPOINT_CONFIG = _API + "API_CheckpointConfig.html"
BOTOCORE_MODEL = "botocore/data/sagemaker/2017-07-24/service-2.json"
# AWS's ResourceLimitExceeded text, as users quote it (aws/amazon-sagemaker-examples#1543 and others).
QUOTA_MESSAGE_SOURCE = "https://github.com/aws/amazon-sagemaker-examples/issues/1543"
# "System prefix 'aws:' reserved for AWS usage in tag key" (aws/sagemaker-python-sdk#1301).
RESERVED_TAG_SOURCE = "https://github.com/aws/sagemaker-python-sdk/issues/1301"

# -- request limits (CreateTrainingJob; botocore checks types and minimums, not these) ---------------------------
JOB_NAME_MAX = 63
JOB_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")  # CREATE_TRAINING_JOB, TrainingJobName
MAX_HYPERPARAMETERS = 100  # CREATE_TRAINING_JOB, HyperParameters: "Maximum number of 100 items"
MAX_HYPERPARAMETER_KEY = 256
MAX_HYPERPARAMETER_VALUE = 2500
MAX_TAGS = 50  # BOTOCORE_MODEL, TagList max 50
MAX_TAG_KEY = 128  # BOTOCORE_MODEL, TagKey
MAX_TAG_VALUE = 256  # BOTOCORE_MODEL, TagValue
MAX_METRIC_DEFINITIONS = 40  # BOTOCORE_MODEL, MetricDefinitionList max 40
RESERVED_TAG_PREFIX = "aws:"  # RESERVED_TAG_SOURCE: keys in aws: are AWS's own
MAX_KEEP_ALIVE_SECONDS = 3600  # WARM_POOLS "Maximum warm pool duration" (botocore's model says 21600)
STOP_GRACE_SECONDS = 120  # STOP_TRAINING_JOB: SIGTERM, then the job ends 120 s later at most


def request_problems(request: Mapping[str, Any]) -> list[str]:
    """What SageMaker refuses with ValidationException in a CreateTrainingJob request (CREATE_TRAINING_JOB).

    Only limits the service documents and botocore does not check on the client: name length and pattern,
    the hyperparameter, tag and metric-definition limits, reserved tag keys, KeepAlive above 3600 s, and warm
    pools asked for together with spot instances or a heterogeneous cluster (WARM_POOLS, "Considerations").
    """
    problems = []
    name = str(request.get("TrainingJobName", ""))
    if not (1 <= len(name) <= JOB_NAME_MAX and JOB_NAME_PATTERN.fullmatch(name)):
        problems.append(f"Value '{name}' at 'trainingJobName' failed to satisfy constraint: Member must satisfy "
                        f"regular expression pattern: {JOB_NAME_PATTERN.pattern} and have length at most "
                        f"{JOB_NAME_MAX}")
    hps = request.get("HyperParameters") or {}
    if len(hps) > MAX_HYPERPARAMETERS:
        problems.append(f"HyperParameters has {len(hps)} entries (at most {MAX_HYPERPARAMETERS})")
    for key, value in hps.items():
        if len(key) > MAX_HYPERPARAMETER_KEY or len(str(value)) > MAX_HYPERPARAMETER_VALUE:
            problems.append(f"hyperparameter {key[:40]}: key or value too long ({MAX_HYPERPARAMETER_KEY} / "
                            f"{MAX_HYPERPARAMETER_VALUE} characters)")
    tags = request.get("Tags") or []
    if len(tags) > MAX_TAGS:
        problems.append(f"Tags has {len(tags)} entries (at most {MAX_TAGS})")
    for tag in tags:
        key = str(tag.get("Key", ""))
        if key.lower().startswith(RESERVED_TAG_PREFIX):
            problems.append(f"System prefix '{RESERVED_TAG_PREFIX}' reserved for AWS usage in tag key: {key}")
        if len(key) > MAX_TAG_KEY or len(str(tag.get("Value", ""))) > MAX_TAG_VALUE:
            problems.append(f"tag {key[:40]}: key or value too long ({MAX_TAG_KEY} / {MAX_TAG_VALUE} characters)")
    definitions = (request.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []
    if len(definitions) > MAX_METRIC_DEFINITIONS:
        problems.append(f"MetricDefinitions has {len(definitions)} entries (at most {MAX_METRIC_DEFINITIONS})")
    resources = request.get("ResourceConfig") or {}
    keep_alive = resources.get("KeepAlivePeriodInSeconds")
    if keep_alive is not None and not 0 <= int(keep_alive) <= MAX_KEEP_ALIVE_SECONDS:
        problems.append(f"KeepAlivePeriodInSeconds {keep_alive} is outside 0..{MAX_KEEP_ALIVE_SECONDS}")
    if keep_alive and request.get("EnableManagedSpotTraining"):
        problems.append("warm pools (KeepAlivePeriodInSeconds) cannot be used with managed spot training")
    if keep_alive and resources.get("InstanceGroups"):
        problems.append("warm pools (KeepAlivePeriodInSeconds) cannot be used with heterogeneous clusters")
    return problems


# -- warm pools -------------------------------------------------------------------------------------------------
# WARM_POOLS, "Matching training jobs": "The next training job is a match if the following values are identical:
# RoleArn; ResourceConfig InstanceCount, InstanceType, VolumeKmsKeyId, VolumeSizeInGB; VpcConfig SecurityGroupIds,
# Subnets; EnableInterContainerTrafficEncryption; EnableNetworkIsolation". KeepAlive is not among them.
WARM_POOL_MATCH_FIELDS = ("RoleArn", "ResourceConfig.InstanceCount", "ResourceConfig.InstanceType",
                          "ResourceConfig.VolumeKmsKeyId", "ResourceConfig.VolumeSizeInGB",
                          "VpcConfig.SecurityGroupIds", "VpcConfig.Subnets",
                          "EnableInterContainerTrafficEncryption", "EnableNetworkIsolation")
_BOOLEAN_FIELDS = ("EnableInterContainerTrafficEncryption", "EnableNetworkIsolation")
_LIST_FIELDS = ("VpcConfig.SecurityGroupIds", "VpcConfig.Subnets")


def field_value(document: Mapping[str, Any], dotted: str) -> Any:
    """`document["A"]["B"]` for "A.B"; None where any part is absent."""
    value: Any = document
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def warm_pool_match_key(request: Mapping[str, Any]) -> tuple[Any, ...]:
    """The values a job must share with a pool's last job to take that pool (WARM_POOLS, "Matching training jobs").

    Compared as the request states them, with the API's defaults for what it leaves out: an absent boolean is
    false (BOTOCORE_MODEL: both are optional booleans, off unless set), an absent key or list is empty, and an
    absent InstanceCount is 1. So a request that omits EnableNetworkIsolation matches one that sets it False.
    """
    key: list[Any] = []
    for dotted in WARM_POOL_MATCH_FIELDS:
        value = field_value(request, dotted)
        if dotted in _BOOLEAN_FIELDS:
            value = bool(value)
        elif dotted in _LIST_FIELDS:
            value = tuple(value or ())
        elif dotted == "ResourceConfig.InstanceCount":
            value = int(value or 1)
        elif value is None:
            value = ""
        key.append(value)
    return tuple(key)


def warm_pool_mismatches(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Which matching fields differ between two requests (empty: one can take the other's pool)."""
    return [f for f, x, y in zip(WARM_POOL_MATCH_FIELDS, warm_pool_match_key(a), warm_pool_match_key(b), strict=True)
            if x != y]


def keeps_warm_pool(status: str, launched: bool, failure_reason: str | None = None) -> bool:
    """Whether a job with KeepAlivePeriodInSeconds > 0 leaves a pool when it ends (WARM_POOLS, "Warm pool creation").

    Completed: yes. Stopped: only "after a cluster is already launched". Failed: only "due to an algorithm or
    client error"; any other failure "might compromise the health of the cluster" and leaves none. AWS's
    FailureReason starts with the error's kind ("AlgorithmError: ...", "ClientError: ..."). The warm-pool
    quota decides separately whether the pool is kept (`WARM_POOL_QUOTA`).
    """
    if status == "Completed":
        return True
    if status == "Stopped":
        return launched
    if status == "Failed":
        return launched and (failure_reason or "").startswith(("AlgorithmError", "ClientError"))
    return False


def training_quota_name(instance_type: str) -> str:
    """The Service Quotas name of training instances of a type (as ResourceLimitExceeded names it)."""
    return f"{instance_type} for training job usage"


def warm_pool_quota_name(instance_type: str) -> str:
    """The Service Quotas name of warm-pool instances of a type (WARM_POOL_QUOTA: search "warm pool"; default 0).

    WARM_POOL_QUOTA: "If a training job is created with KeepAlivePeriodInSeconds specified, but you did not
    request a warm pool limit increase, then a warm pool is not retained" (no error), and "All warm pool instance
    usage counts toward your SageMaker training resource limit".
    """
    return f"{instance_type} for training warm pool usage"


def resource_limit_message(quota: str, limit: int, used: int, delta: int) -> str:
    """ResourceLimitExceeded's message on CreateTrainingJob, in AWS's words (QUOTA_MESSAGE_SOURCE)."""
    return (f"The account-level service limit '{quota}' is {limit} Instances, with current utilization of {used} "
            f"Instances and a request delta of {delta} Instances. Please use AWS Service Quotas to request an increase "
            "for this quota. If AWS Service Quotas is not available, contact AWS support to request an increase for "
            "this quota.")


# -- request rates -------------------------------------------------------------------------------------------------
# TRAINING_QUOTAS: "Maximum number of CreateTrainingJob requests that you can make, per second, in this account in
# the current Region: 1 TPS". Beyond a rate the API answers ThrottlingException "Rate exceeded" (botocore's retry
# modes treat it as throttling). ListTrainingJobs: about 2/s, not adjustable, is a third-party report, not AWS's:
# an ASSUMPTION. AWS publishes no rate for DescribeTrainingJob.
CREATE_TRAINING_JOB_RATE = 1.0
LIST_TRAINING_JOBS_RATE = 2.0  # ASSUMPTION (see above)
THROTTLING_CODE, THROTTLING_MESSAGE = "ThrottlingException", "Rate exceeded"


# -- billing ---------------------------------------------------------------------------------------------------------
def billable_seconds(training_start: float | None, training_end: float | None) -> float:
    """DESCRIBE_TRAINING_JOB, TrainingStartTime: "You are billed for the time interval between this time and the
    value of TrainingEndTime. The start time in CloudWatch Logs might be later than this time. The difference is
    due to the time it takes to download the training data and to the size of the training container." So billing
    starts before the image and data downloads; a job that never started on instances bills nothing."""
    if training_start is None or training_end is None:
        return 0.0
    return max(0.0, training_end - training_start)


# -- outputs -----------------------------------------------------------------------------------------------------------
def output_locations(request: Mapping[str, Any], job_name: str) -> dict[str, str]:
    """Where a job's /opt/ml/model and /opt/ml/output/data land in S3, by OutputDataConfig.CompressionType.

    OUTPUT_DATA_CONFIG: CompressionType GZIP (the default) or NONE. UNCOMPRESSED_OUTPUT: by default "they're
    uploaded to your Amazon S3 bucket as compressed files" (`<path>/<job>/output/model.tar.gz` and
    `output.tar.gz`); with NONE model and data are uploaded as uncompressed files, so there is NO output.tar.gz.
    Under which prefixes the uncompressed files go is not documented: `<job>/output/model/` and
    `<job>/output/data/` here (an ASSUMPTION; nothing in warmcv reads them).
    """
    config = request.get("OutputDataConfig") or {}
    base = f"{str(config.get('S3OutputPath', '')).rstrip('/')}/{job_name}/output"
    if str(config.get("CompressionType", "GZIP")).upper() == "NONE":
        return {"model": f"{base}/model/", "output": f"{base}/data/", "compression": "NONE"}
    return {"model": f"{base}/model.tar.gz", "output": f"{base}/output.tar.gz", "compression": "GZIP"}


# -- checkpoints ---------------------------------------------------------------------------------------------------
# CHECKPOINTS: "Existing checkpoints in S3 are written to the SageMaker AI container at the start of the job ...
# Checkpoints added to the S3 folder after the job has started are not copied to the training container. SageMaker
# AI also writes new checkpoints from the container to S3 during training. If a checkpoint is deleted in the
# SageMaker AI container, it will also be deleted in the S3 folder." CHECKPOINT_CONFIG: LocalPath "The default
# directory is /opt/ml/checkpoints/". ASSUMPTION (not documented): how soon after a file is written it reaches S3;
# the HTTP fake copies every `FakeTiming.checkpoint_sync` seconds and once more when the container exits, and
# warmcv's driver does not rely on it (it also puts each snapshot to S3 itself, warmcv.tuning.checkpoint).
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"


def checkpoint_location(request: Mapping[str, Any]) -> tuple[str, str] | None:
    """(S3 URI, local path) of a job's CheckpointConfig, or None without one (CHECKPOINT_CONFIG)."""
    config = request.get("CheckpointConfig")
    if not config or not config.get("S3Uri"):
        return None
    return str(config["S3Uri"]).rstrip("/"), str(config.get("LocalPath") or CHECKPOINT_LOCAL_PATH)


# -- the tuner (automatic model tuning) ---------------------------------------------------------------------------
# TUNING_LIMITS (current page): parallel training jobs per tuning job 10 by default, raisable to 100; training jobs
# per tuning job 750 (Bayesian, Hyperband, Grid; Random search raisable to 10,000); a tuning job runs at most 30
# days. Older versions of the page said 500 training jobs per tuning job.
TUNING_MAX_TRAINING_JOBS = 750
TUNING_MAX_TRAINING_JOBS_RANDOM = 10_000
TUNING_DEFAULT_PARALLEL = 10
TUNING_MAX_PARALLEL = 100
TUNING_MAX_RUNTIME_SECONDS = 30 * 86400


def tuner_limit_problems(max_jobs: int, parallel: int, runtime_seconds: float | None = None,
                         strategy: str = "Bayesian") -> list[str]:
    """What a tuning job of `max_jobs` trials, `parallel` at once, for `runtime_seconds`, exceeds (TUNING_LIMITS)."""
    problems = []
    limit = TUNING_MAX_TRAINING_JOBS_RANDOM if strategy == "Random" else TUNING_MAX_TRAINING_JOBS
    if max_jobs > limit:
        problems.append(f"{max_jobs:,} trials exceed the tuner's {limit:,} training jobs per tuning job"
                        + (" (Random search can be raised to 10,000)" if strategy != "Random" else "")
                        + ": split the search into several tuning jobs (warm start from the previous one)")
    if parallel > TUNING_MAX_PARALLEL:
        problems.append(f"{parallel} parallel trials exceed the tuner's maximum of {TUNING_MAX_PARALLEL} parallel "
                        "training jobs per tuning job")
    elif parallel > TUNING_DEFAULT_PARALLEL:
        problems.append(f"{parallel} parallel trials exceed the tuner's default of {TUNING_DEFAULT_PARALLEL} parallel "
                        f"training jobs per tuning job: request an increase (up to {TUNING_MAX_PARALLEL}) first")
    if runtime_seconds is not None and runtime_seconds > TUNING_MAX_RUNTIME_SECONDS:
        problems.append(f"the run takes {runtime_seconds / 86400:.1f} days, past the tuner's maximum of 30 days per "
                        "tuning job: split it, or run more trials in parallel")
    return problems

