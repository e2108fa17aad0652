"""The SageMaker training-container contract: where inputs are, where outputs go, how failure is reported.

All paths hang off one base directory (`SAGEMAKER_BASE_DIR`, default /opt/ml) read when the paths
object is built, not at import, so every test of the contract runs in a temp dir without Docker.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warmcv.errors import UserInputError

DEFAULT_BASE_DIR = "/opt/ml"
DATA_CHANNEL = "train"
# SageMaker shows the first 1024 characters of the failure file as the job's FailureReason.
FAILURE_REASON_LIMIT = 1024


@dataclass(frozen=True)
class ContainerPaths:
    base: Path

    @classmethod
    def from_env(cls) -> ContainerPaths:
        return cls(Path(os.environ.get("SAGEMAKER_BASE_DIR", DEFAULT_BASE_DIR)))

    @property
    def config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    def channel(self, name: str) -> Path:
        return self.base / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    def checkpoint_dir(self, local_path: str | None = None) -> Path:
        """Where SageMaker syncs the job's CheckpointConfig (LocalPath, default /opt/ml/checkpoints), under
        this base directory when the path is one of /opt/ml's (so a test's redirected base dir holds it)."""
        path = local_path or f"{DEFAULT_BASE_DIR}/checkpoints"
        if path.rstrip("/").startswith(DEFAULT_BASE_DIR + "/"):
            return self.base / path.rstrip("/")[len(DEFAULT_BASE_DIR) + 1:]
        return Path(path)

    @property
    def work_dir(self) -> Path:
        """Scratch space of this job alone: not uploaded, not synced."""
        return self.base / "work"

    @property
    def warm_pool_cache(self) -> Path:
        """Kept across jobs that reuse a warm pool; SageMaker names it in an env var when it exists."""
        env = os.environ.get("SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY")
        return Path(env) if env else self.base / "sagemaker" / "warmpoolcache"


def _read_json(path: Path, what: str, required: bool) -> Any:
    if not path.exists():
        if required:
            raise UserInputError(f"{what} not found at {path}")
        return {}
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserInputError(f"{what} at {path} is not valid JSON: {error}") from None


def read_hyperparameters(paths: ContainerPaths) -> dict[str, Any]:
    """The raw hyperparameters (SageMaker writes every value as a string); absent file means none."""
    raw = _read_json(paths.hyperparameters_file, "hyperparameters.json", required=False)
    if not isinstance(raw, dict):
        raise UserInputError(f"hyperparameters.json at {paths.hyperparameters_file} must hold a JSON object")
    return raw


def read_input_data_config(paths: ContainerPaths) -> dict[str, Any]:
    return _read_json(paths.input_data_config_file, "inputdataconfig.json", required=False)


def read_resource_config(paths: ContainerPaths) -> dict[str, Any]:
    return _read_json(paths.resource_config_file, "resourceconfig.json", required=False)


def data_channel(paths: ContainerPaths, name: str = DATA_CHANNEL) -> Path:
    """The directory of a channel, with an error that lists the channels that do exist."""
    path = paths.channel(name)
    if not path.is_dir():
        root = paths.channel("")
        present = sorted(p.name for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
        raise UserInputError(
            f"input channel {name!r} not found at {path}; channels present: {', '.join(present) or 'none'}. "
            f"Pass the prepared data (the output of `warmcv prepare`) as the {name!r} channel."
        )
    return path


def failure_reason(message: str) -> str:
    """Trim to SageMaker's FailureReason limit, keeping the start (where our messages put the cause)."""
    if len(message) <= FAILURE_REASON_LIMIT:
        return message
    return message[: FAILURE_REASON_LIMIT - 15] + " ...(truncated)"


def write_failure(paths: ContainerPaths, message: str) -> None:
    """Write the failure file; the full text stays in the log, the file gets what FailureReason can show."""
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    paths.failure_file.write_text(failure_reason(message))
