"""Closed-form estimates of a warmcv tuning job on SageMaker: wall time, instance-hours, cost, quotas, API rates.

The same quantities the simulator measures, from formulas a reader can check by hand (docs/simulation.md
derives each one). Every trial follows one critical path:

    [AMT gap] -> coordinator start-up -> self-discovery -> paced creates -> fold start-up -> training
    -> noticing the last fold (polls, S3 reads)

with K' fold jobs per trial (K, or K - 1 when the coordinator trains fold 0 itself). Each of the M slots
runs N trials one after another: wall time = first trial + (N - 1) x later trial. The first trial of a
slot starts everything cold; later ones start the coordinator on an instance AMT reuses and, with a
keep-alive, the folds on warm pools. No randomness, no contention between slots: the simulator adds
those (noisy times, throttling, slots drifting apart). Billing follows `warmcv.training_service.rules`:
from TrainingStartTime, so a start-up's downloads (image and input; input only on a warm pool) are billed.

What AWS does not publish is an explicit ASSUMPTION (`assumptions()`): how fast the tuner restarts a
coordinator on a reused instance, warm and cold start-up times, and how much of a start-up is downloads;
`warmcv plan` prints the figures across each one's plausible range.

With `strategy = "driver"` there is no coordinator: one driver job (started cold, once) creates each trial's
K fold jobs itself, its creates paced by one gate for all trials (no jitter, no collisions), so a later
trial is: paced creates -> fold start-up -> training -> noticing; the driver bills for the whole run.

`seed_model` is the arithmetic that motivates warm pools (N x (S + T) cold, S + T + (N - 1) x T warm),
kept to show what it assumes: no coordinator, instant warm starts, no pacing or polling.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from warmcv.runners.sagemaker import Timing
from warmcv.training_service import rules

# Request rates (rules): CreateTrainingJob 1/s per account and Region (AWS); ListTrainingJobs about 2/s, not
# adjustable (a third-party report, an assumption). AWS publishes none for DescribeTrainingJob.
CREATE_LIMIT = rules.CREATE_TRAINING_JOB_RATE
LIST_REFERENCE = rules.LIST_TRAINING_JOBS_RATE


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
    download_cold: float = 30.0  # of a cold start-up, the downloads after TrainingStartTime (billed)
    download_warm: float = 5.0  # of a warm start-up, the input download (billed)
    keep_alive: int = 600
    coordinator_trains_fold: bool = False
    tuner_gap: float = 0.0
    api_latency: float = 0.05
    instance_type: str = "ml.m5.xlarge"
    price: float | None = None  # per instance-hour
    release_pools: bool = False
    timing: Timing = field(default_factory=Timing)
    strategy: str = "amt"  # amt: a coordinator job per trial; driver: one driver job creates every fold job

    @property
    def driver(self) -> bool:
        return self.strategy == "driver"

    @property
    def fold_jobs_per_trial(self) -> int:
        return self.folds - 1 if self.coordinator_trains_fold and not self.driver else self.folds

    @property
    def reused_coordinator_startup(self) -> float:
        if not self.coordinator_reuse:
            return self.startup
        return self.warm_startup if self.coordinator_startup is None else self.coordinator_startup

    def billed_startup(self, startup: float, warm: bool) -> float:
        """The part of a start-up after TrainingStartTime: the downloads (rules.billable_seconds)."""
        return min(startup, self.download_warm if warm else self.download_cold)


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
    lists_per_trial: float
    lists_per_second: float
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
    """Self-discovery done (a driver: the trial asked) -> the last fold job created (the first goes out at once).
    A driver's gate spaces creates exactly `create_interval` apart; a coordinator's pacer jitters them upwards."""
    gap = inputs.timing.create_interval if inputs.driver else create_gap(inputs.timing)
    return (inputs.fold_jobs_per_trial - 1) * gap + inputs.api_latency


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
    discovery = 0.0 if inputs.driver else 2 * inputs.api_latency  # a coordinator's DescribeTrainingJob + ListTags
    return {"tuner_gap": gap, "coordinator_startup": coordinator_startup, "discovery": discovery,
            "create_pacing": pacing(inputs), "fold_startup": fold_startup, "training": inputs.train,
            "noticing": noticing(inputs, fold_startup)}


def estimate(inputs: PlanInputs, warm: bool) -> Estimate:
    """warmcv's figures with warm pools (`warm`, keep-alive > 0) or without (every fold job starts cold)."""
    if inputs.driver:
        return estimate_driver(inputs, warm)
    m, n, k = inputs.parallel, inputs.rounds, inputs.fold_jobs_per_trial
    keep_alive = inputs.keep_alive if warm else 0
    fold_startup_later = inputs.warm_startup if keep_alive else inputs.startup
    first = trial_seconds(inputs, inputs.startup, inputs.startup, 0.0)
    later = trial_seconds(inputs, inputs.reused_coordinator_startup, fold_startup_later, inputs.tuner_gap)
    first_total, later_total = sum(first.values()), sum(later.values())
    wall = first_total + (n - 1) * later_total
    notes: list[str] = []

    # Instance-hours: billed from TrainingStartTime (so a start-up's downloads too) to the end of the job, plus
    # pools held Available.
    reused = inputs.coordinator_reuse
    coordinator_seconds = m * (
        (first_total - first["coordinator_startup"] + inputs.billed_startup(inputs.startup, warm=False))
        + (n - 1) * (later_total - later["tuner_gap"] - later["coordinator_startup"]
                     + inputs.billed_startup(inputs.reused_coordinator_startup, warm=reused)))
    fold_seconds = m * k * (n * inputs.train + inputs.billed_startup(inputs.startup, warm=False)
                            + (n - 1) * inputs.billed_startup(fold_startup_later, warm=bool(keep_alive)))
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

    # Polls: one ListTrainingJobs a tick (every fold at once), quick again from the first fold's end until the
    # last's; a completed fold's output is read from where its request puts it: one describe, on itself.
    lists = (polls_before_first_finish(inputs.timing, later["create_pacing"] + fold_startup_later + inputs.train)
             + 1 + (k - 1) * create_gap(inputs.timing) / inputs.timing.poll_finish)
    describes = 1
    if m > 1:
        notes.append(f"the first round's {m * k} creates share the account's ~{CREATE_LIMIT:g}/s: botocore's adaptive "
                     f"retries and the runner's pacing spread them over about {m * k / CREATE_LIMIT:.0f} s (once)")
    rate = m * k / later_total
    if rate > 0.5 * CREATE_LIMIT:
        notes.append(f"creates average {rate:.2f}/s against the account's ~{CREATE_LIMIT:g}/s: expect throttling "
                     "delays; fewer parallel trials or longer folds avoid them")
    list_rate = m * lists / later_total
    if list_rate > 0.5 * LIST_REFERENCE:
        notes.append(f"the coordinators' polls average {list_rate:.2f} ListTrainingJobs/s against about "
                     f"{LIST_REFERENCE:g}/s for the account (not adjustable): expect throttling delays; raise "
                     "poll_fraction and poll_min through WARMCV_SAGEMAKER_TIMING")
    notes += [f"tuner: {problem}" for problem in rules.tuner_limit_problems(m * n, m, wall)]
    return Estimate(
        scenario="warm pools" if keep_alive else "cold (keep-alive 0)", jobs=m * n * (k + 1), coordinators=m * n,
        fold_jobs=m * n * k, wall_seconds=wall, training_limit_seconds=n * inputs.train,
        first_trial_seconds=first_total, later_trial_seconds=later_total, instance_hours=hours, cost=cost,
        fold_starts_cold=m * k * (1 if keep_alive else n), fold_starts_warm=m * k * (n - 1) if keep_alive else 0,
        training_instances=m * (k + 1), warm_pool_instances=m * k if keep_alive else 0,
        creates_per_second=rate, first_round_creates=m * k, describes_per_trial=describes, lists_per_trial=lists,
        lists_per_second=list_rate, notes=notes, breakdown=later)


