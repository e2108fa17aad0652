"""Lint as part of the test suite, so style drift fails CI like any other regression."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: install the test extra (pip install -e '.[test]')")
    result = subprocess.run([ruff, "check", "container_src", "tests", "bench", "docker", "tools"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_merge_conflict_markers_are_committed():
    """A merge resolved in a hurry once left both sides of a README section in place."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    found = []
    for name in filter(None, files):
        path = REPO / name.decode()
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            if line.startswith((b"<<<<<<< ", b">>>>>>> ")) or line == b"=======" and path.suffix != ".md":
                found.append(f"{name.decode()}:{number}")
    assert found == []
