"""The seed's figure and warmcv's own, from the simulator driving the real coordinator and fold runner.

    python bench/simulate_seed.py            # about two minutes on 2 cores
    python bench/simulate_seed.py --quick    # N = 30 instead of 120

1. The motivating figure: N = 120 sequential rounds, 3-minute start, 2-minute training: N x (S + T) = 10 h cold,
   S + T + (N - 1) x T = 4.05 h warm, under its own assumptions (instant warm starts, exact times), closed form
   and simulated.
2. The seed's configuration, M = 4 parallel trials x N = 120 rounds x K = 5 folds (2,880 jobs), with noisy
   times (10 %): the K + 1 design and coordinator_trains_fold, cold and warm, with 20-second warm starts
   and with instant ones; wall time against the training-only limit, warmcv's own share, instance-hours.
3. Where a warm trial's time goes.
4. How the overhead shrinks as folds train longer.
5. The driver strategy against the tuner at the seed's configuration (20-s warm starts): one driver job runs the
   search and creates every trial's fold jobs itself (no coordinator per trial), with and without fold-level
   pruning; the figures `warmcv simulate --strategy driver` prints.

Every figure comes from one run of this script (seed 0); the real seconds each simulation took are shown.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "container_src")]

from warmcv.simulation.plan import PlanInputs, estimate, seed_model  # noqa: E402
from warmcv.simulation.tables import hours, markdown, percent  # noqa: E402
from warmcv.simulation.tuning import SimulationReport, Tuning, simulate  # noqa: E402
from warmcv.simulation.workload import Workload  # noqa: E402

S, T = 180.0, 120.0


def own_share(report: SimulationReport) -> float:
    """warmcv's own seconds per later trial: self-discovery, paced creates, noticing the last fold."""
    b = report.breakdown_warm
    return b.discovery + b.create_pacing + b.noticing + b.exit


def seed_figure(rounds: int) -> None:
    print(f"## 1. The motivating figure: N = {rounds} sequential rounds, 3-min start, 2-min training, K = 5\n")
    seed = seed_model(PlanInputs(parallel=1, rounds=rounds, folds=5, startup=S, train=T))
    instant = Workload(startup=S, train=T, warm_startup=0.0, train_cv=0.0, startup_cv=0.0)
    rows = []
    for label, keep_alive, seed_seconds in (("cold (no warm pools)", 0, seed["cold_seconds"]),
                                            ("warm pools", 600, seed["warm_seconds"])):
        closed = estimate(PlanInputs(parallel=1, rounds=rounds, folds=5, startup=S, train=T, warm_startup=0.0,
                                     keep_alive=keep_alive), warm=keep_alive > 0)
        report = simulate(Tuning(parallel=1, rounds=rounds, folds=5, keep_alive=keep_alive), instant)
        rows.append([label, hours(seed_seconds), hours(closed.wall_seconds), hours(report.wall_seconds),
                     f"{own_share(report):.1f} s", f"{report.real_seconds:.1f} s"])
    print(markdown(["", "arithmetic", "warmcv plan", "warmcv simulated", "warmcv's own per trial", "real time"], rows))
    print("\nBoth warmcv columns add what the arithmetic leaves out: the coordinator's own cold start in the first "
          "round, and per trial the paced creates, the polls and the S3 reads.\n")


SCENARIOS = [  # label, coordinator_trains_fold, keep_alive, warm start-up
    ("K + 1, cold (keep-alive 0)", False, 0, 20.0),
    ("K + 1, warm pools", False, 600, 20.0),
    ("coordinator trains fold 0, warm pools", True, 600, 20.0),
    ("K + 1, warm pools, instant warm starts", False, 600, 0.0),
    ("coordinator trains fold 0, instant warm starts", True, 600, 0.0),
]


def seed_configuration(rounds: int) -> dict[str, SimulationReport]:
    print(f"## 2. The seed's configuration: M = 4 x N = {rounds} x K = 5, noisy times (10 %), seed 0\n")
    reports = {}
    rows = []
    for label, own, keep_alive, warm in SCENARIOS:
        report = simulate(Tuning(parallel=4, rounds=rounds, folds=5, keep_alive=keep_alive,
                                 coordinator_trains_fold=own), Workload(startup=S, train=T, warm_startup=warm))
        reports[label] = report
        share = own_share(report)
        bill = report.billing_total
        rows.append([label, f"{report.jobs:,}", hours(report.wall_seconds), hours(report.training_limit_seconds),
                     percent(report.overhead_seconds / report.training_limit_seconds),
                     f"{share:.1f} s ({percent(share / report.breakdown_warm.training)})",
                     f"{report.instance_hours:.1f}", f"{bill.get('coordinator', 0) / 3600:.1f}",
                     f"{bill.get('warm_pool', 0) / 3600:.1f}", f"{report.real_seconds:.1f} s"])
    print(markdown(["", "jobs", "wall", "training-only limit", "overhead", "warmcv's own per trial",
                    "instance-hours", "coordinators", "idle pools", "real time"], rows))
    plain, own = reports["K + 1, warm pools"], reports["coordinator trains fold 0, warm pools"]
    cold = reports["K + 1, cold (keep-alive 0)"]
    print(f"\nratios: warm / cold wall time {plain.wall_seconds / cold.wall_seconds:.2f}; coordinator_trains_fold / "
          f"K + 1 instance-hours {own.instance_hours / plain.instance_hours:.2f}, wall time "
          f"{own.wall_seconds / plain.wall_seconds:.3f}\n")
    return reports


