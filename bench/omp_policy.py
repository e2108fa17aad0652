"""`--omp-wait-policy` for the bench scripts, applied before LightGBM (libgomp) loads.

libgomp reads OMP_WAIT_POLICY once, when it loads, in this process and in every child (they inherit the
environment), so a script calls `apply(sys.argv[1:])` before its imports. "default" leaves libgomp's own
behaviour (spin, then sleep), the fair setting for the multi-threaded arms on a quiet machine; on a busy
one spinning makes them crawl (see warmcv.openmp), and passive is fair.
"""

from __future__ import annotations

import os


def apply(argv: list[str]) -> str:
    """The policy named on the command line ("default" if none), exported for libgomp unless default."""
    policy = "default"
    for i, arg in enumerate(argv):
        if arg.startswith("--omp-wait-policy="):
            policy = arg.split("=", 1)[1]
        elif arg == "--omp-wait-policy" and i + 1 < len(argv):
            policy = argv[i + 1]
    if policy in ("passive", "active"):
        os.environ["OMP_WAIT_POLICY"] = policy.upper()
    return policy
