"""Least-privilege IAM policy documents for the roles a warmcv run uses, generated from the config.

Four principals, each allowed only what its code calls, on the run's own resources:
- `job-role` (aws.role_arn): every job's role, so also the coordinator's. Reads the data and writes under
  s3.root, pulls the image, writes logs, and, as coordinator, creates, describes, stops and tags its fold
  jobs and passes itself to them (a fold job must have the coordinator's role to match its warm pool); with
  [mlflow], logs its trial to the tracking server (`sagemaker-mlflow:*` on that server only).
- `pipeline-role` (aws.pipeline_role_arn): what SageMaker Pipelines does for each step type of the
  definition (STEP_ACTIONS), invoking the two Lambda functions, passing the job role.
- `lambda-role` (aws.lambda_role_arn): the handlers' calls (best trial, warm-pool release) and their logs.
- `launcher`: whoever runs `warmcv pipeline upsert|start|deploy-lambdas`, `tune --sagemaker` and
  `release-warm-pools` from a laptop or CI.
Tests check the documents' structure, and that every API operation the code calls is allowed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from warmcv.launcher.config import LauncherConfig

# What SageMaker Pipelines calls, with the pipeline role, to run each step type of the definition.
STEP_ACTIONS: dict[str, tuple[str, ...]] = {
    "Processing": ("sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob"),
    "Tuning": ("sagemaker:CreateHyperParameterTuningJob", "sagemaker:DescribeHyperParameterTuningJob",
               "sagemaker:StopHyperParameterTuningJob", "sagemaker:ListTrainingJobsForHyperParameterTuningJob"),
    "Training": ("sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"),
    "Model": ("sagemaker:CreateModel", "sagemaker:DescribeModel"),
    "RegisterModel": ("sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage",
                      "sagemaker:CreateModelPackageGroup", "sagemaker:DescribeModelPackageGroup"),
    "Transform": ("sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob"),
    "Lambda": ("lambda:InvokeFunction",),
    # Evaluated by SageMaker Pipelines itself: no API call on the role's behalf.
    "Condition": (),
    "Fail": (),
}
# What the coordinator calls on its fold jobs (warmcv.runners.sagemaker and warmcv.aws; docs/sagemaker-fold-runner.md).
COORDINATOR_ACTIONS = ("sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
                       "sagemaker:AddTags", "sagemaker:ListTags")
# ... and how it watches them all at once; ListTrainingJobs has no resource-level permissions ("*" only).
COORDINATOR_LIST_ACTIONS = ("sagemaker:ListTrainingJobs",)
ECR_PULL = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
LOG_WRITE = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")
_ECR_IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@]+)")


def _partition(config: LauncherConfig) -> str:
    return config.aws.role_arn.split(":")[1] if config.aws.role_arn.count(":") >= 2 else "aws"


def _s3_parts(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def _statement(sid: str, actions: Iterable[str], resources: Iterable[str] | str,
               condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)),
                                 "Resource": resources if isinstance(resources, str) else sorted(set(resources))}
    if condition:
        statement["Condition"] = condition
    return statement


def _document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


class Arns:
    """ARN builders for the run's account, region and partition."""

    def __init__(self, config: LauncherConfig):
        self.partition = _partition(config)
        self.region = config.aws.region
        self.account = config.account

    def sagemaker(self, resource: str) -> str:
        return f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:{resource}"

    def s3_object(self, uri: str) -> str:
        bucket, key = _s3_parts(uri)
        # "prefix/" stays a folder ("prefix/*" does not match "prefix2/..."); a file name matches itself
        return f"arn:{self.partition}:s3:::{bucket}/{key}*"

    def s3_bucket(self, uri: str) -> str:
        return f"arn:{self.partition}:s3:::{_s3_parts(uri)[0]}"

    def function(self, name: str) -> str:
        return f"arn:{self.partition}:lambda:{self.region}:{self.account}:function:{name}"

    def log_group(self, prefix: str) -> str:
        return f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:{prefix}*"


def _s3_read(arns: Arns, sid: str, uris: Iterable[str]) -> list[dict[str, Any]]:
    uris = [u for u in uris if u]
    statements = [_statement(sid + "Objects", ["s3:GetObject"], [arns.s3_object(u) for u in uris])]
    by_bucket: dict[str, set[str]] = {}
    for uri in uris:
        bucket, key = _s3_parts(uri)
        by_bucket.setdefault(bucket, set()).add(key + "*")
    for index, (bucket, prefixes) in enumerate(sorted(by_bucket.items())):
        statements.append(_statement(f"{sid}List{index}", ["s3:ListBucket"], f"arn:{arns.partition}:s3:::{bucket}",
                                     {"StringLike": {"s3:prefix": sorted(prefixes)}}))
    return statements


