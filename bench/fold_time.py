#!/usr/bin/env python
"""A fold's time before and after issue 16's "no per-round work nobody reads", on the same configurations.

`train_fold` is timed on every fold of a set of configurations sampled from warmcv's default search
space (Optuna's random sampler, seeded), one LightGBM thread, on Datasets binned beforehand (the warm
workers' steady state), in three variants, each in its own fresh process:

  before        the code at --before (default: the commit before the change), extracted with git archive
  after         this checkout, as the local search calls it: the objective metric only
  after, all    this checkout, as a fold job or a saved model calls it: every metric of the task

Two groups of configurations: fixed rounds without early stopping (200 rounds, the issue's setting) and
the default early stopping (at most 1000 rounds, patience 50). The variants alternate over --repeats runs
and each fold keeps its fastest run, so a burst of load elsewhere does not land on one variant only.
It prints seconds per group and variant (wall, and the process's CPU seconds), the ratio after/before,
and whether every fold's scores are the same before and after. Then (--ways) it times, on one fold, the
ways to the validation predictions the score needs: the metric evaluated every round (before), the
validation set attached with no metric (after), the set added after training, a predict pass, and
none at all (the trees alone), and checks that they give the same predictions (adding the set after
training does not when LightGBM ran out of splits before the last round).

    python bench/fold_time.py                          # UCI Adult, 6 + 6 configurations, 2 runs each
    python bench/fold_time.py --data classification    # the 200k-row synthetic set
    python bench/fold_time.py --configs 2 --repeats 1 --folds 2 --rounds 20   # a smoke run of the script
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The last commit before the change: what "before" means unless --before says otherwise.
BEFORE = "86d1600"
VARIANTS = ("before", "after", "after, all")


# -- the child: time train_fold with the warmcv it was given --------------------------------------------
def child(src: str, prepared: str, configs_file: str, variant: str, out: str) -> None:
    sys.path.insert(0, src)
    from warmcv.data.manifest import PreparedData
    from warmcv.declarations import parse_hyperparameters
    from warmcv.model.params import training_setup
    from warmcv.model.training import DatasetCache, train_fold

    assert Path(inspect.getfile(train_fold)).is_relative_to(src), "imported the wrong warmcv"
    data = PreparedData.load(prepared)
    configs = json.loads(Path(configs_file).read_text())
    cache = DatasetCache(max_entries=4 * data.manifest.n_folds)
    kwargs = {} if variant == "before" else {"all_metrics": variant == "after, all"}
    # Bin every fold (and warm the imports scoring needs) before the clock starts.
    one_round = parse_hyperparameters({**configs[0]["hyperparameters"], "num_boost_round": "1"})
    for fold in range(data.manifest.n_folds):
        train_fold(data, training_setup(one_round, data.manifest, num_threads=1), fold, cache=cache, **kwargs)
    rows = []
    for config in configs:
        setup = training_setup(parse_hyperparameters(config["hyperparameters"]), data.manifest, num_threads=1)
        for fold in range(data.manifest.n_folds):
            cpu, wall = time.process_time(), time.perf_counter()
            outcome = train_fold(data, setup, fold, cache=cache, **kwargs)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert outcome.dataset_cached, "the Dataset was binned inside the clock"
            rows.append({"config": config["id"], "fold": fold, "wall": wall, "cpu": cpu,
                         "validation": outcome.validation_score, "train": outcome.train_score,
                         "best_iteration": outcome.best_iteration})
    Path(out).write_text(json.dumps(rows))


# -- the child of --ways: how to get a fold's validation predictions without evaluating a metric ----------
def ways_child(src: str, prepared: str, configs_file: str, repeats: str, out: str) -> None:
    """One fold, one fixed-rounds configuration, each way to the validation predictions timed (min CPU)."""
    sys.path.insert(0, src)
    import lightgbm as lgb
    import numpy as np

    from warmcv.data.manifest import PreparedData
    from warmcv.declarations import parse_hyperparameters
    from warmcv.model.params import NO_METRIC, training_setup

    data = PreparedData.load(prepared)
    config = next(c for c in json.loads(Path(configs_file).read_text())
                  if c["hyperparameters"]["early_stopping_rounds"] == "0")
    setup = training_setup(parse_hyperparameters(config["hyperparameters"]), data.manifest, num_threads=1)
    train_mask, valid_mask = data.manifest.fold_masks(data.folds, 0)
    train = lgb.Dataset(data.features[train_mask], label=data.label[train_mask], params=setup.dataset_params)
    valid = lgb.Dataset(data.features[valid_mask], label=data.label[valid_mask], reference=train,
                        params=setup.dataset_params)
    train.construct()
    valid.construct()
    valid_features = data.features[valid_mask]
    rounds, quiet = setup.num_boost_round, {**setup.params, "metric": NO_METRIC}
    metric = setup.metric.lightgbm_metric[setup.task]

    def running(booster: lgb.Booster) -> np.ndarray:
        kept = []
        booster.eval_valid(feval=lambda prediction, _: (kept.append(np.array(prediction)), ("kept", 0.0, True))[1])
        return kept[0]

    def before() -> np.ndarray:  # what train_fold did: the objective's metric evaluated at every round
        booster = lgb.train({**setup.params, "metric": metric}, train, rounds, valid_sets=[valid],
                            keep_training_booster=True)
        return running(booster)

    def attached() -> np.ndarray:  # what train_fold does now: attached, no metric
        return running(lgb.train(quiet, train, rounds, valid_sets=[valid], keep_training_booster=True))

    def added_after() -> np.ndarray:
        booster = lgb.train(quiet, train, rounds, keep_training_booster=True)
        booster.add_valid(valid, "validation")
        return running(booster)

    def predicted_after() -> np.ndarray:
        return lgb.train(quiet, train, rounds, keep_training_booster=True).predict(valid_features)

    def trees_only() -> None:
        lgb.train(quiet, train, rounds, keep_training_booster=True)

    ways = {"the metric every round (before)": before, "attached, no metric (after)": attached,
            "added after training": added_after, "a predict pass after training": predicted_after,
            "no validation predictions at all": trees_only}
    reference = attached()
    trees = lgb.train(quiet, train, rounds, keep_training_booster=True).current_iteration()
    rows = []
    for name, way in ways.items():
        prediction = way()
        same = None if prediction is None else bool(np.array_equal(prediction, reference))
        cpu = []
        for _ in range(int(repeats)):
            started = time.process_time()
            way()
            cpu.append(time.process_time() - started)
        rows.append({"way": name, "cpu": min(cpu), "same_predictions": same})
    Path(out).write_text(json.dumps({"rounds": rounds, "trees": trees, "rows": rows}))


# -- the parent ------------------------------------------------------------------------------------------
@dataclass
class Group:
    name: str
    fixed: dict[str, str]


def sample_configs(groups: Sequence[Group], per_group: int, seed: int) -> list[dict]:
    import optuna

    sys.path.insert(0, str(REPO / "container_src"))
    from warmcv.tuning.space import as_hyperparameters, distributions, resolve_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    configs = []
    for group in groups:
        space = resolve_space(fixed=group.fixed)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        for i in range(per_group):
            sampled = as_hyperparameters(study.ask(distributions(space)).params)
            configs.append({"id": f"{group.name}-{i}", "group": group.name,
                            "hyperparameters": {**sampled, **group.fixed}})
    return configs


def extract_before(revision: str, into: Path) -> Path:
    """container_src at `revision`, written out with git archive (the checkout itself is not touched)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "container_src"], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"cannot read container_src at {revision!r}: {archive.stderr.decode().strip()} "
                         "(pass --before with a commit of this repository)")
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "container_src"


