"""Real file-system faults for tests: a small tmpfs that can be filled to the last page, or mounted read-only.

A full disk is simulated by a full disk: the kernel answers ENOSPC to every write exactly as on a
real volume (tmpfs counts 4 KiB pages), so pyarrow, SQLite, LightGBM, tarfile and matplotlib fail
the way they do in the field. Mounting needs root (CAP_SYS_ADMIN); the tests that need it say so
when it is not available instead of passing without having run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PAGE = 4096


@contextmanager
def tmpfs(path: Path, size: str = "8m", read_only: bool = False) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.fail(f"these tests mount a tmpfs and need root: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def fill(path: Path, leave: int = 0) -> Path:
    """Fill the file system of `path` until only `leave` bytes (rounded down to pages) are free."""
    filler = path / "filler"
    target = max(0, free_bytes(path) - leave) // PAGE * PAGE
    with open(filler, "ab") as handle:
        block = b"\0" * (1 << 20)
        written = 0
        while written < target:
            chunk = block[: min(len(block), target - written)]
            try:
                handle.write(chunk)
                handle.flush()
            except OSError:
                break
            written += len(chunk)
    return filler
