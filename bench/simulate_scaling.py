"""The simulator's cost grows linearly with the number of jobs: `warmcv simulate` at N and at 10 x N, in one run.

    python bench/simulate_scaling.py                 # M = 4, K = 5, N = 120 and 1,200 (2,400 and 24,000 jobs)
    python bench/simulate_scaling.py --rounds 30     # N = 30 and 300, quicker

Runs the command twice as written for users (`warmcv simulate -M 4 -N <n> -K 5 --startup 3m --train 2m`),
one after the other, and prints each run's wall time and CPU time (user + system, of the child process)
and their ratios. Linear cost means a ratio near 10; the target is at most 11. CPU time is the steadier of
the two on a shared machine: wall time includes waiting for a core.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def command(rounds: int) -> list[str]:
    warmcv = shutil.which("warmcv", path=str(Path(sys.executable).parent)) or shutil.which("warmcv")
    base = [warmcv] if warmcv else [sys.executable, "-m", "warmcv"]
    return [*base, "simulate", "-M", "4", "-N", str(rounds), "-K", "5", "--startup", "3m", "--train", "2m"]


def measure(rounds: int) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, the report's first line) of one `warmcv simulate` run."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "container_src"), os.environ.get("PYTHONPATH", "")])}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command(rounds), capture_output=True, text=True, check=True, env=env)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout.splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=120, help="N of the smaller run (the larger is 10 x N)")
    small_n = parser.parse_args().rounds
    results = {}
    for rounds in (small_n, 10 * small_n):
        print("$ " + " ".join(["warmcv", *command(rounds)[-11:]]), flush=True)
        results[rounds] = measure(rounds)
        wall, cpu, first = results[rounds]
        print(f"  {first}\n  wall {wall:.1f} s, CPU {cpu:.1f} s", flush=True)
    (wall_s, cpu_s, _), (wall_l, cpu_l, _) = results[small_n], results[10 * small_n]
    print(f"\nN = {10 * small_n} against N = {small_n} (10 x the jobs): wall time {wall_l / wall_s:.2f} x, "
          f"CPU time {cpu_l / cpu_s:.2f} x (target: at most 11 x)")


if __name__ == "__main__":
    main()
