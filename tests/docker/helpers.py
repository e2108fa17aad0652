"""Helpers for the Docker tier: running docker, SageMaker contract dirs, and the figures the session reports."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Figures measured during the session, printed at the end (build time, image size, cold start, ...).
FIGURES: dict[str, str] = {}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is missing; fail instead in CI, where the docker tier is mandatory."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the docker tier must run in CI)", pytrace=False)
    pytest.skip(reason)


def docker(*args: str, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class Contract:
    """A SageMaker training-job layout on the host, mounted as /opt/ml in a container."""

    base: Path
    mounts: list[str] = field(default_factory=list)

    @property
    def failure(self) -> Path:
        return self.base / "output" / "failure"


def make_contract(root: Path, hyperparameters: dict[str, str], train: Path | None) -> Contract:
    base = root / "ml"
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps(
        {"train": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                   "RecordWrapperType": "None"}} if train else {}))
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "current_instance_type": "local"}))
    for sub in ("model", "output/data", "input/data/train"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    mounts = ["-v", f"{base}:/opt/ml"]
    if train:  # read-only, as a check that no mode writes into its input channel
        mounts += ["-v", f"{train}:/opt/ml/input/data/train:ro"]
    return Contract(base, mounts)


def run_container(image: str, *args: str, mounts: list[str] = (), env: dict[str, str] | None = None,
                  network: str = "none", timeout: float = 600) -> subprocess.CompletedProcess:
    env_args = [item for key, value in (env or {}).items() for item in ("-e", f"{key}={value}")]
    return docker("run", "--rm", "--network", network, *mounts, *env_args, image, *args, timeout=timeout, check=False)
