"""What the image is made of: entrypoint, labels, environment, no compilers, no SDK, a sensible size."""

from __future__ import annotations

import json

from tests.docker.helpers import docker, run_container

# python:3.11-slim-bookworm is about 130 MB and our layers about 530 MB; the size limit leaves room for a
# bigger stand-in base (the offline test base is a 250 MB debootstrap) but catches a stray build
# toolchain, pip cache or test suite (each adds 100 MB or more).
MAX_IMAGE_BYTES = 900e6


def config(image: str) -> dict:
    return json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image).stdout)


def test_entrypoint_labels_and_environment(image):
    cfg = config(image)
    assert cfg["Entrypoint"] == ["/usr/local/bin/warmcv-entrypoint"]  # exec form: the program is PID 1
    assert not cfg.get("Cmd")  # no default command: no argument means training (SDK v3 local mode)
    assert cfg["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    env = dict(item.split("=", 1) for item in cfg["Env"])
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["SAGEMAKER_TRAINING_MODULE"] == "warmcv.modes.entry:train"
    assert cfg.get("User", "") in ("", "root", "0")


def test_size_is_reasonable(image):
    size = int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
    assert size < MAX_IMAGE_BYTES, f"image is {size / 1e6:.0f} MB"


def test_runtime_has_no_compilers_no_sdk_and_no_test_suites(image):
    script = (
        "set -e; for c in gcc cc g++ make; do if command -v $c >/dev/null; then echo has-$c; fi; done; "
        "python - <<'EOF'\n"
        "import importlib.util, importlib.metadata as md, pathlib, sys\n"
        "print('sdk' if importlib.util.find_spec('sagemaker') else 'no-sdk')\n"
        "print('pip-cache' if pathlib.Path('/root/.cache/pip').exists() else 'no-pip-cache')\n"
        "site = pathlib.Path(sys.prefix) / 'lib/python3.11/site-packages'\n"
        "print('tests:' + ','.join(p for p in ('numpy','pandas','pyarrow','scipy','sklearn') if list((site / p).rglob('tests'))))\n"
        "print('warmcv', md.version('warmcv'), 'lightgbm', md.version('lightgbm'), 'toolkit', md.version('sagemaker-training'))\n"
        "EOF"
    )
    result = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", script)
    lines = result.stdout.split()
    assert not [line for line in lines if line.startswith("has-")], result.stdout
    assert "no-sdk" in lines and "no-pip-cache" in lines and "tests:" in lines
    assert "warmcv" in lines and "lightgbm" in lines


def test_cli_runs_in_the_image(image):
    result = run_container(image, "hyperparameters", "--json")
    assert result.returncode == 0, result.stderr
    names = {row["name"] for row in json.loads(result.stdout)}
    assert {"mode", "fold", "num_leaves", "learning_rate", "fold_runner"} <= names


def test_train_with_arguments_is_refused(image):
    result = run_container(image, "train", "--epochs", "3")
    assert result.returncode == 2 and "'train' takes no arguments" in result.stderr
