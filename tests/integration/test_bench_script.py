"""The benchmarks run end to end and print what they promise (tiny budgets: smoke tests, not figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

REPO = Path(__file__).resolve().parents[2]
ARMS = ("warmcv run", "Optuna TPE + lightgbm.cv", "FLAML, same space and time budget", "the packed limit")


def test_run_vs_peers_runs_every_arm_and_prints_curves_targets_and_the_readme_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_vs_peers.py"), "--datasets", "classification", "--rows", "3000",
         "--trials", "3", "--folds", "2", "--rounds", "10", "--json", str(tmp_path / "bench.json"), "--markdown",
         "--plot", str(tmp_path / "plots"), "--omp-wait-policy", "passive"],
        capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert done.returncode == 0, done.stderr + done.stdout[-3000:]
    out = done.stdout
    for arm in ARMS:
        assert out.count(arm) >= 2, arm  # progress line and table row (and curves for the searches)
    for text in ("best CV auc so far, by seconds since launch", "warmcv search / limit:", "warmcv whole run / limit:",
                 "CPU: warmcv's process tree", "CPU: warmcv's search", "warmcv vs Optuna:", "README table (markdown)",
                 "| --- | ---: | ---: | ---: | ---: | ---: |"):
        assert text in out, text
    assert (tmp_path / "plots" / "classification.png").stat().st_size > 0

    [result] = json.loads((tmp_path / "bench.json").read_text())
    arms = {a["name"]: a for a in result["arms"]}
    warm, optuna, flaml, limit = (arms[name] for name in ARMS)
    # The limit re-fitted every fold of every configuration warmcv tried (the bench checks the scores match).
    assert warm["trials"] == optuna["trials"] == limit["trials"] == 3 and result["limit_fits"] == 6
    assert limit["ratio_to_limit"] == 1.0 and limit["wall_seconds"] == result["limit_seconds"]
    assert 0 < warm["search_seconds"] < warm["wall_seconds"]
    # Process-tree CPU: warmcv's workers are counted (more than the limit's bare fits of the same configurations).
    assert warm["cpu_seconds"] > result["limit_cpu_seconds"] > 0
    assert 0 < warm["search_cpu_seconds"] < warm["cpu_seconds"]  # the search's share, sampled during the run
    assert all(a["cpu_seconds"] > 0 and a["wall_seconds"] > 0 for a in result["arms"])
    for arm in (warm, optuna, flaml):
        times = [t for t, _ in arm["curve"]]
        values = [v for _, v in arm["curve"]]
        assert times == sorted(times) and values == sorted(values) and values[-1] == arm["best"]
        assert 0 < times[-1] <= arm["wall_seconds"]
    assert flaml["trials"] >= 1
    # Optuna reaches its own best when its best trial finishes.
    assert optuna["reaches_target_at"] == optuna["curve"][-1][0]
    markdown = out.split("README table (markdown):", 1)[1].strip().splitlines()
    assert len(markdown) == 2 + len(ARMS) and all(line.startswith("| ") for line in markdown)


def test_fold_time_compares_before_and_after_on_the_same_configurations(tmp_path: Path) -> None:
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("bench/fold_time.py reads the code before the change from git; this checkout has no history")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fold_time.py"), "--data", "breast_cancer", "--configs", "1",
         "--repeats", "1", "--folds", "2", "--rounds", "10", "--before", "HEAD", "--ways", "1", "--json", str(tmp_path / "f.json")],
        capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert done.returncode == 0, done.stderr + done.stdout[-3000:]
    assert "fixed 10 rounds, 1 configs" in done.stdout and "early stopping 50, 1 configs" in done.stdout
    assert "scores before vs after: identical" in done.stdout
    # The ways to a fold's validation predictions, all timed; the metric-every-round and predict-pass ways give the
    # attached set's predictions (adding the set after training need not: see fold_time.py).
    lines = {line.strip().split("  ")[0]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    for way in ("the metric every round (before)", "attached, no metric (after)", "a predict pass after training"):
        assert "predictions equal to the attached set's" in lines[way], way
    assert "added after training" in lines and "no validation predictions at all" in lines
    runs = json.loads((tmp_path / "f.json").read_text())["runs"]
    assert sorted(runs) == ["after", "after, all", "before"] and all(len(r[0]) == 4 for r in runs.values())


def test_the_pruning_bench_runs_every_arm_and_replays_the_rules(tmp_path: Path) -> None:
    """`bench/pruning.py --quick` end to end (its Optuna arm once broke when folds stopped evaluating a metric
    while boosting, and nothing ran it)."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "pruning.py"), "--quick", "--datasets", "classification",
         "--json", str(tmp_path / "pruning.json"), "--omp-wait-policy", "passive"],
        capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert done.returncode == 0, done.stderr + done.stdout[-3000:]
    out = done.stdout
    for text in ("optuna+cv", "warmcv off", "warmcv prune paired-bound", "best-so-far curves",
                 "must-hold (warmcv prune paired-bound)", "the rules replayed on warmcv off's"):
        assert text in out, text
    document = json.loads((tmp_path / "pruning.json").read_text())
    assert document, "the JSON holds the comparison"
