"""One process's boto3 client over the simulated service, retrying the way botocore's retry modes do.

The coordinator's real clients (`warmcv.aws.clients`) rely on botocore to absorb throttling: `adaptive`
mode with 8 attempts for creates and polls, `standard` with 2 for self-discovery and stops. botocore
sleeps in real time, so in a simulation that behaviour is reproduced here, in simulated time, from
botocore's own parts: the backoff is `botocore.retries.standard.ExponentialBackoff` (full jitter,
`rand * min(2 ** (attempt - 1), 20)` s for throttling), and adaptive mode's client-side rate limiter is
`botocore.retries.adaptive.ClientRateLimiter` with its CUBIC rate calculator, rate clocker and token
bucket, fed with the simulated clock. Only the waiting is ours: the token bucket's blocking wait
becomes a `clock.sleep`. (Not modelled: standard mode's retry quota, 500 tokens per client, which one
trial's calls cannot exhaust.)

A call that still fails after the last attempt raises the service's ClientError, as boto3 does; the
runner's own handling (`warmcv.aws.training_jobs`) takes it from there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import CapacityNotAvailableError, ClientError
from botocore.retries.adaptive import ClientRateLimiter, RateClocker
from botocore.retries.bucket import TokenBucket
from botocore.retries.standard import ExponentialBackoff
from botocore.retries.throttling import CubicCalculator

from warmcv.aws.clients import PATIENT_ATTEMPTS, PROMPT_ATTEMPTS
from warmcv.aws.training_jobs import SERVER_ERROR_CODES, THROTTLING_CODES
from warmcv.clock import Clock

S3_ATTEMPTS = 5  # warmcv.aws.clients: the S3 client uses standard mode with 5 attempts


@dataclass(frozen=True)
class RetryPolicy:
    mode: str  # "standard" | "adaptive" | "none"
    total_max_attempts: int


PATIENT = RetryPolicy("adaptive", PATIENT_ATTEMPTS)
PROMPT = RetryPolicy("standard", PROMPT_ATTEMPTS)
S3 = RetryPolicy("standard", S3_ATTEMPTS)


class _BotocoreClock:
    """botocore.retries.bucket.Clock's interface over a simulated clock."""

    def __init__(self, clock: Clock):
        self._clock = clock

    def sleep(self, amount: float) -> None:
        self._clock.sleep(amount)

    def current_time(self) -> float:
        return self._clock.monotonic()


class _SimulatedTokenBucket(TokenBucket):
    """botocore's token bucket whose blocking acquire waits on the simulated clock, not a condition variable."""

    def __init__(self, max_rate: float, clock: _BotocoreClock):
        super().__init__(max_rate=max_rate, clock=clock)
        self._simulated_clock = clock

    def acquire(self, amount: int = 1, block: bool = True) -> bool:
        while True:
            try:
                return super().acquire(amount, block=False)
            except CapacityNotAvailableError:
                if not block:
                    raise
                rate = self.max_rate or 1.0
                self._simulated_clock.sleep(max(1e-3, (amount - self.available_capacity) / rate))


class _Outcome:
    """What botocore's throttling detector would conclude, for the rate limiter and the backoff."""

    def is_throttling_error(self, **kwargs: Any) -> bool:
        return bool(kwargs.get("throttled"))

    def is_throttling_error_from_context(self, context: Any) -> bool:
        return bool(getattr(context, "throttled", False))


@dataclass
class _RetryContext:
    attempt_number: int
    throttled: bool
    http_response: Any = None


class SimulatedClient:
    """A boto3-shaped client: `client.describe_training_job(TrainingJobName=...)` etc. with botocore's retries.

    `latency` is the simulated round trip of each request. `attempts` counts every request sent, including
    retries, so a report can show how much botocore absorbed.
    """

    def __init__(self, service: Any, clock: Clock, policy: RetryPolicy, rng: random.Random | None = None,
                 latency: float = 0.0):
        self._service = service
        self._clock = clock
        self.policy = policy
        self._latency = latency
        self._rng = rng or random.Random(0)
        self._detector = _Outcome()
        self._backoff = ExponentialBackoff(random=self._rng.random, throttling_detector=self._detector)
        self._limiter: ClientRateLimiter | None = None
        if policy.mode == "adaptive":
            boto_clock = _BotocoreClock(clock)
            self._limiter = ClientRateLimiter(
                rate_adjustor=CubicCalculator(starting_max_rate=0, start_time=boto_clock.current_time()),
                rate_clocker=RateClocker(boto_clock), token_bucket=_SimulatedTokenBucket(1, boto_clock),
                throttling_detector=self._detector, clock=boto_clock)
        self.attempts = 0
        self.retries = 0

    def _call(self, method: str, **kwargs: Any) -> Any:
        attempts = self.policy.total_max_attempts if self.policy.mode != "none" else 1
        for attempt in range(1, attempts + 1):
            if self._limiter is not None:
                self._limiter.on_sending_request(request=None)
            if self._latency:
                self._clock.sleep(self._latency)
            self.attempts += 1
            try:
                response = getattr(self._service, method)(**kwargs)
            except ClientError as error:
                details = error.response.get("Error", {})
                code = str(details.get("Code", ""))
                status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                throttled = code in THROTTLING_CODES
                if self._limiter is not None:
                    self._limiter.on_receiving_response(throttled=throttled)
                retryable = throttled or code in SERVER_ERROR_CODES or status >= 500
                if not retryable or attempt == attempts:
                    raise
                self.retries += 1
                self._clock.sleep(self._backoff.delay_amount(_RetryContext(attempt, throttled)))
                continue
            if self._limiter is not None:
                self._limiter.on_receiving_response(throttled=False)
            return response
        raise AssertionError("unreachable")

    # -- the methods the coordinator uses (warmcv.aws.training_jobs.SageMakerClient / S3Client) ---------------
    def create_training_job(self, **request: Any) -> Any:
        return self._call("create_training_job", **request)

    def describe_training_job(self, *, TrainingJobName: str) -> Any:  # noqa: N803 - boto3's keyword
        return self._call("describe_training_job", TrainingJobName=TrainingJobName)

    def stop_training_job(self, *, TrainingJobName: str) -> Any:  # noqa: N803
        return self._call("stop_training_job", TrainingJobName=TrainingJobName)

    def list_training_jobs(self, **kwargs: Any) -> Any:
        return self._call("list_training_jobs", **kwargs)

    def list_tags(self, **kwargs: Any) -> Any:
        return self._call("list_tags", **kwargs)

    def get_object(self, *, Bucket: str, Key: str) -> Any:  # noqa: N803
        return self._call("get_object", Bucket=Bucket, Key=Key)
