"""The server's settings, read from the environment SageMaker gives a serving container.

SageMaker configures a model server only through environment variables (CreateModel's Environment,
and the ones batch transform adds), so each one is checked here and a bad value fails the start with
a message naming the variable, instead of a server that behaves differently from what was asked.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from warmcv.contract import ContainerPaths
from warmcv.errors import UserInputError

DEFAULT_PORT = 8080
# SageMaker's own default for MaxPayloadInMB and the real-time endpoint request limit.
DEFAULT_MAX_PAYLOAD_MB = 6
MAX_PAYLOAD_MB_LIMIT = 100
OUTPUT_KINDS = ("probabilities", "labels")
# SageMaker waits up to 600 s for one /invocations answer (batch transform can be set higher).
DEFAULT_TIMEOUT_SECONDS = 600


def usable_cpus() -> int:
    """CPUs this process may run on (a container's cpuset), not the host's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _int_env(env: Mapping[str, str], name: str, low: int, high: int | None = None) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
        raise UserInputError(f"environment variable {name}={raw!r} is not valid (allowed: {allowed})")
    return value


@dataclass(frozen=True)
class ServeSettings:
    model_dir: Path
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    # Concurrent requests we advertise and plan for (SAGEMAKER_MAX_CONCURRENT_TRANSFORMS or the CPUs).
    concurrency: int = 1
    # gunicorn worker processes; each loads the model once and predicts with `predict_threads` threads.
    workers: int = 1
    # Request threads per worker: enough for its share of the concurrency, plus one so /ping is
    # answered while a long prediction runs (SageMaker gives /ping 2 s).
    threads: int = 2
    predict_threads: int = 1
    # None: no limit (MaxPayloadInMB=0, chunked requests of any size).
    max_payload_mb: int | None = DEFAULT_MAX_PAYLOAD_MB
    default_output: str = "probabilities"
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS

    @property
    def max_payload_bytes(self) -> int | None:
        return None if self.max_payload_mb is None else self.max_payload_mb * 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, model_dir: Path | None = None,
                 host: str | None = None, port: int | None = None, workers: int | None = None,
                 cpus: int | None = None) -> ServeSettings:
        """Settings from SageMaker's variables; explicit arguments (command-line options) win."""
        env = os.environ if env is None else env
        cpus = cpus or usable_cpus()
        port = port or _int_env(env, "SAGEMAKER_BIND_TO_PORT", 1, 65535) or DEFAULT_PORT
        payload = _int_env(env, "SAGEMAKER_MAX_PAYLOAD_IN_MB", 0, MAX_PAYLOAD_MB_LIMIT)
        payload = DEFAULT_MAX_PAYLOAD_MB if payload is None else (payload or None)
        concurrency = _int_env(env, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", 1) or cpus
        # More processes than CPUs only adds memory: LightGBM prediction is CPU-bound. Extra concurrent
        # requests wait in a worker's threads instead.
        workers = workers or _int_env(env, "SAGEMAKER_MODEL_SERVER_WORKERS", 1) or min(concurrency, cpus)
        output = env.get("WARMCV_SERVE_OUTPUT", "").strip().lower() or "probabilities"
        if output not in OUTPUT_KINDS:
            raise UserInputError(f"environment variable WARMCV_SERVE_OUTPUT={output!r} is not valid "
                                 f"(allowed: {', '.join(OUTPUT_KINDS)})")
        timeout = _int_env(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 1) or DEFAULT_TIMEOUT_SECONDS
        if model_dir is None:
            model_dir = ContainerPaths.from_env().model_dir
        return cls(
            model_dir=Path(model_dir), host=host or "0.0.0.0", port=port, concurrency=concurrency,
            workers=workers, threads=math.ceil(concurrency / workers) + 1,
            predict_threads=max(1, cpus // workers), max_payload_mb=payload, default_output=output,
            timeout_seconds=timeout,
        )

    def execution_parameters(self) -> dict[str, object]:
        """What GET /execution-parameters returns: batch transform's defaults when the job sets none."""
        return {
            "MaxConcurrentTransforms": self.concurrency,
            "BatchStrategy": "MULTI_RECORD",
            # 0 is SageMaker's value for "no limit, send chunked".
            "MaxPayloadInMB": self.max_payload_mb or 0,
        }
