"""`warmcv serve` as a real gunicorn server on 127.0.0.1: start, ping, predict, stop on SIGTERM.

The same server runs in the image (tests/docker covers that); here it runs from the checkout so the
server wiring (worker boot, model loading after the fork, signal handling) is tested without Docker.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.client import HTTPConnection
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, subprocess_env
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


def test_a_model_lightgbm_cannot_read_fails_the_start_with_its_reason_not_a_traceback(model_dir, tmp_path):
    """model.json passes the master's check; model.txt is only read by the workers (after the fork)."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_bytes((model_dir / "model.json").read_bytes())
    (broken / "model.txt").write_text("this is not a LightGBM model\n")
    result = subprocess.run([sys.executable, "-m", "warmcv", "serve", "--model-dir", str(broken), "--port",
                             str(free_port()), "--host", "127.0.0.1", "--workers", "2"],
                            env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"cannot load the model in {broken}: Unknown model format" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_environment_fails_the_start(model_dir):
    result = subprocess.run([sys.executable, "-m", "warmcv", "serve", "--model-dir", str(model_dir)],
                            env=subprocess_env(SAGEMAKER_BIND_TO_PORT="eighty"), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "SAGEMAKER_BIND_TO_PORT='eighty' is not valid" in result.stderr


# --- issue 15: stalled clients, chunked bodies, timeouts, and the bounded load test ------------------------

def stall_mid_body(port: int) -> socket.socket:
    """A client that sends a Content-Length and part of the body, then nothing more."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
                 b"Content-Length: 100000\r\n\r\n39,Private,")
    return sock


def stall_mid_headers(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    return sock


def chunked(port: int, body: bytes, headers: dict[str, str], piece: int = 65536) -> tuple[int, bytes]:
    connection = HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest("POST", "/invocations")
        for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
            connection.putheader(name, value)
        connection.endheaders()
        try:
            for start in range(0, len(body), piece):
                part = body[start:start + piece]
                connection.send(b"%x\r\n%s\r\n" % (len(part), part))
            connection.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-body; the answer is already sent
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def feature_rows(census_csv, model_dir) -> bytes:
    """Headerless CSV rows of the model's features (2,000 rows, about 140 KB)."""
    names = [f["name"] for f in json.loads((model_dir / "model.json").read_text())["features"]]
    return pd.read_csv(census_csv)[names].to_csv(index=False, header=False).encode()


@pytest.fixture
def one_worker(model_dir):
    """A server with the fewest resources SageMaker could give it: one worker, one request at a time."""
    port = free_port()
    server = start(model_dir, port, "--workers", "1", SAGEMAKER_MAX_CONCURRENT_TRANSFORMS="1",
                   SAGEMAKER_MAX_PAYLOAD_IN_MB="1", WARMCV_SERVE_BODY_TIMEOUT="3")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, lambda: exited(server))
        yield port, url
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


def test_stalled_clients_do_not_keep_ping_or_predictions_waiting(one_worker, feature_rows):
    """Six clients stalled mid-body and two mid-headers; /ping must still answer within SageMaker's 2 s."""
    port, url = one_worker
    stalled = [stall_mid_body(port) for _ in range(6)] + [stall_mid_headers(port) for _ in range(2)]
    try:
        time.sleep(0.5)  # they are connected and waiting
        slowest = 0.0
        for _ in range(5):
            started = time.monotonic()
            status, _ = http("GET", url + "/ping", timeout=10)
            slowest = max(slowest, time.monotonic() - started)
            assert status == 200
        assert slowest < 2, f"/ping took {slowest:.2f} s with 8 stalled clients"
        status, body = http("POST", url + "/invocations", feature_rows, {"Content-Type": "text/csv"}, timeout=30)
        assert status == 200 and body.count(b"\n") == feature_rows.count(b"\n")
    finally:
        for sock in stalled:
            sock.close()


def test_a_stalled_body_is_answered_408_after_the_body_timeout(one_worker):
    port, _ = one_worker
    sock = stall_mid_body(port)
    try:
        sock.settimeout(30)
        answer = sock.recv(4096)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"nothing arrived for 3 s after 11 of 100000 bytes" in answer


def test_chunked_bodies_give_every_row_or_a_413(one_worker, feature_rows):
    port, _ = one_worker
    status, body = chunked(port, feature_rows * 5, {"Content-Type": "text/csv"})  # about 0.7 MB
    assert status == 200 and body.count(b"\n") == 5 * feature_rows.count(b"\n")
    over = feature_rows * 10  # about 1.4 MB, over the 1 MB limit
    status, body = chunked(port, over, {"Content-Type": "text/csv"})
    assert status == 413, body[:300]
    assert b"a chunked body of more than 1048576 bytes is over the limit of 1 MB" in body


def test_expect_100_continue_is_honoured(one_worker, feature_rows):
    """curl sends `Expect: 100-continue` above 1 KB and waits for the 100 before it sends the body."""
    port, _ = one_worker
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
                     b"Content-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n" % len(feature_rows))
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(feature_rows)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and body.count(b"\n") == feature_rows.count(b"\n")


def test_bounded_load_with_stalled_clients_has_no_5xx_and_ping_within_2_s(model_dir, tmp_path):
    """bench/serve_load.py at a small scale: mixed good and bad requests, six clients stalled throughout."""
    figures = tmp_path / "load.json"
    # Its own process group: if it overruns, the server it started goes with it instead of living on.
    bench = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "serve_load.py"), "--threads", "4", "--requests", "25",
         "--stalled", "6", "--model-dir", str(model_dir), "--json", str(figures)],
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output = bench.communicate(timeout=280)[0]  # within pytest's own 300 s timeout
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
    assert bench.returncode == 0, output
    report = json.loads(figures.read_text())
    assert report["requests"] == 100 and report["server_errors"] == 0 and report["wrong_answers"] == []
    assert report["ping_failures"] == 0 and report["worst_ping_seconds"] < 2
    assert report["stalled_still_open"] == 6  # they were held for the whole run
    assert {"200", "400", "413"} <= set(report["statuses"])