def breakdown(reports: dict[str, SimulationReport]) -> None:
    print("## 3. A later (warm) trial, step by step (mean seconds on its critical path)\n")
    labels = ["K + 1, warm pools", "coordinator trains fold 0, warm pools",
              "coordinator trains fold 0, instant warm starts"]
    steps = ["tuner_gap", "coordinator_startup", "discovery", "create_pacing", "fold_startup", "training",
             "noticing", "exit"]
    rows = [[step.replace("_", " ")] + [f"{getattr(reports[label].breakdown_warm, step):.1f}" for label in labels]
            for step in steps]
    rows.append(["total"] + [f"{reports[label].breakdown_warm.total:.1f}" for label in labels])
    print(markdown([""] + labels, rows))
    print()


def longer_folds(rounds: int) -> None:
    print("## 4. Overhead as folds train longer (M = 4, coordinator trains fold 0, 20-s warm starts)\n")
    rows = []
    for minutes in (2, 5, 10, 30):
        report = simulate(Tuning(parallel=4, rounds=rounds, folds=5, coordinator_trains_fold=True),
                          Workload(startup=S, train=60.0 * minutes))
        share = own_share(report)
        rows.append([f"{minutes} min", hours(report.wall_seconds), hours(report.training_limit_seconds),
                     percent(report.overhead_seconds / report.training_limit_seconds),
                     percent(report.breakdown_warm.overhead() / report.breakdown_warm.training),
                     percent(share / report.breakdown_warm.training), f"{report.real_seconds:.1f} s"])
    print(markdown(["fold training", "wall", "training-only limit", "overhead (whole run)",
                    "per later trial", "of which warmcv's own", "real time"], rows))


def strategies(rounds: int, reports: dict[str, SimulationReport]) -> None:
    print(f"\n## 5. The driver strategy against the tuner: M = 4 x N = {rounds} x K = 5, 2-min folds, "
          "20-s warm starts\n")
    tuner = reports["coordinator trains fold 0, warm pools"]
    driver = simulate(Tuning(strategy="driver", parallel=4, rounds=rounds, folds=5), Workload(startup=S, train=T))
    pruned = simulate(Tuning(strategy="driver", parallel=4, rounds=rounds, folds=5, prune=True),
                      Workload(startup=S, train=T))
    rows = []
    for label, report in (("tuner (amt), coordinator trains fold 0", tuner), ("driver", driver),
                          ("driver, fold-level pruning", pruned)):
        counts = report.to_dict()["trials"]
        rows.append([label, f"{report.jobs:,}", hours(report.wall_seconds), hours(report.training_limit_seconds),
                     f"{report.wall_seconds / report.training_limit_seconds:.3f}",
                     f"{report.breakdown_warm.total:.1f} s", f"{report.instance_hours:.1f}",
                     f"{counts['completed']} / {counts.get('pruned', 0)}", f"{report.real_seconds:.1f} s"])
    print(markdown(["", "jobs", "wall", "training-only limit", "x limit", "later trial", "instance-hours",
                    "trials complete / pruned", "real time"], rows))
    print(f"\nratios: driver / tuner wall time {driver.wall_seconds / tuner.wall_seconds:.3f}, instance-hours "
          f"{driver.instance_hours / tuner.instance_hours:.3f}; the driver's own instance "
          f"{driver.billing_total.get('driver', 0) / 3600:.1f} instance-hours of them")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 30 rounds instead of 120")
    rounds = 30 if parser.parse_args().quick else 120
    began = time.perf_counter()
    seed_figure(rounds)
    reports = seed_configuration(rounds)
    breakdown(reports)
    longer_folds(rounds)
    strategies(rounds, reports)
    print(f"\n(all simulations: {time.perf_counter() - began:.0f} s of real time)")


if __name__ == "__main__":
    main()