def estimate_driver(inputs: PlanInputs, warm: bool) -> Estimate:
    """The driver strategy: one driver job, then per trial paced creates -> fold start-up -> training -> noticing.

    The driver starts cold once and describes itself; the first trial of each of the M slots waits for it. Its
    instance bills from its TrainingStartTime to the end of the run (instance-hours count it like any other,
    though a smaller type costs less). Pools idle from a fold's end until the next trial's fold takes it: the
    spread of the folds' ends, noticing, and that fold's place among the next trial's paced creates."""
    m, n, k = inputs.parallel, inputs.rounds, inputs.folds
    keep_alive = inputs.keep_alive if warm else 0
    fold_startup_later = inputs.warm_startup if keep_alive else inputs.startup
    driver_start = inputs.startup + 2 * inputs.api_latency  # cold, then DescribeTrainingJob + ListTags on itself
    first = trial_seconds(inputs, 0.0, inputs.startup, 0.0)
    first["coordinator_startup"] = driver_start
    later = trial_seconds(inputs, 0.0, fold_startup_later, 0.0)
    first_total, later_total = sum(first.values()), sum(later.values())
    wall = first_total + (n - 1) * later_total
    notes: list[str] = []
    driver_seconds = wall - inputs.startup + inputs.billed_startup(inputs.startup, warm=False)
    fold_seconds = m * k * (n * inputs.train + inputs.billed_startup(inputs.startup, warm=False)
                            + (n - 1) * inputs.billed_startup(fold_startup_later, warm=bool(keep_alive)))
    pool_idle = tail = 0.0
    if keep_alive:
        interval = inputs.timing.create_interval
        idle = (k - 1) * interval + later["noticing"] + (k - 1) * interval / 2 + inputs.api_latency
        if idle > keep_alive:
            notes.append(f"pools idle about {idle:.0f} s between trials, longer than the keep-alive ({keep_alive} s): "
                         "they expire and every fold starts cold; raise keep_alive_seconds")
        pool_idle = m * k * (n - 1) * min(idle, keep_alive)
        tail = 0.0 if inputs.release_pools else m * k * keep_alive
    hours = {"coordinators": 0.0, "driver": driver_seconds / 3600, "fold_jobs": fold_seconds / 3600,
             "warm_pools_between_trials": pool_idle / 3600, "warm_pools_after_last_trial": tail / 3600}
    hours["total"] = sum(hours.values())
    cost = hours["total"] * inputs.price if inputs.price is not None else None
    lists = (polls_before_first_finish(inputs.timing, later["create_pacing"] + fold_startup_later + inputs.train)
             + 1 + (k - 1) * inputs.timing.create_interval / inputs.timing.poll_finish)
    rate = m * k / later_total
    if m > 1:
        notes.append(f"the first round's {m * k} creates go through the driver's gate at the account's "
                     f"~{CREATE_LIMIT:g}/s, a trial's folds back to back: the last slot's first trial starts about "
                     f"{(m - 1) * k / CREATE_LIMIT:.0f} s after the first's (once)")
    if rate > 0.5 * CREATE_LIMIT:
        notes.append(f"creates average {rate:.2f}/s against the account's ~{CREATE_LIMIT:g}/s: trials wait for each "
                     "other's create slots; fewer parallel trials or longer folds avoid it")
    list_rate = m * lists / later_total
    if list_rate > 0.5 * LIST_REFERENCE:
        notes.append(f"the trials' polls average {list_rate:.2f} ListTrainingJobs/s against about {LIST_REFERENCE:g}/s "
                     "for the account (not adjustable): expect throttling delays; raise poll_fraction and poll_min "
                     "through WARMCV_SAGEMAKER_TIMING")
    return Estimate(
        scenario="driver, warm pools" if keep_alive else "driver, cold (keep-alive 0)", jobs=m * n * k + 1,
        coordinators=0, fold_jobs=m * n * k, wall_seconds=wall, training_limit_seconds=n * inputs.train,
        first_trial_seconds=first_total, later_trial_seconds=later_total, instance_hours=hours, cost=cost,
        fold_starts_cold=m * k * (1 if keep_alive else n), fold_starts_warm=m * k * (n - 1) if keep_alive else 0,
        training_instances=m * k + 1, warm_pool_instances=m * k if keep_alive else 0, creates_per_second=rate,
        first_round_creates=m * k, describes_per_trial=0, lists_per_trial=lists, lists_per_second=list_rate,
        notes=notes, breakdown=later)