def run_child(src: Path, prepared: Path, configs_file: Path, variant: str, out: Path) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, __file__, "--child", str(src), str(prepared), str(configs_file), variant,
                           str(out)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the {variant!r} run failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def fastest(runs: Sequence[Sequence[dict]]) -> dict[tuple[str, int], dict]:
    """Per (configuration, fold), the row of the run with the least wall time."""
    best: dict[tuple[str, int], dict] = {}
    for rows in runs:
        for row in rows:
            key = (row["config"], row["fold"])
            if key not in best or row["wall"] < best[key]["wall"]:
                best[key] = row
    return best


def compare_scores(before: Mapping, after: Mapping) -> tuple[int, float]:
    """How many folds' scores differ at all, and the largest relative difference."""
    differing, largest = 0, 0.0
    for key, row in before.items():
        for field in ("validation", "train"):
            a, b = row[field], after[key][field]
            if a != b:
                differing += 1
                largest = max(largest, abs(a - b) / max(abs(a), 1e-300))
    return differing, largest


def report(configs: Sequence[dict], results: Mapping[str, Mapping], groups: Sequence[Group]) -> list[str]:
    lines = [f"{'configurations':<30} {'fits':>5}  " + "  ".join(f"{v:>12}" for v in VARIANTS)
             + f"  {'after/before':>12}  {'after, all/before':>17}"]
    for group in groups:
        ids = {c["id"] for c in configs if c["group"] == group.name}
        totals = {}
        for variant in VARIANTS:
            rows = [r for (config, _), r in results[variant].items() if config in ids]
            totals[variant] = (sum(r["wall"] for r in rows), sum(r["cpu"] for r in rows), len(rows))
        label = f"{group.name}, {len(ids)} configs"
        cells = "  ".join(f"{totals[v][0]:>10.2f} s" for v in VARIANTS)
        lines.append(f"{label:<30} {totals['before'][2]:>5}  {cells}  {totals['after'][0] / totals['before'][0]:>12.3f}"
                     f"  {totals['after, all'][0] / totals['before'][0]:>17.3f}")
        cells = "  ".join(f"{totals[v][1]:>8.2f} cpu" for v in VARIANTS)
        lines.append(f"{'  CPU seconds':<30} {'':>5}  {cells}  "
                     f"{totals['after'][1] / totals['before'][1]:>12.3f}  "
                     f"{totals['after, all'][1] / totals['before'][1]:>17.3f}")
    for variant in ("after", "after, all"):
        differing, largest = compare_scores(results["before"], results[variant])
        verdict = "identical" if differing == 0 else f"{differing} differ, by at most {largest:.1e} relative"
        lines.append(f"scores before vs {variant}: {verdict} (validation and training objective, every fold)")
    return lines