def image_repository_arn(config: LauncherConfig) -> str:
    match = _ECR_IMAGE.match(config.image_uri)
    if not match:
        return "*"  # not an ECR image: nothing to scope the pull to (and nothing to pull from ECR)
    account, region, repository = match.groups()
    return f"arn:{_partition(config)}:ecr:{region}:{account}:repository/{repository}"


# The MLflow REST calls a coordinator makes through the sagemaker-mlflow plugin, on the tracking server it
# names (Service Authorization Reference, "Actions, resources, and condition keys for Amazon SageMaker with
# MLflow": every action takes the mlflow-tracking-server resource; developer guide, "Set up IAM permissions for
# MLflow": grant sagemaker-mlflow actions to the role that calls the MLflow SDK).
MLFLOW_ACTIONS = ("sagemaker-mlflow:*",)


def job_role_policy(config: LauncherConfig) -> dict[str, Any]:
    arns = Arns(config)
    tracking: list[dict[str, Any]] = []
    if config.mlflow.tracking_server_arn:
        tracking.append(_statement("CoordinatorLogsToMlflow", MLFLOW_ACTIONS, config.mlflow.tracking_server_arn))
    driver = []
    if config.tuning.strategy == "driver":
        # The driver keeps its two newest study snapshots and deletes older ones (warmcv.tuning.checkpoint).
        driver.append(_statement("DriverPrunesCheckpoints", ["s3:DeleteObject"],
                                 arns.s3_object(config.uri("checkpoints") + "/")))
    return _document(
        *_s3_read(arns, "ReadData", [config.s3.input, config.s3.batch_input, config.s3.prepared, config.s3.root]),
        _statement("WriteRunOutputs", ["s3:PutObject", "s3:AbortMultipartUpload"], arns.s3_object(config.s3.root)),
        _statement("PullImage", ECR_PULL, image_repository_arn(config)),
        _statement("EcrLogin", ["ecr:GetAuthorizationToken"], "*"),
        _statement("Logs", LOG_WRITE, arns.log_group("/aws/sagemaker/")),
        _statement("Metrics", ["cloudwatch:PutMetricData"], "*",
                   {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}),
        _statement("CoordinatorFoldJobs", COORDINATOR_ACTIONS, arns.sagemaker("training-job/*")),
        _statement("CoordinatorWatchesFoldJobs", COORDINATOR_LIST_ACTIONS, "*"),
        _statement("CoordinatorPassesItsRole", ["iam:PassRole"], config.aws.role_arn,
                   {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}),
        *tracking,
        *driver,
    )


def pipeline_functions(config: LauncherConfig) -> list[str]:
    """The Lambda functions the definition invokes: the best trial's (tuner strategy) and the release (if on)."""
    functions = [config.pipeline.best_hyperparameters_lambda] if config.tuning.strategy == "amt" else []
    if config.pipeline.release_warm_pools:
        functions.append(config.pipeline.release_warm_pools_lambda)
    return functions


