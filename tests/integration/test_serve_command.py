"""`warmcv serve` as a real gunicorn server on 127.0.0.1: start, ping, predict, stop on SIGTERM.

The same server runs in the image (tests/docker covers that); here it runs from the checkout so the
server wiring (worker boot, model loading after the fork, signal handling) is tested without Docker.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import subprocess_env
from tests.serving_helpers import free_port, http, train_model, wait_ready


@pytest.fixture(scope="module")
def model_dir(prepared_census: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model(prepared_census, tmp_path_factory.mktemp("served"))


def exited(process: subprocess.Popen) -> str | None:
    return None if process.poll() is None else process.stdout.read()


def start(model_dir: Path, port: int, *extra: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "warmcv", "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1",
         "--port", str(port), *extra],
        env=subprocess_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_serve_answers_and_stops_cleanly_on_sigterm(model_dir, census_csv):
    port = free_port()
    server = start(model_dir, port, "--workers", "2")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, lambda: exited(server))
        rows = pd.read_csv(census_csv).head(50)
        status, body = http("POST", url + "/invocations", rows.to_csv(index=False).encode(),
                            {"Content-Type": "text/csv", "Accept": "text/csv; output=labels"})
        assert status == 200, body
        assert len(body.decode().splitlines()) == 50
        status, body = http("POST", url + "/invocations", b"1,2\n", {"Content-Type": "text/csv"})
        assert status == 400 and b"expected 9 columns" in body
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    assert server.returncode == 0, output
    assert "Handling signal: term" in output and "Shutting down: Master" in output
    assert output.count("loaded the model") == 2  # each worker loads its own copy


def test_ping_is_answered_while_the_only_worker_predicts(model_dir, census_csv):
    """The spare request thread: a long prediction must not starve /ping (SageMaker gives it 2 s)."""
    port = free_port()
    server = start(model_dir, port, "--workers", "1", SAGEMAKER_MAX_PAYLOAD_IN_MB="0",
                   SAGEMAKER_MAX_CONCURRENT_TRANSFORMS="1")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, lambda: exited(server))
        rows = pd.read_csv(census_csv)
        big = pd.concat([rows] * 150, ignore_index=True)  # 300k rows, about 20 MB
        buffer = io.StringIO()
        big.to_csv(buffer, index=False)
        payload = buffer.getvalue().encode()
        result: dict[str, object] = {}

        def predict() -> None:
            result["response"] = http("POST", url + "/invocations", payload, {"Content-Type": "text/csv"}, timeout=300)

        worker = threading.Thread(target=predict)
        worker.start()
        time.sleep(0.5)  # let the big request reach the server
        started = time.monotonic()
        status, _ = http("GET", url + "/ping", timeout=10)
        ping_seconds = time.monotonic() - started
        busy = worker.is_alive()
        worker.join(timeout=300)
        assert status == 200
        assert busy, "the big request finished before the ping; make it bigger"
        assert ping_seconds < 2, f"/ping took {ping_seconds:.2f} s while a prediction ran"
        status, body = result["response"]
        assert status == 200 and body.count(b"\n") == len(big)
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


def test_missing_model_fails_the_start_at_once(tmp_path):
    result = subprocess.run([sys.executable, "-m", "warmcv", "serve", "--model-dir", str(tmp_path), "--port",
                             str(free_port()), "--host", "127.0.0.1"],
                            env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"no warmcv model in {tmp_path}: expected model.txt and model.json" in result.stderr


def test_bad_environment_fails_the_start(model_dir):
    result = subprocess.run([sys.executable, "-m", "warmcv", "serve", "--model-dir", str(model_dir)],
                            env=subprocess_env(SAGEMAKER_BIND_TO_PORT="eighty"), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "SAGEMAKER_BIND_TO_PORT='eighty' is not valid" in result.stderr
