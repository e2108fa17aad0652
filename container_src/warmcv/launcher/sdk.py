"""Loading the SageMaker Python SDK v3 so that building a definition is offline and needs no credentials.

Three things in the SDK (3.27.0) reach for the network or fail without AWS configuration, each handled
here once (see ../shared reference notes on the SDK):
- importing `sagemaker.mlops.workflow` / `sagemaker.serve` creates a boto3 client at class definition,
  which raises NoRegionError without a region: AWS_DEFAULT_REGION is set before the first import;
- ModelTrainer and ModelBuilder call IAM to validate the role when built: SAGEMAKER_VALIDATE_ROLE=false
  (the config already checked that the role is a full ARN, and a bare name would call iam:GetRole);
- telemetry: opted out through the documented `TelemetryOptOut` config key.
Every S3 location is given explicitly, so `default_bucket()` (HeadBucket/CreateBucket) is never called.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from warmcv.launcher.config import LauncherConfig

SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def prepare_environment(region: str) -> None:
    """Must run before the first `sagemaker.*` import."""
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    # The SDK logs its config lookups at INFO: keep stdout clean for the JSON we print.
    for name in ("sagemaker.config", "sagemaker", "sagemaker.core", "sagemaker.train", "sagemaker.mlops",
                 "sagemaker.serve"):
        logging.getLogger(name).setLevel(logging.WARNING)


def pipeline_session(config: LauncherConfig) -> Any:
    """A PipelineSession for the config's region; no call is made until a pipeline is upserted or started."""
    prepare_environment(config.aws.region)
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    bucket = config.s3.root.split("/")[2]
    return PipelineSession(boto_session=boto3.Session(region_name=config.aws.region), default_bucket=bucket,
                           sagemaker_config=SDK_CONFIG)

