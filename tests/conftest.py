"""Shared fixtures: real data (census-like, with strings and missing values) and SageMaker contract dirs."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "container_src"


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that imports warmcv from this checkout (installed or not)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra)
    return env


def bin_path(name: str) -> str:
    """A console script of the running interpreter's environment (e.g. the toolkit's `train`)."""
    return str(Path(sys.executable).parent / name)


@pytest.fixture(scope="session")
def census_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from warmcv.examples import make_census_like

    path = tmp_path_factory.mktemp("raw") / "census.csv"
    make_census_like(rows=2000, seed=11).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def prepared_census(tmp_path_factory: pytest.TempPathFactory, census_csv: Path) -> Path:
    """A prepared data set (3 folds) shared by tests that only read it."""
    from warmcv.data.prepare import PrepareOptions, prepare

    out = tmp_path_factory.mktemp("prepared") / "census"
    prepare(census_csv, out, PrepareOptions(target="income", folds=3, seed=5))
    return out


ContractFactory = Callable[..., Path]


@pytest.fixture
def contract_dir(tmp_path: Path) -> ContractFactory:
    """Build a SAGEMAKER_BASE_DIR layout: hyperparameters.json, config files, and channels linked to dirs."""

    def make(hyperparameters: dict[str, str], channels: dict[str, Path] | None = None) -> Path:
        base = tmp_path / "ml"
        config = base / "input" / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        channels = channels or {}
        (config / "inputdataconfig.json").write_text(json.dumps(
            {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
             for name in channels}))
        (config / "resourceconfig.json").write_text(json.dumps(
            {"current_host": "algo-1", "hosts": ["algo-1"], "current_instance_type": "local"}))
        for name, source in channels.items():
            target = base / "input" / "data" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(source.resolve(), target_is_directory=True)
        for sub in ("model", "output/data", "code"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        return base

    return make


def wait_for_training_processes(candidates: Callable[[], list[int]], count: int = 1, cpu_seconds: float = 1.0,
                                timeout: float = 180.0) -> list:
    """Processes among `candidates()` that have used `cpu_seconds` of CPU, i.e. are past start-up and training.

    Cumulative CPU time is used rather than the current CPU share, which drops under load and made
    such waits flaky on a busy 2-core machine.
    """
    import time

    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = []
        for pid in candidates():
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            if times.user + times.system >= cpu_seconds:
                busy.append(psutil.Process(pid))
        if len(busy) >= count:
            return busy
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} training process(es) after {timeout:.0f} s")


def leaf_descendants(pid: int) -> list[int]:
    """Descendants without children of their own: the fold workers, not the fork server that spawns them."""
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True) if not p.children()]
    except psutil.NoSuchProcess:
        return []
