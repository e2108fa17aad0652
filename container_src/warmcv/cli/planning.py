"""`warmcv plan` and `warmcv simulate`: what a tuning job on SageMaker will take, before running it.

`plan` computes closed-form estimates (wall time, instance-hours, cost, cold versus warm pools, the
quotas and API rates it needs); with `--simulate` it also runs the discrete-event simulator with the same
parameters. `simulate` runs only the simulator and prints its full report. Both need only the core
install: no AWS account, nothing is trained.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path
from typing import Any

from warmcv.errors import UserInputError


def _add_scenario(parser: argparse.ArgumentParser) -> None:
    """The options of both commands. Nothing heavy is imported here: `warmcv --help` stays instant."""
    group = parser.add_argument_group("the tuning job")
    group.add_argument("--strategy", choices=("amt", "driver"), default="amt",
                       help="amt: SageMaker's tuner starts a coordinator job per trial (default); driver: one driver "
                            "job creates every trial's fold jobs itself")
    group.add_argument("--parallel", "-M", type=int, required=True, help="parallel trials M (max_parallel_jobs)")
    group.add_argument("--rounds", "-N", type=int, required=True, help="rounds N (max_jobs = M x N)")
    group.add_argument("--folds", "-K", type=int, required=True, help="folds K")
    group.add_argument("--startup", required=True,
                       help="start-up of a job on fresh instances (S), e.g. 180, 3m; provisioning, image, data")
    group.add_argument("--train", required=True, help="one fold's training time (T), e.g. 120, 2m, 1.5h")
    group.add_argument("--warm-startup", default="20",
                       help="start-up of a job on a reused warm pool (default 20 s)")
    group.add_argument("--coordinator-startup",
                       help="start-up of a coordinator on an instance the tuner reuses (default: --warm-startup)")
    group.add_argument("--no-coordinator-reuse", action="store_true",
                       help="every coordinator starts cold (the tuner reuses no instance)")
    group.add_argument("--download-cold", default="30",
                       help="of a cold start-up, the image and input downloads after TrainingStartTime, which are "
                            "billed (default 30 s; an assumption)")
    group.add_argument("--download-warm", default="5",
                       help="of a warm start-up, the input download, billed (default 5 s; an assumption)")
    group.add_argument("--keep-alive", type=int,
                       help="fold jobs' warm-pool keep-alive in seconds, 0..3600 (default: the keep_alive_seconds "
                            "hyperparameter's default, as the launcher uses)")
    group.add_argument("--coordinator-trains-fold", action=argparse.BooleanOptionalAction, default=None,
                       help="amt: the coordinator trains fold 0 itself: K instances per trial instead of K + 1 "
                            "(default, as the launcher does; --no-coordinator-trains-fold for the K + 1 layout)")
    group.add_argument("--driver-instance-type", default="ml.m5.large",
                       help="driver: the driver job's own instance (default ml.m5.large)")
    group.add_argument("--tuner-gap", default="0", help="pause between a trial's end and the next (default 0)")
    group.add_argument("--release-pools", action="store_true",
                       help="warm pools are released when tuning ends (else they idle for their keep-alive)")
    group.add_argument("--instance-type", default="ml.m5.xlarge", help="for the quota names (default ml.m5.xlarge)")
    group.add_argument("--price", type=float, help="price per instance-hour, for the cost")
    group.add_argument("--api-latency", type=float, default=0.05, help="seconds per API request (default 0.05)")
    group.add_argument("--json", action="store_true", help="machine-readable output")

    sim = parser.add_argument_group("the simulation")
    sim.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    sim.add_argument("--noise", type=float, default=0.1,
                     help="coefficient of variation of start-up and training times (default 0.1; 0: exact)")
    sim.add_argument("--failure-rate", type=float, default=0.0, help="share of folds that fail (default 0)")
    sim.add_argument("--create-rate", type=float, default=1.0, help="CreateTrainingJob per second, account-wide")
    sim.add_argument("--describe-rate", type=float,
                     help="DescribeTrainingJob per second, account-wide (default: no limit; AWS publishes none)")
    sim.add_argument("--instance-quota", type=int, help="training instances of the type (default: enough)")
    sim.add_argument("--warm-pool-quota", type=int, help="warm-pool instances of the type (default: enough)")
    sim.add_argument("--stop-at", help="stop the tuning job at this simulated time (e.g. 1h)")
    sim.add_argument("--timing", help="the fold runner's timing, as WARMCV_SAGEMAKER_TIMING (e.g. poll_fraction=0.1)")
    sim.add_argument("--verbose", action="store_true", help="show the coordinators' own log lines")


def register(commands: argparse._SubParsersAction) -> None:
    plan = commands.add_parser(
        "plan", help="estimate wall time, instance-hours, cost, quotas and API rates of a tuning job",
        description="Closed-form estimates for M parallel coordinator trials x N rounds with K folds each, "
                    "cold and with warm pools, next to the arithmetic N x (S + T) and S + T + (N - 1) x T, with the "
                    "assumptions AWS publishes no figure for and how the estimate moves across their range; "
                    "--simulate also runs the discrete-event simulator (the real coordinator code in simulated "
                    "time) with the same values.")
    plan.add_argument("--simulate", action="store_true", help="also run the simulator (cold and warm)")
    _add_scenario(plan)
    plan.set_defaults(handler=_plan)

    simulate = commands.add_parser(
        "simulate", help="run a tuning job in simulated time with the real coordinator and fold runner",
        description="A discrete-event simulation of SageMaker training (cold starts, warm pools, the ~1/s "
                    "create limit, quotas, failures) driving the real coordinator and SageMaker fold runner: "
                    "M x N trials in seconds of real time. Prints where the time and the instance-hours go.")
    _add_scenario(simulate)
    simulate.add_argument("--trials-csv", type=Path, help="write one row per trial (times in simulated seconds)")
    simulate.set_defaults(handler=_simulate)


# -- building the inputs -------------------------------------------------------------------------------------
def _inputs(args: argparse.Namespace) -> Any:
    from warmcv.runners.sagemaker import Timing
    from warmcv.simulation.plan import PlanInputs
    from warmcv.simulation.tables import parse_duration
    from warmcv.simulation.tuning import DEFAULT_KEEP_ALIVE

    if args.keep_alive is None:
        args.keep_alive = DEFAULT_KEEP_ALIVE
    for name in ("parallel", "rounds", "folds"):
        if getattr(args, name) < 1:
            raise UserInputError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.folds < 2:
        raise UserInputError(f"--folds must be at least 2, got {args.folds}")
    if not 0 <= args.keep_alive <= 3600:
        raise UserInputError(f"--keep-alive {args.keep_alive}: SageMaker allows 0..3600 seconds")
    if args.price is not None and args.price < 0:
        raise UserInputError(f"--price {args.price}: must not be negative")
    if args.strategy == "driver" and args.coordinator_trains_fold:
        raise UserInputError("--coordinator-trains-fold is for --strategy amt: the driver has no coordinator, every "
                             "fold is a fold job")
    if args.coordinator_trains_fold is None:
        args.coordinator_trains_fold = args.strategy == "amt"
    coordinator = args.coordinator_startup
    return PlanInputs(
        parallel=args.parallel, rounds=args.rounds, folds=args.folds,
        startup=parse_duration(args.startup, "--startup"), train=parse_duration(args.train, "--train"),
        warm_startup=parse_duration(args.warm_startup, "--warm-startup"),
        coordinator_startup=parse_duration(coordinator, "--coordinator-startup") if coordinator else None,
        coordinator_reuse=not args.no_coordinator_reuse, keep_alive=args.keep_alive,
        download_cold=parse_duration(args.download_cold, "--download-cold"),
        download_warm=parse_duration(args.download_warm, "--download-warm"),
        coordinator_trains_fold=args.coordinator_trains_fold,
        tuner_gap=parse_duration(args.tuner_gap, "--tuner-gap"), api_latency=args.api_latency,
        instance_type=args.instance_type, price=args.price, release_pools=args.release_pools,
        timing=Timing.parse(args.timing), strategy=args.strategy,
    )


def _simulation(args: argparse.Namespace, inputs: Any, keep_alive: int) -> Any:
    from warmcv.simulation.tables import parse_duration
    from warmcv.simulation.tuning import Account, Tuning, simulate
    from warmcv.simulation.workload import Workload

    if not 0 <= args.noise <= 2 or not 0 <= args.failure_rate <= 1:
        raise UserInputError(f"--noise {args.noise} must be within 0..2 and --failure-rate {args.failure_rate} "
                             "within 0..1")
    if args.create_rate <= 0 or (args.describe_rate is not None and args.describe_rate <= 0):
        raise UserInputError("--create-rate and --describe-rate are requests per second and must be above 0")
    for name in ("instance_quota", "warm_pool_quota"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            raise UserInputError(f"--{name.replace('_', '-')} must not be negative")
    tuning = Tuning(strategy=inputs.strategy, driver_instance_type=args.driver_instance_type,
                    parallel=inputs.parallel, rounds=inputs.rounds, folds=inputs.folds, keep_alive=keep_alive,
                    coordinator_trains_fold=inputs.coordinator_trains_fold, instance_type=inputs.instance_type,
                    coordinator_reuse=inputs.coordinator_reuse, tuner_gap=inputs.tuner_gap,
                    release_pools=inputs.release_pools,
                    stop_at=parse_duration(args.stop_at, "--stop-at") if args.stop_at else None)
    workload = Workload(startup=inputs.startup, warm_startup=inputs.warm_startup,
                        coordinator_startup=inputs.coordinator_startup, train=inputs.train, train_cv=args.noise,
                        download_cold=inputs.download_cold, download_warm=inputs.download_warm,
                        startup_cv=args.noise, failure_rate=args.failure_rate, seed=args.seed)
    account = Account(create_rate=args.create_rate, describe_rate=args.describe_rate, api_latency=inputs.api_latency,
                      instance_quota=args.instance_quota, warm_pool_quota=args.warm_pool_quota)
    level = logging.INFO if args.verbose else logging.CRITICAL + 1
    return simulate(tuning, workload, account, inputs.timing, log_level=level)


# -- plan ------------------------------------------------------------------------------------------------------
def _plan(args: argparse.Namespace) -> int:
    from warmcv.simulation.plan import assumptions, estimate, seed_model
    from warmcv.simulation.tables import hours, number, percent, short, table

    inputs = _inputs(args)
    cold, warm = estimate(inputs, warm=False), estimate(inputs, warm=True)
    seed = seed_model(inputs)
    unknowns = assumptions(inputs)
    simulated = {}
    if args.simulate:
        simulated = {"cold": _simulation(args, inputs, 0), "warm": _simulation(args, inputs, inputs.keep_alive)}
    if args.json:
        print(json.dumps({"inputs": _inputs_dict(inputs), "seed_model": seed,
                          "estimates": {"cold": cold.to_dict(), "warm": warm.to_dict()},
                          "assumptions": [a.to_dict() for a in unknowns],
                          "simulations": {k: r.to_dict() for k, r in simulated.items()}}, indent=2, default=str))
        return 0

    k = inputs.fold_jobs_per_trial
    layout = ("one driver job creates them" if inputs.driver
              else ", fold 0 on the coordinator" if inputs.coordinator_trains_fold else "")
    print(f"warmcv plan ({inputs.strategy} strategy): M={inputs.parallel} parallel trials x N={inputs.rounds} rounds, "
          f"K={inputs.folds} folds ({k} fold jobs per trial{'; ' if inputs.driver else ''}{layout}); "
          f"start-up {short(inputs.startup)} cold, {short(inputs.warm_startup)} warm; training {short(inputs.train)}; "
          f"keep-alive {inputs.keep_alive} s; {inputs.instance_type}\n")
    header = ["", "arithmetic cold", "arithmetic warm", "warmcv cold", "warmcv warm"]
    if simulated:
        header += ["simulated cold", "simulated warm"]
    limit = inputs.rounds * inputs.train

    def row(label: str, seed_cold: str, seed_warm: str, value: Any, sim: Any = None) -> list[str]:
        cells = [label, seed_cold, seed_warm, value(cold), value(warm)]
        if simulated:
            cells += [sim(simulated["cold"]) if sim else "", sim(simulated["warm"]) if sim else ""]
        return cells

    price = inputs.price
    rows = [
        row("wall time", hours(seed["cold_seconds"]), hours(seed["warm_seconds"]), lambda e: hours(e.wall_seconds),
            lambda r: hours(r.wall_seconds)),
        row("training-only limit (N x T)", hours(limit), hours(limit), lambda e: hours(e.training_limit_seconds),
            lambda r: hours(r.training_limit_seconds)),
        row("overhead above the limit", percent(seed["cold_seconds"] / limit - 1),
            percent(seed["warm_seconds"] / limit - 1), lambda e: percent(e.overhead_share),
            lambda r: percent(r.overhead_seconds / r.training_limit_seconds)),
        row("first trial", "", "", lambda e: short(e.first_trial_seconds),
            lambda r: short(r.breakdown_first.total)),
        row("later trials, each", "", "", lambda e: short(e.later_trial_seconds),
            lambda r: short(r.breakdown_warm.total)),
        row("jobs (coordinators or driver + fold jobs)", "", "", lambda e: number(e.jobs), lambda r: number(r.jobs)),
        row("fold jobs started cold", "", "", lambda e: number(e.fold_starts_cold),
            lambda r: number(r.fold_jobs - r.fold_jobs_warm)),
        row("fold jobs started on warm pools", "", "", lambda e: number(e.fold_starts_warm),
            lambda r: number(r.fold_jobs_warm)),
        row("instance-hours: coordinators or driver", "", "",
            lambda e: number(e.instance_hours["coordinators"] + e.instance_hours.get("driver", 0.0)),
            lambda r: number((r.billing_total.get("coordinator", 0) + r.billing_total.get("driver", 0)) / 3600)),
        row("instance-hours: fold jobs", "", "", lambda e: number(e.instance_hours["fold_jobs"]),
            lambda r: number(r.billing_total.get("fold", 0) / 3600)),
        row("instance-hours: idle warm pools", "", "",
            lambda e: number(e.instance_hours["warm_pools_between_trials"] + e.instance_hours[
                "warm_pools_after_last_trial"]), lambda r: number(r.billing_total.get("warm_pool", 0) / 3600)),
        row("instance-hours: total", "", "", lambda e: number(e.instance_hours["total"]),
            lambda r: number(r.instance_hours)),
    ]
    if price is not None:
        rows.append(row(f"cost at {price:g}/instance-hour", "", "", lambda e: number(e.cost, 2),
                        lambda r: number(r.instance_hours * price, 2)))
    rows += [
        row(f"quota: '{inputs.instance_type} for training job usage'", "", "",
            lambda e: number(e.training_instances), lambda r: number(r.peak_instances)),
        row(f"quota: '{inputs.instance_type} for training warm pool usage'", "", "",
            lambda e: number(e.warm_pool_instances), lambda r: number(r.peak_pool_instances)),
        row("CreateTrainingJob per second (limit ~1)", "", "", lambda e: f"{e.creates_per_second:.3f}",
            lambda r: f"{r.api.get('CreateTrainingJob', {}).get('per_second', 0):.3f}"),
        row("ListTrainingJobs per second (polls; ~2 allowed)", "", "", lambda e: f"{e.lists_per_second:.2f}",
            lambda r: f"{r.api.get('ListTrainingJobs', {}).get('per_second', 0):.2f}"),
    ]
    print(table(header, rows))
    print("\narithmetic: N x (S + T) cold, S + T + (N - 1) x T warm (no coordinator, instant warm starts, no API "
          "pacing or polling); warmcv: the closed forms of docs/simulation.md")
    print("\nAssumptions AWS publishes no figure for, and the warm-pool estimate across each one's range "
          "(wall time, instance-hours):")
    print(table(["assumption", "used", "low", "middle", "high"],
                [[a.name, a.used] + [f"{label}: {hours(e.wall_seconds)}, {number(e.instance_hours['total'])}"
                                     for label, e in a.points] for a in unknowns]))
    print("\nA later trial, step by step:")
    steps = [("tuner_gap", "tuner's gap"), ("coordinator_startup", "coordinator start-up"),
             ("discovery", "self-discovery"), ("create_pacing", "paced creates"), ("fold_startup", "fold start-up"),
             ("training", "training (the slowest fold)"), ("noticing", "noticing the last fold")]
    step_header = ["", "warmcv cold", "warmcv warm"] + (["simulated cold", "simulated warm"] if simulated else [])
    step_rows = []
    for key, label in steps:
        cells = [label, short(cold.breakdown[key]), short(warm.breakdown[key])]
        if simulated:
            cells += [short(getattr(simulated[s].breakdown_warm, key)) for s in ("cold", "warm")]
        step_rows.append(cells)
    print(table(step_header, step_rows))
    notes = dict.fromkeys(warm.notes + cold.notes)
    for note in notes:
        print(f"\nnote: {note}")
    if simulated:
        real = sum(r.real_seconds for r in simulated.values())
        print(f"\nsimulated with seed {args.seed}, noise {args.noise:g}: "
              f"{sum(r.jobs for r in simulated.values()):,} jobs in {real:.1f} s of real time")
    return 0


def _inputs_dict(inputs: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(inputs)


# -- simulate --------------------------------------------------------------------------------------------------
def _simulate(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from warmcv.simulation.tables import hours, number, percent, short, table

    inputs = _inputs(args)
    report = _simulation(args, inputs, inputs.keep_alive)
    if args.trials_csv:
        _write_trials(report, args.trials_csv)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return 0
    t = report.tuning
    print(f"simulated ({t.strategy} strategy): M={t.parallel} x N={t.rounds} trials, K={t.folds} folds"
          f"{' (fold 0 on the coordinator)' if t.coordinator_trains_fold else ''}, keep-alive {t.keep_alive} s, "
          f"seed {report.workload.seed}, noise {report.workload.train_cv:g}: {report.jobs:,} jobs in "
          f"{report.real_seconds:.1f} s of real time\n")
    billing = report.billing_total
    after = sum(billing.values()) - sum(report.billing_during.values())
    rows = [
        ["trials completed / failed / stopped / launched",
         f"{report.completed} / {report.failed} / {len(report.trials) - report.completed - report.failed} / "
         f"{len(report.trials)}"],
        ["wall time", hours(report.wall_seconds)],
        ["training-only limit (these trials' slowest folds)", hours(report.training_limit_seconds)],
        ["overhead above the limit", f"{short(report.overhead_seconds)} "
                                     f"({percent(report.overhead_seconds / report.training_limit_seconds)})"],
        ["fold jobs cold / on warm pools", f"{report.fold_jobs - report.fold_jobs_warm:,} / {report.fold_jobs_warm:,}"],
        *([["driver jobs", number(report.driver_jobs)],
           ["instance-hours: driver", number(billing.get("driver", 0) / 3600)]] if t.strategy == "driver" else [
            ["coordinators cold / on reused instances",
             f"{report.coordinators_cold:,} / {len(report.trials) - report.coordinators_cold:,}"],
            ["coordinators that took a fold's warm pool", number(report.coordinators_on_fold_pools)],
            ["instance-hours: coordinators", number(billing.get("coordinator", 0) / 3600)]]),
        ["instance-hours: fold jobs", number(billing.get("fold", 0) / 3600)],
        ["instance-hours: idle warm pools (after the last trial)",
         f"{number(billing.get('warm_pool', 0) / 3600)} ({number(after / 3600)})"],
        ["instance-hours: total", number(report.instance_hours)],
    ]
    if inputs.price is not None:
        rows.append([f"cost at {inputs.price:g}/instance-hour", number(report.instance_hours * inputs.price, 2)])
    rows += [
        ["peak training instances / warm-pool instances", f"{report.peak_instances} / {report.peak_pool_instances}"],
        ["botocore retries (throttling absorbed)", number(report.client_retries)],
        ["best objective (average validation score)", "-" if report.best_objective is None
         else f"{report.best_objective:.6f}"],
    ]
    if report.tuning_failure:
        rows.append(["tuning job failed", report.tuning_failure])
    if report.orphans:
        rows.append(["fold jobs left running", ", ".join(report.orphans[:5])])
    print(table(["", "value"], rows))
    print("\nWhere a trial's time goes (critical path, mean seconds):")
    first, later = asdict(report.breakdown_first), asdict(report.breakdown_warm)
    print(table(["", "first trial of a slot", "later trials"],
                [[k.replace("_", " "), f"{first[k]:.2f}", f"{later[k]:.2f}"] for k in first]
                + [["total", f"{report.breakdown_first.total:.2f}", f"{report.breakdown_warm.total:.2f}"]]))
    print("\nAPI requests (account-wide, every attempt):")
    print(table(["operation", "requests", "throttled", "per second", "busiest second"],
                [[op, number(s["requests"]), number(s["throttled"]), f"{s['per_second']:.3f}",
                  number(s["peak_per_second"])] for op, s in sorted(report.api.items())]))
    for problem in report.tuner_limits:
        print(f"\nwarning: {problem}")
    failures = [t for t in report.trials if t.status == "Failed"]
    if failures:
        print(f"\n{len(failures)} trial(s) failed; the first: {failures[0].name}: {failures[0].failure}")
    return 0


def _write_trials(report: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["index", "slot", "name", "status", "cold", "launched_at", "startup", "started_at", "discovered_at",
              "folds_done_at", "ended_at", "objective", "failure"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(fields)
        for trial in report.trials:
            writer.writerow([getattr(trial, f) for f in fields])