def pipeline_role_policy(config: LauncherConfig) -> dict[str, Any]:
    arns = Arns(config)
    resources = {
        "Processing": ["processing-job/*"], "Tuning": ["hyper-parameter-tuning-job/*", "training-job/*"],
        "Training": ["training-job/*"], "Model": ["model/*"],
        "RegisterModel": ["model-package/*", "model-package-group/*"], "Transform": ["transform-job/*"],
    }
    statements = [_statement(f"{step}Step", actions, [arns.sagemaker(r) for r in resources[step]])
                  for step, actions in STEP_ACTIONS.items() if step != "Lambda" and actions]
    every = sorted({arns.sagemaker(r) for rs in resources.values() for r in rs})
    functions = pipeline_functions(config)
    statements += [_statement("TagJobs", ["sagemaker:AddTags", "sagemaker:ListTags"], every)]
    if functions:
        statements.append(_statement("LambdaStep", STEP_ACTIONS["Lambda"], [arns.function(f) for f in functions]))
    if config.tuning.strategy == "driver":
        # JsonGet: SageMaker Pipelines reads the driver's result from S3 with the pipeline role.
        statements.append(_statement("ReadDriverResult", ["s3:GetObject"],
                                     arns.s3_object(config.uri("evaluation") + "/")))
    statements.append(_statement("PassJobRole", ["iam:PassRole"], config.aws.role_arn,
                                 {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))
    return _document(*statements)


def lambda_role_policy(config: LauncherConfig) -> dict[str, Any]:
    arns = Arns(config)
    functions = [config.pipeline.best_hyperparameters_lambda, config.pipeline.release_warm_pools_lambda]
    return _document(
        _statement("BestTrial", ["sagemaker:DescribeHyperParameterTuningJob", "sagemaker:DescribeTrainingJob"],
                   [arns.sagemaker("hyper-parameter-tuning-job/*"), arns.sagemaker("training-job/*")]),
        _statement("ReadTrialModels", ["s3:GetObject"], arns.s3_object(config.uri("tuning") + "/")),
        _statement("WriteStatistics", ["s3:PutObject"], arns.s3_object(config.uri("evaluation") + "/")),
        # ListTrainingJobs has no resource-level permissions: "*" is the only resource it accepts.
        _statement("FindWarmPools", ["sagemaker:ListTrainingJobs"], "*"),
        _statement("ReleaseWarmPools", ["sagemaker:ListTags", "sagemaker:UpdateTrainingJob"],
                   arns.sagemaker("training-job/*")),
        _statement("Logs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                   [arns.log_group(f"/aws/lambda/{f}") for f in functions]),
    )


def launcher_policy(config: LauncherConfig) -> dict[str, Any]:
    arns = Arns(config)
    pipeline = arns.sagemaker(f"pipeline/{config.pipeline.name.lower()}")
    functions = [config.pipeline.best_hyperparameters_lambda, config.pipeline.release_warm_pools_lambda]
    statements = [
        _statement("Pipeline", ["sagemaker:CreatePipeline", "sagemaker:UpdatePipeline", "sagemaker:DescribePipeline",
                                "sagemaker:StartPipelineExecution", "sagemaker:AddTags", "sagemaker:ListTags"],
                   [pipeline, pipeline + "/*"]),
        _statement("Executions", ["sagemaker:DescribePipelineExecution", "sagemaker:ListPipelineExecutionSteps"],
                   pipeline + "/execution/*"),
        _statement("TuneWithoutPipeline", ["sagemaker:CreateHyperParameterTuningJob",
                                           "sagemaker:DescribeHyperParameterTuningJob", "sagemaker:AddTags"],
                   arns.sagemaker("hyper-parameter-tuning-job/*")),
        # `warmcv tune --sagemaker --strategy driver` drives the fold jobs from this machine, as a coordinator does.
        _statement("DriveFoldJobs", COORDINATOR_ACTIONS, arns.sagemaker("training-job/*")),
        *_s3_read(arns, "ReadFoldResults", [config.s3.prepared, config.uri("tuning") + "/"]),
        _statement("FindWarmPools", ["sagemaker:ListTrainingJobs"], "*"),
        _statement("ReleaseWarmPools", ["sagemaker:ListTags", "sagemaker:UpdateTrainingJob"],
                   arns.sagemaker("training-job/*")),
        _statement("DeployLambdas", ["lambda:GetFunction", "lambda:CreateFunction", "lambda:UpdateFunctionCode",
                                     "lambda:UpdateFunctionConfiguration"], [arns.function(f) for f in functions]),
        _statement("PassPipelineAndJobRoles", ["iam:PassRole"], [config.aws.pipeline_role_arn, config.aws.role_arn],
                   {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}),
    ]
    if config.aws.lambda_role_arn:
        statements.append(_statement("PassLambdaRole", ["iam:PassRole"], config.aws.lambda_role_arn,
                                     {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}))
    return _document(*statements)


def trust_policy(service: str) -> dict[str, Any]:
    return _document({"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"})


def policies(config: LauncherConfig) -> dict[str, dict[str, Any]]:
    """Every document, by file name stem."""
    return {
        "job-role": job_role_policy(config),
        "job-role.trust": trust_policy("sagemaker.amazonaws.com"),
        "pipeline-role": pipeline_role_policy(config),
        "pipeline-role.trust": trust_policy("sagemaker.amazonaws.com"),
        "lambda-role": lambda_role_policy(config),
        "lambda-role.trust": trust_policy("lambda.amazonaws.com"),
        "launcher": launcher_policy(config),
    }


def write_policies(config: LauncherConfig, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, document in policies(config).items():
        path = out / f"{stem}.json"
        path.write_text(json.dumps(document, indent=2) + "\n")
        written.append(path)
    return written


def allowed_actions(document: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for statement in document["Statement"]:
        if statement.get("Effect") == "Allow":
            actions = statement["Action"]
            found.update([actions] if isinstance(actions, str) else actions)
    return found