def ways_report(tmp_path: Path, repeats: int) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = tmp_path / "ways.json"
    done = subprocess.run([sys.executable, __file__, "--ways-child", str(REPO / "container_src"),
                           str(tmp_path / "prepared"), str(tmp_path / "configs.json"), str(repeats), str(out)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"timing the ways to the validation predictions failed:\n{done.stderr[-3000:]}")
    result = json.loads(out.read_text())
    trees = "" if result["trees"] == result["rounds"] else (
        f" (LightGBM ran out of splits after {result['trees']} trees: adding the set after training then goes wrong)")
    lines = [f"one fold, {result['rounds']} rounds, 1 thread, least CPU seconds of {repeats}: the ways to its "
             f"validation predictions{trees}"]
    for row in result["rows"]:
        same = {True: "equal to the attached set's", False: "NOT EQUAL", None: "-"}[row["same_predictions"]]
        lines.append(f"  {row['way']:<36} {row['cpu']:>7.3f} s   predictions {same}")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(*argv[1:6])
        return 0
    if argv and argv[0] == "--ways-child":
        ways_child(*argv[1:6])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="adult", help="adult (default), classification or breast_cancer")
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the synthetic classification set")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--configs", type=int, default=6, help="configurations per group (default 6)")
    parser.add_argument("--rounds", type=int, default=200, help="rounds of the fixed-rounds group (default 200)")
    parser.add_argument("--groups", default="fixed,early", help="fixed (no early stopping), early, or both")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs per variant (default 2); each fold keeps its fastest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--before", default=BEFORE, help=f"the revision to compare with (default {BEFORE})")
    parser.add_argument("--ways", type=int, default=5, metavar="REPEATS",
                        help="also time the ways to one fold's validation predictions, REPEATS times each "
                             "(default 5; 0: skip)")
    parser.add_argument("--json", type=Path, help="also write every fold's figures here")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "bench"))
    sys.path.insert(0, str(REPO / "container_src"))
    import bench_data
    import lightgbm as lgb

    from warmcv.data.prepare import PrepareOptions, prepare

    known = {"fixed": Group(f"fixed {args.rounds} rounds", {"num_boost_round": str(args.rounds),
                                                             "early_stopping_rounds": "0"}),
             "early": Group("early stopping 50", {"num_boost_round": "1000", "early_stopping_rounds": "50"})}
    groups = [known[g] for g in args.groups.split(",")]
    with tempfile.TemporaryDirectory(prefix="warmcv-fold-time-") as tmp:
        tmp_path = Path(tmp)
        frame, label = bench_data.load(args.data, args.rows)
        frame.to_parquet(tmp_path / "raw.parquet")
        prepare(tmp_path / "raw.parquet", tmp_path / "prepared",
                PrepareOptions(target=bench_data.TARGET, folds=args.folds, seed=args.seed))
        configs = sample_configs(groups, args.configs, args.seed)
        (tmp_path / "configs.json").write_text(json.dumps(configs))
        sources = {"before": extract_before(args.before, tmp_path / "before"),
                   "after": REPO / "container_src", "after, all": REPO / "container_src"}
        print(f"fold time: {label}, {args.folds} folds, 1 LightGBM thread, prebinned Datasets; before = "
              f"{args.before}; {args.repeats} runs per variant, each fold's fastest kept; lightgbm {lgb.__version__}, "
              f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}", flush=True)
        runs: dict[str, list[list[dict]]] = {v: [] for v in VARIANTS}
        for repeat in range(args.repeats):
            order = VARIANTS[repeat % 3:] + VARIANTS[:repeat % 3]  # rotate, so no variant always runs first
            for variant in order:
                started = time.perf_counter()
                runs[variant].append(run_child(sources[variant], tmp_path / "prepared", tmp_path / "configs.json",
                                               variant, tmp_path / "out.json"))
                print(f"   run {repeat + 1}, {variant}: {time.perf_counter() - started:.1f} s", flush=True)
        results = {v: fastest(runs[v]) for v in VARIANTS}
        print("\n".join(report(configs, results, groups)))
        if args.ways and "fixed" in args.groups.split(","):
            print("\n".join(ways_report(tmp_path, args.ways)))
        print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")
        if args.json:
            args.json.write_text(json.dumps({"configs": configs, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
