"""docker/entrypoint.sh dispatch, with stand-in `train` and `warmcv` programs on PATH (no Docker needed).

Each stand-in prints its name, its arguments and its PID: the PID must be the entrypoint's own,
which proves the entrypoint exec'd the program (so the program is PID 1 in the container and gets
SageMaker's SIGTERM) instead of running it as a child.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

ENTRYPOINT = REPO / "docker" / "entrypoint.sh"


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("train", "warmcv"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} pid=$$ args=$*"\n')
        script.chmod(0o755)
    return bin_dir


def run(fake_bin: Path, *args: str) -> tuple[int, str, int]:
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    process = subprocess.Popen([str(ENTRYPOINT), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    output = process.communicate(timeout=30)[0]
    return process.returncode, output.strip(), process.pid


@pytest.mark.parametrize(("args", "expected"), [
    ((), "train args="),                      # SDK v3 local mode passes no command
    (("train",), "train args="),
    (("serve",), "warmcv args=serve"),
    (("serve", "--port", "9000"), "warmcv args=serve --port 9000"),
    (("--failure-file", "/opt/ml/output/message", "prepare", "--data", "/in"),
     "warmcv args=--failure-file /opt/ml/output/message prepare --data /in"),
    (("hyperparameters", "--json"), "warmcv args=hyperparameters --json"),
])
def test_dispatch_execs_the_program(fake_bin, args, expected):
    code, output, pid = run(fake_bin, *args)
    program, arguments = expected.split(" args=")
    assert code == 0
    assert output == f"{program} pid={pid} args={arguments}"


def test_train_rejects_arguments(fake_bin):
    code, output, _ = run(fake_bin, "train", "--epochs", "3")
    assert code == 2
    assert "'train' takes no arguments" in output and "--epochs 3" in output


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (apt-get install shellcheck)")
def test_entrypoint_is_shellcheck_clean():
    result = subprocess.run(["shellcheck", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
