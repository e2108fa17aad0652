"""Time as a dependency: every wait of the SageMaker fold runner goes through a `Clock`.

Why: the same coordinator code must run against real SageMaker (real seconds) and inside a
discrete-event simulator that plays hours of tuning in seconds (simulated time). A simulator passes its
own clock whose `sleep` advances simulated time; nothing in the runner may call `time.sleep` or
`time.monotonic` directly.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: deadlines and intervals are measured on it."""

    def time(self) -> float:
        """Seconds since the epoch (UTC): only to compare with timestamps AWS returns."""

    def sleep(self, seconds: float) -> None:
        """Wait; a signal handler that raises (SIGTERM -> StopRequested) must be able to interrupt it."""


class SystemClock:
    """The real clock. `time.sleep` is interrupted by a raising signal handler, which the stop path needs."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def sleep_unless(self, event: threading.Event, seconds: float) -> None:
        """Like `sleep`, but over as soon as `event` is set (a raising signal handler still interrupts it)."""
        if seconds > 0:
            event.wait(seconds)


def sleep_unless(clock: Clock, event: threading.Event, seconds: float) -> None:
    """Wait `seconds` on `clock`, or less once `event` is set, where the clock can (the system clock).

    Why: the driver stops a trial from another thread, whose runner may be waiting a minute for its next
    poll. A simulated clock moves only when every actor waits, so it cannot be woken this way; a simulation
    delivers a stop by interrupting the actor instead."""
    waiter = getattr(clock, "sleep_unless", None)
    if waiter is not None:
        waiter(event, seconds)
    else:
        clock.sleep(seconds)


class ManualClock:
    """A clock that only moves when slept on or advanced: deterministic unit tests of timing logic."""

    def __init__(self, start: float = 0.0, epoch: float = 1_700_000_000.0):
        self._now = start
        self._epoch_offset = epoch - start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._epoch_offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)


SYSTEM_CLOCK = SystemClock()
