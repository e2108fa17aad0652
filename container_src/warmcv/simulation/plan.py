"""Closed-form estimates of a warmcv tuning job on SageMaker: wall time, instance-hours, cost, quotas, API rates.

The same quantities the simulator measures, from formulas a reader can check by hand (docs/simulation.md
derives each one). Every trial follows one critical path:

    [AMT gap] -> coordinator start-up -> self-discovery -> paced creates -> fold start-up -> training
    -> noticing the last fold (polls, S3 reads)

with K' fold jobs per trial (K, or K - 1 when the coordinator trains fold 0 itself). Each of the M slots
runs N trials one after another: wall time = first trial + (N - 1) x later trial. The first trial of a
slot starts everything cold; later ones start the coordinator on an instance AMT reuses and, with a
keep-alive, the folds on warm pools. No randomness, no contention between slots: the simulator adds
those (noisy times, throttling, slots drifting apart).

`seed_model` is design.md's own arithmetic (N x (S + T) cold, S + T + (N - 1) x T warm), kept to show
what the motivating figure assumes: no coordinator, instant warm starts, no pacing or polling.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from warmcv.runners.sagemaker import Timing

# Published request rates: CreateTrainingJob about 1/s per account and region; ListTrainingJobs 2/s (not
# adjustable). AWS publishes none for DescribeTrainingJob: ListTrainingJobs' 2/s is the reference shown.
CREATE_LIMIT = 1.0
DESCRIBE_REFERENCE = 2.0


@dataclass(frozen=True)
class PlanInputs:
    parallel: int  # M
    rounds: int  # N
    folds: int  # K
    startup: float  # S: a job on fresh instances, seconds
    train: float  # T: one fold's training, seconds
    warm_startup: float = 20.0  # a job on a reused warm pool
    coordinator_startup: float | None = None  # a coordinator on an instance AMT reuses (None: warm_startup)
    coordinator_reuse: bool = True  # False: every coordinator starts cold
    keep_alive: int = 600
    coordinator_trains_fold: bool = False
    tuner_gap: float = 0.0
    api_latency: float = 0.05
    instance_type: str = "ml.m5.xlarge"
    price: float | None = None  # per instance-hour
    release_pools: bool = False
    timing: Timing = field(default_factory=Timing)

    @property
    def fold_jobs_per_trial(self) -> int:
        return self.folds - 1 if self.coordinator_trains_fold else self.folds

    @property
    def reused_coordinator_startup(self) -> float:
        if not self.coordinator_reuse:
            return self.startup
        return self.warm_startup if self.coordinator_startup is None else self.coordinator_startup


@dataclass
class Estimate:
    """One scenario's figures (seconds unless the name says hours)."""

    scenario: str
    jobs: int
    coordinators: int
    fold_jobs: int
    wall_seconds: float
    training_limit_seconds: float
    first_trial_seconds: float
    later_trial_seconds: float
    instance_hours: dict[str, float]
    cost: float | None
    fold_starts_cold: int
    fold_starts_warm: int
    training_instances: int
    warm_pool_instances: int
    creates_per_second: float
    first_round_creates: int
    describes_per_trial: float
    describes_per_second: float
    notes: list[str] = field(default_factory=list)
    breakdown: dict[str, float] = field(default_factory=dict)  # a later trial's critical path

    @property
    def overhead_share(self) -> float:
        return (self.wall_seconds - self.training_limit_seconds) / self.training_limit_seconds

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"overhead_share": self.overhead_share,
                               "instance_hours_total": self.instance_hours.get("total", 0.0)}


def create_gap(timing: Timing) -> float:
    """Mean gap between one coordinator's creates: create_interval x U(1, 1 + jitter)."""
    return timing.create_interval * (1 + timing.jitter / 2)


def pacing(inputs: PlanInputs) -> float:
    """Self-discovery done -> the last fold job created (the first create goes out at once)."""
    return (inputs.fold_jobs_per_trial - 1) * create_gap(inputs.timing) + inputs.api_latency


def pre_finish_interval(timing: Timing, running: float) -> float:
    """The poll interval after `running` seconds, before any fold has finished (jitter averages out)."""
    return min(timing.poll_max, max(timing.poll_min, timing.poll_fraction * running))


def noticing(inputs: PlanInputs, fold_startup: float) -> float:
    """Last fold's end -> the runner has every result.

    The first end is seen about half a pre-finish interval after it happens; folds still running then are
    seen about half of `poll_finish` after they end; the last fold ends `spread` after the first. Then one
    S3 read per fold job.
    """
    timing = inputs.timing
    spread = (inputs.fold_jobs_per_trial - 1) * create_gap(timing)
    interval = pre_finish_interval(timing, fold_startup + inputs.train)
    return max(interval / 2 - spread, timing.poll_finish / 2) + inputs.fold_jobs_per_trial * inputs.api_latency


def polls_before_first_finish(timing: Timing, running: float) -> float:
    """Pre-finish poll ticks (one describe each) in `running` seconds: the integral of dt / interval(t)."""
    knee = timing.poll_min / timing.poll_fraction  # where the share overtakes poll_min
    cap = timing.poll_max / timing.poll_fraction  # where poll_max takes over
    if running <= knee:
        return running / timing.poll_min
    ticks = knee / timing.poll_min
    ticks += math.log(min(running, cap) / knee) / timing.poll_fraction
    if running > cap:
        ticks += (running - cap) / timing.poll_max
    return ticks


