#!/usr/bin/env python
"""Peak memory of `warmcv prepare` against the size of the CSV it reads (issue 16: at most 1.0x).

It writes a CSV like the ones users bring (by default 1,000,000 rows x 50 columns, about 0.9 GB):
float columns with missing values, string columns of a few to a few thousand levels with missing
values, and a binary target. Then it runs `warmcv prepare` on it in a fresh process under GNU time
(`/usr/bin/time -v`, Debian's `time` package) and prints the process's peak resident set size, the
CSV's size and their ratio, measured in that one run.

    python bench/prepare_memory.py                     # the measurement (1M x 50; writes ~0.9 GB to a temp folder)
    python bench/prepare_memory.py --rows 20000        # a quick check of the script

The CSV is generated in chunks, so generating it needs far less memory than the file's size; the
generator is not what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
GNU_TIME = "/usr/bin/time"
CHUNK_ROWS = 50_000
TARGET = "y"


def write_csv(path: Path, rows: int, columns: int, seed: int) -> None:
    """`columns` columns in all: the target, 20 % string columns, the rest floats; ~5 % missing in each feature."""
    rng = np.random.default_rng(seed)
    n_strings = max(1, columns // 5)
    n_numbers = columns - 1 - n_strings
    levels = [np.array([f"level_{j}_{k}" for k in range(int(4 * 3.2 ** (j % 7)))], dtype=object)
              for j in range(n_strings)]
    weights = rng.normal(size=n_numbers)
    with path.open("w") as handle:
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            numbers = rng.normal(size=(n, n_numbers))
            score = numbers @ weights / np.sqrt(n_numbers) + rng.normal(scale=0.5, size=n)
            frame = pd.DataFrame(numbers, columns=[f"x{i}" for i in range(n_numbers)])
            frame = frame.mask(rng.random(frame.shape) < 0.05)
            for j, level in enumerate(levels):
                values = level[rng.integers(0, len(level), size=n)]
                values[rng.random(n) < 0.05] = None
                frame[f"s{j}"] = values
            frame[TARGET] = (score > 0).astype(np.int64)
            frame.to_csv(handle, index=False, header=start == 0)


def peak_rss_bytes(time_output: str) -> int:
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_output)
    if not match:
        raise RuntimeError(f"no peak RSS in the output of {GNU_TIME} -v:\n{time_output}")
    return int(match.group(1)) * 1024


def measure(csv: Path, out: Path, folds: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "container_src"),
                                                                     os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    done = subprocess.run([GNU_TIME, "-v", sys.executable, "-m", "warmcv", "prepare", "--data", str(csv),
                           "--target", TARGET, "--out", str(out), "--folds", str(folds)],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"warmcv prepare failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    peak = peak_rss_bytes(done.stderr)
    size = csv.stat().st_size
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([0-9.]+)", done.stderr))
    return {"csv_bytes": size, "peak_rss_bytes": peak, "ratio": peak / size, "seconds": seconds,
            "cpu_seconds": cpu, "output": done.stdout.strip()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=50, help="columns in the CSV, the target included")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path,
                        help="where to write the CSV and the prepared data (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the CSV and the prepared data")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not Path(GNU_TIME).is_file():
        print(f"{GNU_TIME} is missing: install GNU time (Debian: apt-get install time)", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="warmcv-prepare-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        csv = workdir / f"data_{args.rows}x{args.columns}.csv"
        if not csv.exists():
            print(f"writing {csv} ({args.rows:,} rows x {args.columns} columns) ...", flush=True)
            write_csv(csv, args.rows, args.columns, args.seed)
        figures = measure(csv, workdir / "prepared", args.folds)
        figures.update(rows=args.rows, columns=args.columns)
        print(figures.pop("output"))
        print(f"CSV size          {figures['csv_bytes'] / 1e6:10.1f} MB")
        print(f"peak RSS          {figures['peak_rss_bytes'] / 1e6:10.1f} MB   (GNU time, the whole prepare process)")
        verdict = "met" if figures["ratio"] <= 1 else "NOT met"
        print(f"peak RSS / CSV    {figures['ratio']:10.2f} x   target <= 1.00: {verdict}")
        print(f"wall time         {figures['seconds']:10.1f} s    (CPU {figures['cpu_seconds']:.1f} s, user + system)")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
