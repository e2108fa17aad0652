"""SageMaker SDK v3 local mode (ModelTrainer, Mode.LOCAL_CONTAINER, docker-compose) against the image.

Runs docker/local_mode.py, the user-facing example, in a subprocess with a Python that has the SDK
(it is about 1 GB and pins its own dependencies, so it often lives in its own virtualenv):
WARMCV_SDK_PYTHON, or this interpreter if it has the SDK. Skipped with the reason when neither is
available, failed instead when CI=true.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO
from tests.docker.helpers import FIGURES, docker, require
from warmcv.declarations import VALIDATION_SCORE

EXAMPLE = REPO / "docker" / "local_mode.py"


def sdk_python() -> str | None:
    given = os.environ.get("WARMCV_SDK_PYTHON")
    if given:
        return given
    try:
        return sys.executable if importlib.util.find_spec("sagemaker.train") else None
    except ModuleNotFoundError:
        return None


def compose_available() -> bool:
    if shutil.which("docker-compose"):
        return True
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


def test_local_mode_trains_the_example_with_the_image(image, tmp_path):
    python = sdk_python()
    require(python is not None, "no Python with the SageMaker SDK v3: set WARMCV_SDK_PYTHON to one "
                                "(e.g. a venv with `pip install sagemaker==3.27.0`)")
    require(compose_available(), "docker compose (plugin or docker-compose) is not installed; local mode needs it")
    # No real credentials reach the job: the example sets dummy ones and a region.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONUNBUFFERED"] = "1"
    started = time.monotonic()
    result = subprocess.run([python, str(EXAMPLE), "--image", image, "--out", str(tmp_path), "--rounds", "40"],
                            env=env, capture_output=True, text=True, timeout=1200)
    FIGURES["SDK v3 local mode: prepare + coordinator job + final job"] = f"{time.monotonic() - started:.1f} s"
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["folds"] == 3 and summary["cv_metric"] == "auc" and 0.6 < summary["cv_mean"] < 1
    assert summary["final_model_files"] == ["model.json", "model.txt"]
    assert summary["classes"] == ["<=50K", ">50K"]
    assert Path(summary["final_model"]).is_file()
    # The line the HyperparameterTuner's metric definition reads, once, with the summary's mean.
    found = re.findall(VALIDATION_SCORE.regex, output)
    assert len(found) == 1 and float(found[0]) == summary["cv_mean"]
    assert re.search(r"algo-1[-_]1", output)  # the job ran as compose service algo-1, as local mode names it
    # The example removes the stopped compose containers it made.
    left = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project.working_dir={tmp_path / 'warmcv-trial'}")
    assert left.stdout.strip() == ""


def test_local_mode_reports_a_failed_job_with_its_reason(image, tmp_path):
    python = sdk_python()
    require(python is not None, "no Python with the SageMaker SDK v3: set WARMCV_SDK_PYTHON")
    require(compose_available(), "docker compose is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run([python, str(EXAMPLE), "--image", image, "--out", str(tmp_path), "--rounds", "5",
                             "--set", "num_leaves=1"], env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 1
    assert "warmcv-trial failed: hyperparameter num_leaves='1'" in result.stderr
    assert not (tmp_path / "warmcv-final").exists()