def trial_seconds(inputs: PlanInputs, coordinator_startup: float, fold_startup: float,
                  gap: float) -> dict[str, float]:
    discovery = 2 * inputs.api_latency  # DescribeTrainingJob + ListTags on itself
    return {"tuner_gap": gap, "coordinator_startup": coordinator_startup, "discovery": discovery,
            "create_pacing": pacing(inputs), "fold_startup": fold_startup, "training": inputs.train,
            "noticing": noticing(inputs, fold_startup)}


def estimate(inputs: PlanInputs, warm: bool) -> Estimate:
    """warmcv's figures with warm pools (`warm`, keep-alive > 0) or without (every fold job starts cold)."""
    m, n, k = inputs.parallel, inputs.rounds, inputs.fold_jobs_per_trial
    keep_alive = inputs.keep_alive if warm else 0
    fold_startup_later = inputs.warm_startup if keep_alive else inputs.startup
    first = trial_seconds(inputs, inputs.startup, inputs.startup, 0.0)
    later = trial_seconds(inputs, inputs.reused_coordinator_startup, fold_startup_later, inputs.tuner_gap)
    first_total, later_total = sum(first.values()), sum(later.values())
    wall = first_total + (n - 1) * later_total
    notes: list[str] = []

    # Instance-hours: billed from the end of Starting to the end of the job, plus pools held Available.
    coordinator_seconds = m * ((first_total - first["coordinator_startup"])
                               + (n - 1) * (later_total - later["tuner_gap"] - later["coordinator_startup"]))
    fold_seconds = m * n * k * inputs.train
    pool_idle = 0.0
    tail = 0.0
    if keep_alive:
        # A pool idles from its fold's end to the next trial's fold taking it: the spread of the folds' ends,
        # noticing, the AMT gap, the next coordinator's start-up and discovery, and that fold's create.
        idle = ((k - 1) * create_gap(inputs.timing) + later["noticing"] + inputs.tuner_gap
                + inputs.reused_coordinator_startup + later["discovery"] + inputs.api_latency)
        if idle > keep_alive:
            notes.append(f"pools idle about {idle:.0f} s between trials, longer than the keep-alive ({keep_alive} s): "
                         "they expire and every fold starts cold; raise keep_alive_seconds")
        pool_idle = m * k * (n - 1) * min(idle, keep_alive)
        tail = 0.0 if inputs.release_pools else m * k * keep_alive
        enough = 60 * math.ceil(max(300.0, 4 * idle) / 60)  # a margin for pauses the model does not know
        if not inputs.release_pools and keep_alive > enough:
            notes.append(f"pools idle about {idle:.0f} s between trials: a keep-alive of {enough} s still keeps them "
                         "warm with a wide margin "
                         f"and cuts the last round's idle pools from {tail / 3600:.1f} to "
                         f"{m * k * enough / 3600:.1f} instance-hours (or release them when tuning ends: "
                         "warmcv release-warm-pools)")
    hours = {"coordinators": coordinator_seconds / 3600, "fold_jobs": fold_seconds / 3600,
             "warm_pools_between_trials": pool_idle / 3600, "warm_pools_after_last_trial": tail / 3600}
    hours["total"] = sum(hours.values())
    cost = hours["total"] * inputs.price if inputs.price is not None else None

    describes_first = polls_before_first_finish(inputs.timing, later["create_pacing"] + fold_startup_later
                                                + inputs.train)
    describes = 1 + describes_first + 2 * k  # itself, the round robin, then every running fold near the end
    if m > 1:
        notes.append(f"the first round's {m * k} creates share the account's ~{CREATE_LIMIT:g}/s: botocore's adaptive "
                     f"retries and the runner's pacing spread them over about {m * k / CREATE_LIMIT:.0f} s (once)")
    rate = m * k / later_total
    if rate > 0.5 * CREATE_LIMIT:
        notes.append(f"creates average {rate:.2f}/s against the account's ~{CREATE_LIMIT:g}/s: expect throttling "
                     "delays; fewer parallel trials or longer folds avoid them")
    describe_rate = m * describes / later_total
    if describe_rate > 0.5 * DESCRIBE_REFERENCE:
        notes.append(f"describes average {describe_rate:.2f}/s; AWS publishes no DescribeTrainingJob limit (the "
                     f"related ListTrainingJobs allows {DESCRIBE_REFERENCE:g}/s): raise poll_fraction through "
                     "WARMCV_SAGEMAKER_TIMING if you see throttling")
    return Estimate(
        scenario="warm pools" if keep_alive else "cold (keep-alive 0)", jobs=m * n * (k + 1), coordinators=m * n,
        fold_jobs=m * n * k, wall_seconds=wall, training_limit_seconds=n * inputs.train,
        first_trial_seconds=first_total, later_trial_seconds=later_total, instance_hours=hours, cost=cost,
        fold_starts_cold=m * k * (1 if keep_alive else n), fold_starts_warm=m * k * (n - 1) if keep_alive else 0,
        training_instances=m * (k + 1), warm_pool_instances=m * k if keep_alive else 0,
        creates_per_second=rate, first_round_creates=m * k, describes_per_trial=describes,
        describes_per_second=describe_rate, notes=notes, breakdown=later)


def seed_model(inputs: PlanInputs) -> dict[str, float]:
    """design.md's motivating arithmetic for N sequential rounds: N x (S + T) cold, S + T + (N - 1) x T warm."""
    n, s, t = inputs.rounds, inputs.startup, inputs.train
    return {"cold_seconds": n * (s + t), "warm_seconds": s + t + (n - 1) * t, "training_limit_seconds": n * t}
