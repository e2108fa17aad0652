"""How long the SageMaker fold runner waits, and how it draws every wait: intervals, jitter and backoff.

All randomness goes through one injectable `random.Random` (`Pacer`) and all waiting through an
injectable `Clock`, so a simulation replays a run to the last call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace

from warmcv.errors import UserInputError

TIMING_ENV = "WARMCV_SAGEMAKER_TIMING"


@dataclass(frozen=True)
class Timing:
    """Every interval the runner waits on, in seconds. Override with WARMCV_SAGEMAKER_TIMING="key=value,...".

    The defaults follow the API's limits: about one CreateTrainingJob per second per account, and
    polls that add at most `poll_fraction` of the trial's running time to its end.
    """

    create_interval: float = 1.0  # least gap between this coordinator's creates (the account's ~1/s)
    jitter: float = 0.3  # every wait is multiplied by a random factor in [1 - jitter, 1 + jitter]
    poll_min: float = 5.0  # the first polls
    poll_fraction: float = 0.05  # then every this share of the time since the first fold job was created
    poll_max: float = 60.0
    poll_finish: float = 2.0  # once one fold has finished, the others are polled this often (then backing off)
    retry_min: float = 2.0  # our backoff after botocore's own retries gave up on a transient error
    retry_max: float = 30.0
    quota_retry_min: float = 10.0  # after ResourceLimitExceeded: pools drain and other trials end in minutes
    quota_retry_max: float = 120.0
    quota_patience: float = 1800.0  # a create refused by a quota this long (or until the deadline) fails the trial
    stop_budget: float = 60.0  # stop() starts no stop call after this (SageMaker kills 120 s after SIGTERM)
    deadline_margin: float = 90.0  # stop the folds this long before the coordinator's MaxRuntime is up
    local_check: float = 1.0  # how often the in-process fold is checked while it trains
    not_found_grace: float = 60.0  # a just-created job may briefly be unknown to Describe and List

    @classmethod
    def parse(cls, text: str | None) -> Timing:
        if not text:
            return cls()
        names = {f.name for f in fields(cls)}
        changes: dict[str, float] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            try:
                number = float(value)
            except ValueError:
                number = -1.0
            if not sep or key not in names or number < 0:
                raise UserInputError(
                    f"{TIMING_ENV}={text!r}: expected comma-separated name=seconds with names from "
                    f"{', '.join(sorted(names))}"
                )
            changes[key] = number
        return replace(cls(), **changes)


class Pacer:
    """The runner's waits, drawn from `rng`: jittered intervals, full-jitter backoff, the poll schedule."""

    def __init__(self, timing: Timing, rng: random.Random):
        self.timing, self.rng = timing, rng

    def jittered(self, seconds: float) -> float:
        j = self.timing.jitter
        return max(0.0, seconds * self.rng.uniform(1.0 - j, 1.0 + j))

    def create_gap(self) -> float:
        """Never below the account's pace (about 1/s), jittered upwards so coordinators drift apart."""
        return self.timing.create_interval * self.rng.uniform(1.0, 1.0 + self.timing.jitter)

    def backoff(self, failures: int) -> float:
        """Full-jitter exponential backoff (the AWS Architecture Blog's recommendation)."""
        return self._full_jitter(failures, self.timing.retry_min, self.timing.retry_max)

    def quota_backoff(self, failures: int) -> float:
        """The same for ResourceLimitExceeded, on the scale at which quota frees up (pools expiring, trials ending)."""
        return self._full_jitter(failures, self.timing.quota_retry_min, self.timing.quota_retry_max)

    def _full_jitter(self, failures: int, low: float, high: float) -> float:
        ceiling = min(high, low * 2 ** max(0, failures - 1))
        return self.rng.uniform(low / 2, max(low / 2, ceiling))

    def poll_interval(self, now: float, polling_since: float, first_finish: float | None) -> float:
        """A share of the time the folds have run (of the time since the first one finished, once one has)."""
        t = self.timing
        if first_finish is not None:
            since, floor = now - first_finish, t.poll_finish
        else:
            since, floor = now - polling_since, t.poll_min
        return min(t.poll_max, max(floor, t.poll_fraction * since))
