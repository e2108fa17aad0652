"""bench/run_vs_peers.py runs every arm and prints the table and the targets (tiny budget: a smoke test, not figures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_smoke(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "container_src")}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_vs_peers.py"), "--quick", "--trials", "2", "--folds", "2",
         "--rows", "3000", "--json", str(tmp_path / "bench.json"), "--omp-wait-policy", "passive"],
        capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for arm in ("warmcv run engine", "optuna + lightgbm.cv", "cold process per fold", "training compute (bound)"):
        assert out.count(arm) >= 4  # progress line and table row, for both data sets
    assert "target faster than optuna + lightgbm.cv" in out and "target best CV no worse" in out
    results = json.loads((tmp_path / "bench.json").read_text())
    assert [r["dataset"] for r in results] == ["breast_cancer", "classification"]
    for result in results:
        arms = {a["name"]: a for a in result["arms"]}
        assert arms["training compute (bound)"]["ratio_to_bound"] == 1.0
        # The cold replay and the bound train exactly warmcv's trials: the same best score.
        warm = arms["warmcv run engine"]["best_cv"]
        assert abs(arms["cold process per fold"]["best_cv"] - warm) < 1e-9
        assert abs(arms["training compute (bound)"]["best_cv"] - warm) < 1e-4  # LightGBM's AUC vs scikit-learn's
        assert all(a["wall_seconds"] > 0 for a in result["arms"])
