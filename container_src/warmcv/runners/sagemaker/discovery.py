"""The coordinator finds its own training job: name, region, settings, tags and how much runtime it has left.

Inside a SageMaker training job, TRAINING_JOB_NAME and TRAINING_JOB_ARN name the job (the region is the
ARN's fourth field). One DescribeTrainingJob on itself gives everything its fold jobs copy; ListTags its
tags; its StoppingCondition and TrainingStartTime its deadline; its CreationTime the moment after which
all its fold jobs were created (the runner lists only jobs created since). Errors here are the user's to
fix (network isolation, a missing permission), so they become messages that say what to change.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from warmcv.aws.fold_jobs import FoldJobTemplate
from warmcv.aws.training_jobs import AccessDenied, ApiError, TrainingJobsApi, TransientError
from warmcv.clock import Clock
from warmcv.declarations import HyperparameterValues
from warmcv.errors import UserInputError
from warmcv.runners.sagemaker.timing import Pacer, Timing

log = logging.getLogger(__name__)

REQUIRED_PERMISSIONS = ("sagemaker:CreateTrainingJob, sagemaker:DescribeTrainingJob, sagemaker:StopTrainingJob, "
                        "sagemaker:AddTags, sagemaker:ListTags, sagemaker:ListTrainingJobs (resource \"*\"), "
                        "iam:PassRole on its own role, and s3:GetObject (plus kms:Decrypt if encrypted) on the "
                        "output path")
CONNECTION_CODES = ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError",
                    "ProxyConnectionError")


@dataclass(frozen=True)
class Coordinator:
    """What a coordinator learned about its own job."""

    name: str
    template: FoldJobTemplate  # what its fold jobs copy
    deadline: float | None  # on the runner's clock: stop the folds then (MaxRuntime less a margin)
    max_runtime: int | None  # its MaxRuntimeInSeconds, for messages
    created: datetime | None  # its CreationTime: every fold job it (or an earlier attempt) made is younger


def region_from_arn(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) < 6 or not parts[3]:
        raise UserInputError(f"TRAINING_JOB_ARN={arn!r} is not a training job ARN (arn:aws:sagemaker:<region>:...)")
    return parts[3]


def job_from_environment() -> tuple[str, str]:
    """(name, ARN) of the training job this process runs in; a clear error outside one."""
    name, arn = os.environ.get("TRAINING_JOB_NAME"), os.environ.get("TRAINING_JOB_ARN")
    if not name or not arn:
        raise UserInputError(
            "fold_runner=sagemaker launches fold jobs from inside a SageMaker training job, but "
            "TRAINING_JOB_NAME and TRAINING_JOB_ARN are not set, so this is not one; use fold_runner=local "
            "(or auto, which picks local here)"
        )
    return name, arn


def epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def remaining_runtime(me: Mapping[str, Any], clock: Clock) -> float | None:
    """Seconds left of MaxRuntimeInSeconds, counted from TrainingStartTime (or CreationTime before it)."""
    limit = (me.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    started = epoch(me.get("TrainingStartTime")) or epoch(me.get("CreationTime"))
    if not limit or started is None:
        return None
    return float(limit) - max(0.0, clock.time() - started)


def describe_self(api: TrainingJobsApi, name: str, clock: Clock, timing: Timing,
                  rng: random.Random) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """DescribeTrainingJob on this job itself (and ListTags): (its description, its tags).

    Errors are the user's to fix (network isolation, a missing permission) and say what to change."""
    pacer = Pacer(timing, rng)
    try:
        me = with_retries(lambda attempt: api.describe_training_job(name, prompt=attempt == 1), clock, pacer)
    except TransientError as error:
        if error.code in CONNECTION_CODES:
            raise UserInputError(
                f"job {name} cannot reach the SageMaker API: {error}. A coordinator or driver needs "
                "outbound access to the SageMaker API: no network isolation (EnableNetworkIsolation=false); in "
                "a VPC, a NAT gateway or a com.amazonaws.<region>.sagemaker.api interface endpoint (and S3 "
                "access for the fold results)"
            ) from None
        raise UserInputError(f"could not describe the job {name} itself: {error}") from None
    except AccessDenied as error:
        raise UserInputError(permission_message(error)) from None
    user_tags: list[dict[str, str]] = []
    try:
        user_tags = with_retries(lambda attempt: api.list_tags(me["TrainingJobArn"]), clock, pacer)
    except ApiError as error:
        log.warning("could not read the job's own tags (%s); fold jobs get warmcv's tags only", error)
    return me, user_tags


def deadline_of(me: Mapping[str, Any], clock: Clock, timing: Timing) -> tuple[float | None, float | None]:
    """(remaining runtime in seconds, the runner's deadline on `clock`), both None without a MaxRuntime."""
    remaining = remaining_runtime(me, clock)
    if remaining is None:
        return None, None
    log.info("runtime left: %.0f s (MaxRuntimeInSeconds %s); folds must finish within %.0f s", remaining,
             me["StoppingCondition"].get("MaxRuntimeInSeconds"), max(0.0, remaining - timing.deadline_margin))
    return remaining, clock.monotonic() + remaining - timing.deadline_margin


def discover_coordinator(api: TrainingJobsApi, name: str, hps: HyperparameterValues, clock: Clock, timing: Timing,
                         rng: random.Random) -> Coordinator:
    """DescribeTrainingJob on the coordinator itself (and ListTags), then its fold-job template and deadline."""
    me, user_tags = describe_self(api, name, clock, timing, rng)
    remaining, deadline = deadline_of(me, clock, timing)
    template = FoldJobTemplate.from_parent(me, hps["keep_alive_seconds"], user_tags,
                                           max_runtime_seconds=int(remaining) if remaining is not None else None)
    for note in template.notes:
        log.info("%s", note)
    created = me.get("CreationTime")
    return Coordinator(name, template, deadline, (me.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"),
                       created if isinstance(created, datetime) else None)


def with_retries(call: Callable[[int], Any], clock: Clock, pacer: Pacer, attempts: int = 6) -> Any:
    """Self-discovery is not urgent: ride out throttling with jittered backoff (connection errors fail at once).

    The first attempt goes to the prompt client, so an unreachable API (network isolation) is reported
    within seconds; later attempts use the patient one, whose adaptive mode slows down under throttling.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call(attempt)
        except TransientError as error:
            if error.code in CONNECTION_CODES or attempt == attempts:
                raise
            delay = pacer.backoff(attempt)
            log.info("%s; trying again in %.1f s", error, delay)
            clock.sleep(delay)
    raise AssertionError("unreachable")


def permission_message(error: ApiError) -> str:
    return (f"the job's role may not call {error.operation} ({error.aws_message}). A coordinator or driver needs "
            f"{REQUIRED_PERMISSIONS}; see docs/sagemaker-fold-runner.md")
