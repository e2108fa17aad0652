"""The image in every training-side role, in containers with /opt/ml mounted from a temp dir.

Processing (`prepare`), worker on one fold, coordinator with the local fold runner, final training
started with no argument at all (as SDK v3 local mode does), a bad hyperparameter, and SIGTERM.
"""

from __future__ import annotations

import json
import re
import time

from tests.docker.helpers import FIGURES, docker, make_contract, run_container
from warmcv.declarations import VALIDATION_SCORE
from warmcv.examples import EXAMPLE_FILE, EXAMPLE_TARGET, example_path


def test_prepare_writes_folds_for_a_processing_job(processing, prepared):
    result, root = processing
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["n_folds"] == 3 and manifest["target"] == EXAMPLE_TARGET and manifest["rows"] == 6000
    assert (prepared / "data.parquet").stat().st_size > 0
    assert "prepared 6000 rows" in result.stdout
    assert not (root / "ml-output" / "message").exists()


def test_prepare_failure_goes_to_the_processing_message_file(image, tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / EXAMPLE_FILE).write_bytes(example_path().read_bytes())
    result = run_container(
        image, "--failure-file", "/opt/ml/output/message", "prepare", "--data", "/opt/ml/processing/input",
        "--target", "salary", "--out", "/opt/ml/processing/output/folds",
        mounts=["-v", f"{tmp_path / 'input'}:/opt/ml/processing/input:ro",
                "-v", f"{tmp_path / 'ml-output'}:/opt/ml/output"])
    assert result.returncode == 2
    message = (tmp_path / "ml-output" / "message").read_text()
    assert "salary" in message and message in result.stderr


def test_worker_trains_one_fold(image, prepared, tmp_path):
    contract = make_contract(tmp_path, {"mode": "worker", "fold": "2", "num_boost_round": "40"}, prepared)
    result = run_container(image, "train", mounts=contract.mounts)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    metrics = json.loads((contract.base / "output/data/metrics.json").read_text())
    assert metrics["fold"] == 2
    assert float(re.search(r"validation score:(.*?);", output).group(1)) == metrics["validation_score"]
    assert json.loads((contract.base / "model/model.json").read_text())["fold"] == 2
    assert (contract.base / "output/success").exists() and not contract.failure.exists()


def test_coordinator_cross_validates_with_the_local_runner(image, prepared, tmp_path):
    contract = make_contract(tmp_path, {"mode": "coordinator", "num_boost_round": "40"}, prepared)
    result = run_container(image, "train", mounts=contract.mounts)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    found = re.findall(VALIDATION_SCORE.regex, output)
    assert len(found) == 1, output  # the tuner takes the latest match: exactly one
    summary = json.loads((contract.base / "output/data/cv_summary.json").read_text())
    assert float(found[0]) == summary["validation_mean"] and len(summary["folds"]) == 3
    assert (contract.base / "model/cv_summary.json").exists()
    assert "fold_runner=auto picked local" in output


def test_no_argument_trains_the_final_model(final_training):
    contract, output = final_training
    model = json.loads((contract.base / "model/model.json").read_text())
    assert model["fold"] == "all" and model["classes"] == ["<=50K", ">50K"] and model["best_iteration"] == 60
    assert (contract.base / "model/model.txt").read_text().startswith("tree")
    assert (contract.base / "output/success").exists()
    assert "validation score:" not in output and "train score:" in output


def test_bad_hyperparameter_fails_the_job_with_its_reason(image, prepared, tmp_path):
    contract = make_contract(tmp_path, {"mode": "worker", "learning_rate": "2"}, prepared)
    result = run_container(image, "train", mounts=contract.mounts)
    assert result.returncode == 1  # non-zero: SageMaker marks the job Failed
    assert contract.failure.read_text().startswith("hyperparameter learning_rate='2'")
    assert not (contract.base / "output/success").exists()
    assert not (contract.base / "model/model.json").exists()


def test_missing_channel_names_the_channel(image, tmp_path):
    contract = make_contract(tmp_path, {"mode": "worker"}, None)
    (contract.base / "input/data/train").rmdir()
    result = run_container(image, "train", mounts=contract.mounts)
    assert result.returncode == 1
    assert "input channel 'train' not found" in contract.failure.read_text()


def test_sigterm_stops_the_coordinator_and_fails_the_job(image, prepared, tmp_path, cleanup_containers):
    """`docker stop` is what SageMaker's stop does (SIGTERM, SIGKILL later): PID 1 must get it and fail."""
    contract = make_contract(tmp_path, {"mode": "coordinator", "num_boost_round": "100000", "learning_rate": "0.001",
                                        "num_leaves": "255", "min_data_in_leaf": "2"}, prepared)
    name = f"warmcv-test-stop-{tmp_path.name}"[:60]
    cleanup_containers.append(name)
    docker("run", "-d", "--name", name, "--network", "none", *contract.mounts, image, "train")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        logs = docker("logs", name, check=False)
        if "picked local" in logs.stdout + logs.stderr:  # the toolkit's logging goes to stderr
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the coordinator never started its folds")
    time.sleep(2)  # the folds are training now
    assert docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true"
    started = time.monotonic()
    docker("stop", "--time", "60", name, timeout=120)
    stopped = time.monotonic() - started
    FIGURES["coordinator stop: SIGTERM -> container exit"] = f"{stopped:.2f} s"
    state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
    assert state["ExitCode"] == 1, state  # 137 would mean SIGTERM was ignored and docker had to SIGKILL
    assert stopped < 30
    assert contract.failure.read_text().startswith("Stopped: received SIGTERM")
    assert "average model validation score" not in docker("logs", name).stdout
