"""The virtual-time scheduler: actors run one at a time, time jumps only when all of them wait on the clock."""

from __future__ import annotations

import threading

import pytest

from warmcv.errors import StopRequested
from warmcv.simulation.scheduler import Scheduler, SimulationError


def test_time_advances_only_to_the_next_wake_up_and_actors_interleave_in_time_order():
    scheduler = Scheduler()
    clock = scheduler.clock
    trace: list[tuple[float, str]] = []

    def actor(name: str, naps: list[float]) -> str:
        for nap in naps:
            trace.append((clock.monotonic(), name))
            clock.sleep(nap)
        trace.append((clock.monotonic(), name))
        return name.upper()

    a = scheduler.spawn("a", lambda: actor("a", [3600.0, 0.5]))
    b = scheduler.spawn("b", lambda: actor("b", [1.0, 1.0, 7200.0]))
    scheduler.run()
    assert trace == [(0.0, "a"), (0.0, "b"), (1.0, "b"), (2.0, "b"), (3600.0, "a"), (3600.5, "a"), (7202.0, "b")]
    assert (a.result, b.result) == ("A", "B")
    assert scheduler.now == 7202.0
    assert clock.time() == scheduler.epoch + 7202.0


def test_equal_wake_ups_resume_in_the_order_they_were_scheduled_so_runs_repeat_exactly():
    def run() -> list[str]:
        scheduler = Scheduler()
        order: list[str] = []

        def actor(name: str) -> None:
            for _ in range(3):
                scheduler.clock.sleep(1.0)
                order.append(name)

        for name in "xyz":
            scheduler.spawn(name, lambda name=name: actor(name))
        scheduler.run()
        return order

    assert run() == run() == ["x", "y", "z"] * 3


def test_only_one_actor_runs_at_a_time():
    """A read-work-write on shared state loses no update: no two actors ever run between their sleeps."""
    scheduler = Scheduler()
    shared = {"count": 0}

    def actor() -> None:
        for _ in range(20):
            seen = shared["count"]
            sum(range(20000))  # long enough for the interpreter to switch threads, were two running
            shared["count"] = seen + 1
            scheduler.clock.sleep(0.01)

    for i in range(5):
        scheduler.spawn(f"a{i}", actor)
    scheduler.run()
    assert shared["count"] == 100
    assert all(a.done and a.error is None for a in scheduler.actors)


def test_events_and_spawns_from_inside_an_actor_happen_at_their_simulated_time():
    scheduler = Scheduler()
    seen: list[tuple[str, float]] = []

    def child() -> None:
        seen.append(("child", scheduler.now))

    def parent() -> None:
        scheduler.clock.sleep(10)
        scheduler.spawn("child", child, at=scheduler.now + 5)
        scheduler.call_at(scheduler.now + 2, lambda: seen.append(("event", scheduler.now)))

    scheduler.spawn("parent", parent)
    scheduler.run()
    assert seen == [("event", 12.0), ("child", 15.0)]


def test_an_interrupt_is_raised_inside_the_sleeping_actor_at_once():
    scheduler = Scheduler()
    outcome: list[tuple[str, float]] = []

    def sleeper() -> None:
        try:
            scheduler.clock.sleep(1000)
        except StopRequested as stop:
            outcome.append((str(stop), scheduler.now))

    actor = scheduler.spawn("sleeper", sleeper)
    scheduler.call_at(30, lambda: scheduler.interrupt(actor, StopRequested("received SIGTERM")))
    scheduler.run()
    assert outcome == [("received SIGTERM", 30.0)]
    assert scheduler.now == 30.0  # the abandoned wake-up at 1000 s was dropped


def test_errors_stay_with_their_actor_and_run_goes_on():
    scheduler = Scheduler()

    def broken() -> None:
        scheduler.clock.sleep(1)
        raise ValueError("boom")

    bad = scheduler.spawn("bad", broken)
    good = scheduler.spawn("good", lambda: scheduler.clock.sleep(5) or "ok")
    scheduler.run()
    assert isinstance(bad.error, ValueError) and good.result == "ok"


def test_sleeping_outside_an_actor_is_refused():
    with pytest.raises(SimulationError, match="outside a simulated actor"):
        Scheduler().clock.sleep(1)


def test_an_actor_blocked_outside_the_clock_is_reported_by_name():
    scheduler = Scheduler(stall_timeout=0.3)
    gate = threading.Event()
    scheduler.spawn("stuck", lambda: gate.wait(5))
    with pytest.raises(SimulationError, match="actor stuck did not return to the simulated clock"):
        scheduler.run()
    gate.set()
