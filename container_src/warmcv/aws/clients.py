"""boto3 clients configured for a coordinator: botocore's own retry modes do the throttling work.

Two SageMaker clients, because two kinds of call need different patience:
- `patient` (adaptive mode, 8 attempts): creates and polls. Adaptive mode adds a client-side token
  bucket that slows this process down after ThrottlingException, on top of standard mode's jittered
  exponential backoff. (`total_max_attempts` counts the first request; `max_attempts` would not.)
- `prompt` (standard mode, 2 attempts, 3 s connect and 10 s read timeouts): self-discovery and stopping.
  After SIGTERM SageMaker kills the container 120 s later, so one stop call may take at most about 21 s
  even against an API that hangs, and the runner starts no new stop call after its 60 s budget: every
  stop is sent, or given up on, within about 81 s.
Endpoints come from botocore's usual configuration (AWS_ENDPOINT_URL_SAGEMAKER / AWS_ENDPOINT_URL_S3
are honoured), so a test points the same code at a fake service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from warmcv import __version__

PATIENT_ATTEMPTS = 8
PROMPT_ATTEMPTS = 2


def _config(mode: str, attempts: int, connect_timeout: float, read_timeout: float) -> Any:
    from botocore.config import Config

    return Config(retries={"mode": mode, "total_max_attempts": attempts}, connect_timeout=connect_timeout,
                  read_timeout=read_timeout, user_agent_extra=f"warmcv/{__version__}")


@dataclass(frozen=True)
class CoordinatorClients:
    patient: Any  # sagemaker client for creates and polls
    prompt: Any  # sagemaker client for self-discovery and stops
    s3: Any  # s3 client for the fold jobs' output archives (and the driver's checkpoint and result)
    creator: Any = None  # the driver's: creates it paces itself (standard mode, no client-side rate limiting)


def coordinator_clients(region: str, driver: bool = False) -> CoordinatorClients:
    import boto3

    session = boto3.session.Session(region_name=region)
    return CoordinatorClients(
        patient=session.client("sagemaker", config=_config("adaptive", PATIENT_ATTEMPTS, 10, 60)),
        prompt=session.client("sagemaker", config=_config("standard", PROMPT_ATTEMPTS, 3, 10)),
        s3=session.client("s3", config=_config("standard", 5, 10, 60)),
        creator=session.client("sagemaker", config=_config("standard", PATIENT_ATTEMPTS, 10, 60)) if driver else None,
    )
