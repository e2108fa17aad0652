"""Virtual time for real code: threads that only ever wait on a simulated clock, run one at a time.

The code under simulation (the real coordinator and fold runner) is ordinary blocking Python that waits
through `Clock.sleep`. Each simulated process (an *actor*: one coordinator job) runs it in its own
thread, but only one actor holds the baton at any moment. An actor that calls `clock.sleep(s)` hands
the baton back to the scheduler, which then jumps simulated time to the earliest pending wake-up and
resumes exactly that actor. So:

- time advances only when every actor is blocked in `clock.sleep`, straight to the next event, and hours
  of tuning play in seconds of real time;
- the run is deterministic: wake-ups are ordered by (time, order of scheduling), and nothing runs
  concurrently, so the same seeds give the same sequence of API calls, to the last float;
- the code needs no change: it sees a `Clock` (`warmcv.clock`), exactly like `SystemClock`.

An actor that blocks on anything else (a real lock, a socket, `time.sleep`) would stall the simulation;
the scheduler notices after `stall_timeout` real seconds and fails, naming the actor.

Why threads and not an event loop: the runner is synchronous code written against boto3; threads let
it run unmodified, and handing over a baton keeps them from ever running at the same time.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_EPOCH = 1_700_000_000.0  # what clock.time() says at simulated time 0 (2023-11-14, UTC)


class SimulationError(RuntimeError):
    """The simulation itself went wrong (an actor blocked outside the clock, a sleep outside an actor)."""


@dataclass(eq=False)
class Actor:
    """One simulated process. `result`/`error` hold what its function returned or raised."""

    name: str
    function: Callable[[], Any]
    thread: threading.Thread | None = None
    baton: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    started: bool = False
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    interrupt: BaseException | None = None  # raised inside its next (or current) clock.sleep
    wake_token: int = 0  # invalidates an earlier wake-up when an interrupt reschedules it


class VirtualClock:
    """The `warmcv.clock.Clock` of a simulation: reads and sleeps on the scheduler's simulated time."""

    def __init__(self, scheduler: Scheduler):
        self._scheduler = scheduler

    def monotonic(self) -> float:
        return self._scheduler.now

    def time(self) -> float:
        return self._scheduler.epoch + self._scheduler.now

    def sleep(self, seconds: float) -> None:
        self._scheduler.sleep(seconds)


class Scheduler:
    """Discrete-event scheduler over actors (threads that wait only on `clock`) and plain events."""

    def __init__(self, start: float = 0.0, epoch: float = DEFAULT_EPOCH, stall_timeout: float = 120.0):
        self.now = float(start)
        self.epoch = epoch
        self.stall_timeout = stall_timeout
        self.clock = VirtualClock(self)
        self.actors: list[Actor] = []
        self.events_run = 0
        self.switches = 0
        self._queue: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        self._running: Actor | None = None
        self._yielded = threading.Semaphore(0)

    # -- scheduling -----------------------------------------------------------------------------------
    def spawn(self, name: str, function: Callable[[], Any], at: float | None = None) -> Actor:
        """Start `function` as an actor at simulated time `at` (default: now, after what is already due)."""
        actor = Actor(name, function)
        actor.thread = threading.Thread(target=self._actor_main, args=(actor,), name=f"sim-{name}", daemon=True)
        self.actors.append(actor)
        actor.thread.start()  # it waits for the baton before doing anything
        self._push(self.now if at is None else max(at, self.now), ("actor", actor, actor.wake_token))
        return actor

    def call_at(self, at: float, callback: Callable[[], Any]) -> None:
        """Run `callback` at simulated time `at`, in the scheduler's own thread (it must not sleep)."""
        self._push(max(at, self.now), ("event", callback))

    def interrupt(self, actor: Actor, error: BaseException) -> None:
        """Raise `error` inside the actor's clock.sleep now (what a signal handler that raises does)."""
        if actor.done:
            return
        actor.interrupt = error
        if actor.started and actor is not self._running:
            actor.wake_token += 1  # its pending wake-up is void: it wakes now instead
            self._push(self.now, ("actor", actor, actor.wake_token))

    def wake(self, actor: Actor) -> None:
        """End the actor's current clock.sleep now, without an error (a waiter told that what it waits for
        happened). Its pending wake-up is void; an actor not sleeping is left alone."""
        if actor.done or not actor.started or actor is self._running:
            return
        actor.wake_token += 1
        self._push(self.now, ("actor", actor, actor.wake_token))

    @property
    def current(self) -> Actor | None:
        """The actor running now (None in the scheduler's own thread)."""
        return self._running

    def sleep(self, seconds: float) -> None:
        """Called by an actor (through its clock): hand the baton back until simulated time has passed."""
        actor = self._running
        if actor is None or threading.current_thread() is not actor.thread:
            raise SimulationError("clock.sleep called outside a simulated actor; only actors may wait")
        self._check_interrupt(actor)
        self._push(self.now + max(0.0, float(seconds)), ("actor", actor, actor.wake_token))
        self._yielded.release()
        actor.baton.acquire()
        self._check_interrupt(actor)

    def run(self, until: float | None = None) -> None:
        """Process events and actors in time order until nothing is pending (or simulated time `until`)."""
        while self._queue:
            at, _, item = self._queue[0]
            if until is not None and at > until:
                self.now = until
                return
            heapq.heappop(self._queue)
            if item[0] == "event":
                self.now = at
                self.events_run += 1
                item[1]()
                continue
            actor, token = item[1], item[2]
            if actor.done or token != actor.wake_token:
                continue  # a wake-up made void by an interrupt: time does not move for it
            self.now = at
            self._resume(actor)

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- internals --------------------------------------------------------------------------------------
    def _push(self, at: float, item: Any) -> None:
        heapq.heappush(self._queue, (at, next(self._order), item))

    def _resume(self, actor: Actor) -> None:
        self._running = actor
        actor.started = True
        self.switches += 1
        actor.baton.release()
        if not self._yielded.acquire(timeout=self.stall_timeout):
            raise SimulationError(
                f"actor {actor.name} did not return to the simulated clock within {self.stall_timeout:.0f} s of "
                "real time: it is blocked on something else (a real sleep, lock or socket)"
            )
        self._running = None

    def _actor_main(self, actor: Actor) -> None:
        actor.baton.acquire()
        try:
            self._check_interrupt(actor)
            actor.result = actor.function()
        except BaseException as error:  # noqa: BLE001 - recorded for the owner; the thread must end cleanly
            actor.error = error
        finally:
            actor.done = True
            self._yielded.release()

    @staticmethod
    def _check_interrupt(actor: Actor) -> None:
        if actor.interrupt is not None:
            error, actor.interrupt = actor.interrupt, None
            raise error