def seed_model(inputs: PlanInputs) -> dict[str, float]:
    """The motivating arithmetic for N sequential rounds: N x (S + T) cold, S + T + (N - 1) x T warm."""
    n, s, t = inputs.rounds, inputs.startup, inputs.train
    return {"cold_seconds": n * (s + t), "warm_seconds": s + t + (n - 1) * t, "training_limit_seconds": n * t}


@dataclass
class Assumption:
    """Something AWS does not publish, the value the estimate uses, and the estimate across its plausible range."""

    name: str
    used: str  # the value in the estimate, as text
    why: str  # what is unknown, and where the range comes from
    points: list[tuple[str, Estimate]]  # (the value, the warm-pool estimate with it)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "used": self.used, "why": self.why,
                "points": [{"value": label, "wall_seconds": e.wall_seconds,
                            "instance_hours": e.instance_hours["total"], "cost": e.cost} for label, e in self.points]}


def assumptions(inputs: PlanInputs) -> list[Assumption]:
    """The unknowns of the warm-pool estimate, each across its plausible range (the rest of the inputs as given)."""
    from dataclasses import replace

    def seconds(value: float) -> str:
        return f"{value:g} s"

    def points(changes: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, Estimate]]:
        return [(label, estimate(replace(inputs, **change), warm=True)) for label, change in changes]

    s = inputs.startup
    coordinator = [] if inputs.driver else [
        Assumption(
            "coordinator start-up on an instance the tuner reuses",
            seconds(inputs.reused_coordinator_startup) if inputs.coordinator_reuse else f"cold ({seconds(s)})",
            "tuning jobs reuse clusters between their training jobs (botocore's model, "
            "HyperParameterTuningResourceConfig); how fast is not published",
            points([("20 s", {"coordinator_reuse": True, "coordinator_startup": 20.0}),
                    ("60 s", {"coordinator_reuse": True, "coordinator_startup": 60.0}),
                    (f"cold ({seconds(s)})", {"coordinator_reuse": False})]))]
    return [
        *coordinator,
        Assumption(
            "fold start-up on a warm pool", seconds(inputs.warm_startup),
            "AWS positions warm pools for start-ups under 20 s; no distribution is published",
            points([(seconds(v), {"warm_startup": v}) for v in (10.0, 20.0, 60.0)])),
        Assumption(
            "cold start-up (provisioning, image, data)", seconds(s),
            "varies with the instance type, the region's capacity, the image size and the data",
            points([(seconds(v), {"startup": v}) for v in (s / 2, s, 2 * s)])),
        Assumption(
            "billed downloads of a start-up, cold / warm", f"{inputs.download_cold:g} / {inputs.download_warm:g} s",
            "billing starts at TrainingStartTime, before the image and input downloads (DescribeTrainingJob); "
            "how long they take depends on the image and the data",
            points([(f"{c:g} / {w:g} s", {"download_cold": c, "download_warm": w})
                    for c, w in ((0.0, 0.0), (30.0, 5.0), (90.0, 20.0))])),
    ]
