"""Helpers for the serving tests: small trained models (real LightGBM models written by the worker
mode's code) and a minimal HTTP client for a server on 127.0.0.1."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


def train_model(prepared: Path, out: Path, **hyperparameters: str) -> Path:
    """Train on the full prepared set and return the model folder (model.txt + model.json)."""
    from warmcv.cv import train_and_save
    from warmcv.data.manifest import PreparedData
    from warmcv.declarations import parse_hyperparameters

    hps = parse_hyperparameters({"mode": "worker", "fold": "all", "num_boost_round": "20", **hyperparameters})
    train_and_save(PreparedData.load(prepared), hps, out / "model", out / "metrics")
    return out / "model"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 30) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_ready(url: str, exited: Callable[[], str | None], deadline: float = 60) -> float:
    """Seconds until GET /ping answers 200; `exited` returns the server's output once it has died."""
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        output = exited()
        if output is not None:
            raise AssertionError(f"the server exited before it was ready:\n{output}")
        try:
            if http("GET", url + "/ping", timeout=2)[0] == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not answer /ping in time")
