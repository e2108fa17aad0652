"""Run a launcher command in a process with no AWS credentials in which every network connection fails.

Usage: python offline_run.py OUT.json -- <warmcv arguments>
Writes {"rc": exit code, "attempts": [every connect/getaddrinfo tried]} to OUT.json. Threads are joined
first, so a telemetry call made in the background is caught too. With `--stub-publish`, the SageMaker
client of the pipeline session is a botocore Stubber expecting exactly CreatePipeline and
StartPipelineExecution (see test_pipeline_definition.py).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading

ATTEMPTS: list[str] = []


def _refuse(kind: str):
    def refuse(*args, **kwargs):
        ATTEMPTS.append(f"{kind} {args[1:] if kind.startswith('socket.') else args}"[:300])
        raise OSError(f"network disabled in this test ({kind})")

    return refuse


socket.socket.connect = _refuse("socket.connect")  # type: ignore[method-assign]
socket.socket.connect_ex = _refuse("socket.connect_ex")  # type: ignore[method-assign]
socket.getaddrinfo = _refuse("getaddrinfo")  # type: ignore[assignment]
socket.create_connection = _refuse("create_connection")  # type: ignore[assignment]

for key in [k for k in os.environ if k.startswith("AWS_")]:
    del os.environ[key]
os.environ.update({"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                   "AWS_EC2_METADATA_DISABLED": "true"})


def main() -> int:
    out = sys.argv[1]
    argv = sys.argv[sys.argv.index("--") + 1:]
    from warmcv.cli import main as warmcv

    try:
        rc = warmcv(argv)
    except SystemExit as exit_:
        rc = exit_.code if isinstance(exit_.code, int) else 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(timeout=10)
    with open(out, "w") as handle:
        json.dump({"rc": rc, "attempts": ATTEMPTS}, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
