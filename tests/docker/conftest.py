"""The Docker tier: the real image on a real engine, built once per session by the `image` fixture.

Part of the one test command (`python -m pytest`): without an engine these tests are skipped with the
reason, except when CI=true, where they fail, because CI must prove the image.

Knobs (environment):
  WARMCV_TEST_IMAGE      use this already-built image instead of building one
  WARMCV_TEST_TAG        the tag to build (default warmcv:test; checkouts built side by side need their own)
  WARMCV_BASE_IMAGE      the Dockerfile's BASE_IMAGE (default: its python:3.11-slim-bookworm)
  WARMCV_DOCKER_NETWORK  network for `docker build` (default host; empty for Docker's default)
  WARMCV_SDK_PYTHON      a Python with the SageMaker SDK v3 for the local-mode test (default: this one,
                         if it has the SDK)
Containers that train run with --network none (training needs no network); the server runs with
--network host bound to 127.0.0.1, and tests talk to it only there.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.docker.helpers import FIGURES, Contract, docker, make_contract, require, run_container
from warmcv.examples import EXAMPLE_FILE, EXAMPLE_TARGET, example_path

TEST_TAG = os.environ.get("WARMCV_TEST_TAG", "warmcv:test")
BUILD_TIMEOUT = 1800


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.docker)
            # The first test also pays for the image build (minutes without a layer cache).
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT + 600))


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("docker tier figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def docker_engine() -> str:
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                                text=True, timeout=60)
        reason = result.stderr.strip().splitlines()[-1] if result.returncode and result.stderr.strip() else ""
        ok = result.returncode == 0 and bool(result.stdout.strip())
    except FileNotFoundError:
        ok, reason = False, "the docker command is not installed"
    except subprocess.TimeoutExpired:
        ok, reason = False, "docker info did not answer in 60 s"
    require(ok, f"no Docker engine is reachable: {reason or 'docker info failed'}")
    return result.stdout.strip()


@pytest.fixture(scope="session")
def image(docker_engine: str) -> str:
    """The image under test: built from this checkout once per session (layer cache makes rebuilds fast)."""
    given = os.environ.get("WARMCV_TEST_IMAGE")
    if given:
        docker("image", "inspect", given)
        return given
    previous = docker("image", "inspect", "--format", "{{.Id}}", TEST_TAG, check=False).stdout.strip()
    command = ["build", "-t", TEST_TAG]
    network = os.environ.get("WARMCV_DOCKER_NETWORK", "host")
    if network:
        command += ["--network", network]
    if os.environ.get("WARMCV_BASE_IMAGE"):
        command += ["--build-arg", f"BASE_IMAGE={os.environ['WARMCV_BASE_IMAGE']}"]
    started = time.monotonic()
    result = docker(*command, str(REPO), timeout=BUILD_TIMEOUT, check=False)
    if result.returncode != 0:
        pytest.fail(f"docker build failed:\n{(result.stdout + result.stderr)[-4000:]}", pytrace=False)
    FIGURES["image build (this session, with the layer cache)"] = f"{time.monotonic() - started:.1f} s"
    current = docker("image", "inspect", "--format", "{{.Id}}", TEST_TAG).stdout.strip()
    if previous and previous != current:  # the old build is now untagged: don't let them pile up
        docker("image", "rm", previous, check=False)
    size = int(docker("image", "inspect", "--format", "{{.Size}}", TEST_TAG).stdout)
    FIGURES["image size"] = f"{size / 1e6:.0f} MB"
    return TEST_TAG


@pytest.fixture(scope="session")
def processing(image: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """`prepare` run as a SageMaker Processing job would run it: input and output under /opt/ml/processing."""
    root = tmp_path_factory.mktemp("processing")
    (root / "input").mkdir()
    (root / "input" / EXAMPLE_FILE).write_bytes(example_path().read_bytes())
    result = run_container(
        image, "--failure-file", "/opt/ml/output/message", "prepare", "--data", "/opt/ml/processing/input",
        "--target", EXAMPLE_TARGET, "--out", "/opt/ml/processing/output/folds", "--folds", "3",
        mounts=["-v", f"{root / 'input'}:/opt/ml/processing/input:ro",
                "-v", f"{root / 'output'}:/opt/ml/processing/output",
                "-v", f"{root / 'ml-output'}:/opt/ml/output"])
    return result, root


@pytest.fixture(scope="session")
def prepared(processing) -> Path:
    result, root = processing
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "output" / "folds"


@pytest.fixture(scope="session")
def final_training(image: str, prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Contract, str]:
    """The final model, trained by a container started with no argument (SDK v3 local mode passes none).

    Also measures the cold start: `docker run` to the first log line, and to the end of the job.
    """
    contract = make_contract(tmp_path_factory.mktemp("final"), {"mode": "worker", "num_boost_round": "60"}, prepared)
    started = time.monotonic()
    process = subprocess.Popen(["docker", "run", "--rm", "--network", "none", *contract.mounts, image],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first_line = process.stdout.readline()
    first = time.monotonic() - started
    rest = process.communicate(timeout=600)[0]
    total = time.monotonic() - started
    FIGURES["train cold start: docker run -> first log line"] = f"{first:.2f} s"
    FIGURES["train cold start: docker run -> job done (6000 rows, 60 rounds)"] = f"{total:.2f} s"
    assert process.returncode == 0, first_line + rest
    return contract, first_line + rest


@pytest.fixture
def cleanup_containers() -> Iterator[list[str]]:
    """Names of containers a test starts detached; removed at the end whatever happens."""
    names: list[str] = []
    yield names
    for name in names:
        docker("rm", "-f", name, check=False, timeout=60)
