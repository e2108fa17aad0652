"""`docker run IMAGE serve` with the model trained in a container: the batch-transform contract over HTTP.

The server listens on 127.0.0.1 only (--network host, --host 127.0.0.1); predictions are compared with
the same model loaded on the host, so the image's whole path (parse, schema, LightGBM, encode) is checked.
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path

import pandas as pd
import pytest

from tests.docker.helpers import FIGURES, docker
from tests.serving_helpers import free_port, http, wait_ready
from warmcv.examples import example_path
from warmcv.model.artifacts import TrainedModel


def start_server(image: str, model_dir: Path, name: str, port: int, **env: str) -> None:
    env_args = [item for key, value in env.items() for item in ("-e", f"{key}={value}")]
    docker("run", "-d", "--name", name, "--network", "host", "-e", f"SAGEMAKER_BIND_TO_PORT={port}", *env_args,
           "-v", f"{model_dir}:/opt/ml/model:ro", image, "serve", "--host", "127.0.0.1")


def exited(name: str) -> str | None:
    """The container's logs once it has stopped, else None."""
    if docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true":
        return None
    result = docker("logs", name, check=False)
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def model_dir(final_training) -> Path:
    contract, _ = final_training
    return contract.base / "model"


@pytest.fixture(scope="module")
def server(image: str, model_dir: Path) -> Iterator[tuple[str, str]]:
    name, port = f"warmcv-test-serve-{free_port()}", free_port()
    started = time.monotonic()
    start_server(image, model_dir, name, port, SAGEMAKER_MAX_PAYLOAD_IN_MB="1", SAGEMAKER_MAX_CONCURRENT_TRANSFORMS="2")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, lambda: exited(name), deadline=120)
        FIGURES["serve: docker run -> first 200 from /ping"] = f"{time.monotonic() - started:.2f} s"
        yield url, name
    finally:
        docker("rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.read_csv(example_path()).sample(200, random_state=3)


@pytest.fixture(scope="module")
def host_model(model_dir: Path) -> TrainedModel:
    return TrainedModel.load(model_dir)


def test_ping(server):
    url, _ = server
    status, body = http("GET", url + "/ping")
    assert status == 200 and body == b""


def test_execution_parameters(server):
    url, _ = server
    status, body = http("GET", url + "/execution-parameters")
    assert status == 200
    assert json.loads(body) == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 1}


def test_headerless_csv_probabilities_match_the_model(server, rows, host_model):
    url, _ = server
    names = host_model.metadata.schema.names
    status, body = http("POST", url + "/invocations", rows[names].to_csv(index=False, header=False).encode(),
                        {"Content-Type": "text/csv"})
    assert status == 200, body
    got = pd.read_csv(io.BytesIO(body), header=None).to_numpy()
    assert got == pytest.approx(host_model.predict(rows).to_numpy(), rel=1e-9)


def test_csv_with_header_and_labels(server, rows, host_model):
    url, _ = server
    status, body = http("POST", url + "/invocations", rows.to_csv(index=False).encode(),  # target column included
                        {"Content-Type": "text/csv", "Accept": "text/csv; output=labels"})
    assert status == 200, body
    assert body.decode().splitlines() == host_model.predict(rows, output="labels")["prediction"].tolist()


def test_json_lines(server, rows, host_model):
    url, _ = server
    body = rows.drop(columns=["income"]).to_json(orient="records", lines=True).encode()
    status, answer = http("POST", url + "/invocations", body,
                          {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"})
    assert status == 200, answer
    lines = [json.loads(line) for line in answer.decode().splitlines()]
    want = host_model.predict(rows)
    assert len(lines) == len(rows)
    assert [line["probability_>50K"] for line in lines] == pytest.approx(want["probability_>50K"].tolist(), rel=1e-9)


def test_bad_request_is_400_with_the_reason(server, host_model):
    url, name = server
    status, body = http("POST", url + "/invocations", b"39,Private,HS-grad\n", {"Content-Type": "text/csv"})
    assert status == 400
    assert b"expected 9 columns" in body and b"got 3" in body
    assert "-> 400: headerless CSV" in docker("logs", name).stdout  # the reason is in the job's log too


def test_payload_over_the_limit_is_413(server):
    url, _ = server
    status, body = http("POST", url + "/invocations", b"1," * (600 * 1024), {"Content-Type": "text/csv"})
    assert status == 413 and b"limit of 1 MB (SAGEMAKER_MAX_PAYLOAD_IN_MB)" in body


def test_ping_answers_within_2_s_with_clients_stalled_mid_body(server):
    url, _ = server
    port = int(url.rsplit(":", 1)[1])
    stalled = []
    try:
        for _ in range(6):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
                         b"Content-Length: 100000\r\n\r\n39,Private,")
            stalled.append(sock)
        time.sleep(0.5)
        started = time.monotonic()
        status, _ = http("GET", url + "/ping", timeout=10)
        assert status == 200 and time.monotonic() - started < 2
    finally:
        for sock in stalled:
            sock.close()


def test_a_chunked_body_over_the_limit_is_413(server, rows, host_model):
    url, _ = server
    body = rows[host_model.metadata.schema.names].to_csv(index=False, header=False).encode() * 80  # over 1 MB
    assert len(body) > 1024 * 1024
    connection = HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=60)
    try:
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", "text/csv")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        try:
            for start in range(0, len(body), 65536):
                part = body[start:start + 65536]
                connection.send(b"%x\r\n%s\r\n" % (len(part), part))
            connection.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = connection.getresponse()
        status, answer = response.status, response.read()
    finally:
        connection.close()
    assert status == 413 and b"a chunked body of more than 1048576 bytes" in answer


def test_sigterm_stops_the_server_gracefully(server):
    """Runs last in this module: `docker stop` (SIGTERM) must end the server cleanly, with exit code 0."""
    _, name = server
    started = time.monotonic()
    docker("stop", "--time", "30", name, timeout=60)
    FIGURES["serve stop: SIGTERM -> container exit"] = f"{time.monotonic() - started:.2f} s"
    assert docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    assert "Shutting down: Master" in docker("logs", name).stderr


def test_serve_without_a_model_exits_with_the_reason(image, tmp_path, cleanup_containers):
    name = f"warmcv-test-nomodel-{free_port()}"
    cleanup_containers.append(name)
    docker("run", "-d", "--name", name, "--network", "none", "-v", f"{tmp_path}:/opt/ml/model:ro", image, "serve")
    deadline = time.monotonic() + 60
    while exited(name) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "2"
    assert "no warmcv model in /opt/ml/model: expected model.txt and model.json" in docker("logs", name).stderr
