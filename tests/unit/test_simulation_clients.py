"""Simulated boto3 clients retry like botocore's modes, in simulated time."""

from __future__ import annotations

import random

import pytest
from botocore.exceptions import ClientError

from tests.fakes.simulated import SimulatedSageMaker
from warmcv.clock import ManualClock
from warmcv.simulation.clients import PATIENT, PROMPT, RetryPolicy, SimulatedClient

from .test_training_service import request


def test_standard_mode_gives_up_after_its_attempts_and_raises_what_boto3_raises():
    sim = SimulatedSageMaker(ManualClock(), throttle_always={"StopTrainingJob"})
    client = SimulatedClient(sim, sim.clock, PROMPT, random.Random(1))
    with pytest.raises(ClientError) as error:
        client.stop_training_job(TrainingJobName="x")
    assert error.value.response["Error"]["Code"] == "ThrottlingException"
    assert sim.count("StopTrainingJob", None) == PROMPT.total_max_attempts == 2
    assert len(sim.clock.sleeps) == 1 and 0 <= sim.clock.sleeps[0] <= 1.0  # rand * min(2 ** 0, 20)


def test_adaptive_mode_rides_out_throttling_with_exponential_jittered_backoff():
    sim = SimulatedSageMaker(ManualClock(), throttle={"CreateTrainingJob": 4})
    client = SimulatedClient(sim, sim.clock, PATIENT, random.Random(2))
    client.create_training_job(**request("a"))
    assert sim.count("CreateTrainingJob", "ThrottlingException") == 4 and "a" in sim.jobs
    assert client.retries == 4 and client.attempts == 5
    backoffs = [s for s in sim.clock.sleeps]
    assert all(0 <= s <= min(2 ** i, 20) + 2.0 for i, s in enumerate(backoffs))  # plus the token bucket's waits


def test_adaptive_mode_slows_the_client_down_after_throttling():
    def span(throttled_first: bool) -> float:
        sim = SimulatedSageMaker(ManualClock(), throttle={"DescribeTrainingJob": 1 if throttled_first else 0})
        sim.create_training_job(**request("a"))
        client = SimulatedClient(sim, sim.clock, PATIENT, random.Random(3))
        start = sim.clock.monotonic()
        for _ in range(10):
            client.describe_training_job(TrainingJobName="a")
        return sim.clock.monotonic() - start

    assert span(False) == 0.0  # no throttling: botocore sends at once
    assert span(True) > 2.0  # one backoff (under 1 s) plus the client-side token bucket metering the rest


def test_errors_that_are_not_transient_are_not_retried():
    sim = SimulatedSageMaker(ManualClock())
    client = SimulatedClient(sim, sim.clock, RetryPolicy("adaptive", 8), random.Random(4))
    with pytest.raises(ClientError, match="not found"):
        client.describe_training_job(TrainingJobName="missing")
    assert client.attempts == 1


def test_latency_is_spent_on_the_clock_for_every_attempt():
    sim = SimulatedSageMaker(ManualClock())
    client = SimulatedClient(sim, sim.clock, PROMPT, latency=0.25)
    client.create_training_job(**request("a"))
    client.describe_training_job(TrainingJobName="a")
    assert sim.clock.monotonic() == pytest.approx(0.5)
    assert sim.jobs["a"].created == pytest.approx(0.25)  # the request arrived after its round trip
