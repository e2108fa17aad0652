"""The account's request rates: one token bucket per API operation, on the service's clock.

AWS documents its limits as requests per second per account and Region (`rules.CREATE_TRAINING_JOB_RATE`)
and answers requests beyond them with ThrottlingException "Rate exceeded". How a burst is admitted is not
documented: a bucket that starts full with `burst` tokens and refills at `rate` per second is the usual
model (an ASSUMPTION; burst 1 makes the rate a strict minimum gap between admitted requests).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: float = 1.0  # the most tokens held (and the start)
    tokens: float | None = None
    at: float = 0.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, got {self.rate}/s burst {self.burst}")

    def admit(self, now: float) -> bool:
        """Take one token if there is one (True), else leave the bucket as it is (False)."""
        if self.tokens is None:
            self.tokens, self.at = self.burst, now
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = max(self.at, now)
        if self.tokens < 1.0 - 1e-9:
            return False
        self.tokens -= 1.0
        return True
