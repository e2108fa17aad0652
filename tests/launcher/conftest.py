"""A valid launcher config for tests: the shipped example, so the example itself stays valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from warmcv.launcher.config import LauncherConfig, load_config, merge, read_config_file

EXAMPLE = REPO / "examples" / "pipeline.toml"


def example_config(**overrides) -> LauncherConfig:
    return load_config(merge(read_config_file(EXAMPLE), overrides))


@pytest.fixture
def config() -> LauncherConfig:
    return example_config()


@pytest.fixture
def example_path() -> Path:
    return EXAMPLE
