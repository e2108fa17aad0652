"""Serve settings from SageMaker's environment: defaults, worker planning, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from warmcv.errors import UserInputError
from warmcv.serving.server import gunicorn_options
from warmcv.serving.settings import ServeSettings


def settings(env: dict[str, str], cpus: int = 4, **kwargs) -> ServeSettings:
    return ServeSettings.from_env(env, cpus=cpus, **kwargs)


def test_defaults_follow_sagemaker(monkeypatch, tmp_path):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    s = settings({})
    assert (s.port, s.host, s.max_payload_mb, s.default_output) == (8080, "0.0.0.0", 6, "probabilities")
    assert s.model_dir == tmp_path / "model"  # SAGEMAKER_BASE_DIR aware
    assert (s.concurrency, s.workers, s.prediction_slots, s.predict_threads) == (4, 4, 1, 1)
    assert s.body_timeout_seconds == 60
    assert s.execution_parameters() == {"MaxConcurrentTransforms": 4, "BatchStrategy": "MULTI_RECORD",
                                        "MaxPayloadInMB": 6}


def test_bind_port_and_payload_from_env():
    s = settings({"SAGEMAKER_BIND_TO_PORT": "9090", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}, model_dir=Path("/m"))
    assert s.port == 9090 and s.max_payload_bytes == 20 * 1024 * 1024


def test_concurrency_caps_processes_at_the_cpus_and_adds_prediction_slots():
    s = settings({"SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "10"}, cpus=4, model_dir=Path("/m"))
    # 4 processes (one per CPU), 3 prediction slots each for the 10 requests (/ping needs none)
    assert (s.concurrency, s.workers, s.prediction_slots, s.predict_threads) == (10, 4, 3, 1)
    one = settings({"SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "1"}, cpus=8, model_dir=Path("/m"))
    # one request at a time: one process that may use every core for LightGBM
    assert (one.workers, one.prediction_slots, one.predict_threads) == (1, 1, 8)


def test_explicit_workers_win():
    s = settings({"SAGEMAKER_MODEL_SERVER_WORKERS": "3"}, cpus=4, model_dir=Path("/m"))
    assert s.workers == 3
    assert settings({"SAGEMAKER_MODEL_SERVER_WORKERS": "3"}, workers=1, model_dir=Path("/m")).workers == 1


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("SAGEMAKER_BIND_TO_PORT", "http", "an integer from 1 to 65535"),
    ("SAGEMAKER_BIND_TO_PORT", "70000", "an integer from 1 to 65535"),
    ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "101", "an integer from 0 to 100"),
    ("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "0", "an integer from 1 to 4096"),
    ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "-5", "an integer from 1 to 86400"),
    # int() would read these as 10, 8080 and 2: only plain decimal digits are what a user means
    ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "1_0", "an integer from 0 to 100"),
    ("SAGEMAKER_BIND_TO_PORT", "8_080", "an integer from 1 to 65535"),
    ("SAGEMAKER_MODEL_SERVER_WORKERS", "\u0662", "an integer from 1 to 1024"),
    # without an upper bound these planned 10**400 threads (an OverflowError traceback) or 10**6 processes
    ("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "1" + "0" * 400, "an integer from 1 to 4096"),
    ("SAGEMAKER_MODEL_SERVER_WORKERS", "1000000", "an integer from 1 to 1024"),
    ("WARMCV_SERVE_BODY_TIMEOUT", "0", "an integer from 1 to 3600"),
])
def test_bad_values_name_the_variable(name, value, allowed):
    with pytest.raises(UserInputError) as error:
        settings({name: value}, model_dir=Path("/m"))
    assert str(error.value) == f"environment variable {name}={value!r} is not valid (allowed: {allowed})"


def test_bad_default_output():
    with pytest.raises(UserInputError, match="WARMCV_SERVE_OUTPUT='scores' is not valid"):
        settings({"WARMCV_SERVE_OUTPUT": "scores"}, model_dir=Path("/m"))


def test_gunicorn_options_are_valid_gunicorn_settings():
    from gunicorn.config import Config

    s = settings({"SAGEMAKER_BIND_TO_PORT": "9999"}, model_dir=Path("/m"))
    config = Config()
    for key, value in gunicorn_options(s).items():
        config.set(key, value)
    assert config.bind == ["0.0.0.0:9999"] and config.workers == 4
    # an asyncio worker: a client that stalls mid-body holds a socket, not a request thread
    assert config.worker_class_str == "asgi" and config.timeout == 600
    assert config.preload_app is False  # LightGBM (OpenMP) must be loaded after the fork
