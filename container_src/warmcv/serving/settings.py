"""The server's settings, read from the environment SageMaker gives a serving container.

SageMaker configures a model server only through environment variables (CreateModel's Environment,
and the ones batch transform adds), so each one is checked here and a bad value fails the start with
a message naming the variable, instead of a server that behaves differently from what was asked.
"""

from __future__ import annotations

import os
import re
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
# A request body that stops arriving for this long is answered 408 and its connection closed. SageMaker
# sends bodies from the same network in milliseconds; this only frees the socket of a client that stalled.
DEFAULT_BODY_TIMEOUT_SECONDS = 60
# Upper bounds for the counts SageMaker leaves open (botocore's model gives MaxConcurrentTransforms only a
# minimum): assumptions far above any instance's CPUs, so an absurd value fails the start by name instead
# of planning a million threads or processes.
MAX_CONCURRENCY = 4096
MAX_WORKERS = 1024
# A day: an assumption well above InvocationsTimeoutInSeconds, the longest SageMaker waits for one answer
# (at most 3600 in botocore's model).
MAX_TIMEOUT_SECONDS = 86400


def usable_cpus() -> int:
    """CPUs this process may run on (a container's cpuset), not the host's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def bounded_int(raw: str, low: int, high: int) -> int | None:
    """`raw` as an integer from low to high, else None. Plain decimal digits only: int() would also
    take '1_0' as 10, and digits of other scripts."""
    text = raw.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def _int_env(env: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    value = bounded_int(raw, low, high)
    if value is None:
        raise UserInputError(f"environment variable {name}={raw!r} is not valid "
                             f"(allowed: an integer from {low} to {high})")
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
    # Requests one worker predicts at once (its share of the concurrency). More wait, fully received, for
    # a slot; /ping needs none (see gateway.py).
    prediction_slots: int = 1
    predict_threads: int = 1
    # None: no limit (MaxPayloadInMB=0, chunked requests of any size).
    max_payload_mb: int | None = DEFAULT_MAX_PAYLOAD_MB
    default_output: str = "probabilities"
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    body_timeout_seconds: int = DEFAULT_BODY_TIMEOUT_SECONDS

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
        concurrency = _int_env(env, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", 1, MAX_CONCURRENCY) or cpus
        # More processes than CPUs only adds memory: LightGBM prediction is CPU-bound. Extra concurrent
        # requests wait in a worker's threads instead.
        workers = workers or _int_env(env, "SAGEMAKER_MODEL_SERVER_WORKERS", 1, MAX_WORKERS) or min(concurrency, cpus)
        output = env.get("WARMCV_SERVE_OUTPUT", "").strip().lower() or "probabilities"
        if output not in OUTPUT_KINDS:
            raise UserInputError(f"environment variable WARMCV_SERVE_OUTPUT={output!r} is not valid "
                                 f"(allowed: {', '.join(OUTPUT_KINDS)})")
        timeout = _int_env(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 1, MAX_TIMEOUT_SECONDS) or DEFAULT_TIMEOUT_SECONDS
        body_timeout = _int_env(env, "WARMCV_SERVE_BODY_TIMEOUT", 1, 3600) or DEFAULT_BODY_TIMEOUT_SECONDS
        if model_dir is None:
            model_dir = ContainerPaths.from_env().model_dir
        return cls(
            model_dir=Path(model_dir), host=host or "0.0.0.0", port=port, concurrency=concurrency,
            workers=workers, prediction_slots=-(-concurrency // workers),
            predict_threads=max(1, cpus // workers), max_payload_mb=payload, default_output=output,
            timeout_seconds=timeout, body_timeout_seconds=body_timeout,
        )

    def payload_too_large(self, size: int | None) -> str:
        """The 413 message; `size` is the request's Content-Length, None for a chunked body."""
        what = f"{size} bytes" if size is not None else f"a chunked body of more than {self.max_payload_bytes} bytes"
        return (f"payload too large: {what} is over the limit of {self.max_payload_mb} MB "
                "(SAGEMAKER_MAX_PAYLOAD_IN_MB). Send fewer rows per request; for batch transform use "
                "SplitType=Line with BatchStrategy=MultiRecord so SageMaker splits the input to fit MaxPayloadInMB.")

    def execution_parameters(self) -> dict[str, object]:
        """What GET /execution-parameters returns: batch transform's defaults when the job sets none."""
        return {
            "MaxConcurrentTransforms": self.concurrency,
            "BatchStrategy": "MULTI_RECORD",
            # 0 is SageMaker's value for "no limit, send chunked".
            "MaxPayloadInMB": self.max_payload_mb or 0,
        }
