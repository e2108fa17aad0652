"""The ASGI gateway in front of the Flask app, driven through the ASGI interface as gunicorn's asyncio worker does.

The whole server (gunicorn, sockets, stalled clients) is tested in tests/integration/test_serve_command.py;
here each rule of the gateway is checked on its own: limits, timeouts, what reaches the WSGI app.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from flask import Flask, request

from warmcv.serving.gateway import BufferedWSGIGateway


def too_large(size: int | None) -> str:
    return f"too large: {size}"


def echo_app() -> Flask:
    app = Flask("echo")
    app.config["release"] = threading.Event()

    @app.get("/ping")
    def ping() -> str:
        return ""

    @app.post("/echo")
    def echo() -> dict[str, object]:
        return {"body": request.get_data().decode(), "content_length": request.content_length,
                "content_type": request.content_type, "transfer_encoding": request.headers.get("Transfer-Encoding"),
                "custom": request.headers.get("X-Custom"), "query": request.query_string.decode()}

    @app.post("/block")
    def block() -> str:
        app.config["release"].wait(30)
        return "done"

    return app


def gateway(app: Flask | None = None, **options) -> BufferedWSGIGateway:
    settings = {"max_body_bytes": 100, "body_timeout": 5.0, "prediction_slots": 1, "too_large": too_large}
    return BufferedWSGIGateway(app or echo_app(), **{**settings, **options})


def scope(method: str, path: str, headers: dict[str, str] | None = None, query: bytes = b"") -> dict:
    return {"type": "http", "method": method, "path": path, "query_string": query, "http_version": "1.1",
            "scheme": "http", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 5555), "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}


async def call(app: BufferedWSGIGateway, request_scope: dict, chunks: list[bytes] | None = None,
               stall_after: bool = False) -> list[dict]:
    """Run one request; `chunks` are the body's ASGI messages. Returns what the gateway sent."""
    queue: asyncio.Queue = asyncio.Queue()
    chunks = chunks if chunks is not None else [b""]
    for i, chunk in enumerate(chunks):
        queue.put_nowait({"type": "http.request", "body": chunk,
                          "more_body": stall_after or i < len(chunks) - 1})
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await app(request_scope, queue.get, send)
    return sent


def status_and_body(sent: list[dict]) -> tuple[int, bytes]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def header(sent: list[dict], name: bytes) -> bytes | None:
    start = next(m for m in sent if m["type"] == "http.response.start")
    return dict(start["headers"]).get(name)


def test_a_complete_body_reaches_the_app_with_its_length_and_headers():
    sent = asyncio.run(call(gateway(), scope("POST", "/echo", {"Content-Type": "text/csv", "Transfer-Encoding": "chunked",
                                                               "X-Custom": "a"}, query=b"x=1"),
                            [b"1,2\n", b"3,4\n"]))
    status, body = status_and_body(sent)
    assert status == 200
    got = json.loads(body)
    # A chunked body arrives whole: the app sees its length, not "chunked" (for which Werkzeug reads nothing).
    assert got == {"body": "1,2\n3,4\n", "content_length": 8, "content_type": "text/csv",
                   "transfer_encoding": None, "custom": "a", "query": "x=1"}


def test_a_declared_length_over_the_limit_is_413_before_reading():
    sent = asyncio.run(call(gateway(), scope("POST", "/echo", {"Content-Length": "101"}), [b"x" * 101]))
    assert status_and_body(sent) == (413, b"too large: 101\n")
    assert header(sent, b"connection") == b"close"


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit():
    sent = asyncio.run(call(gateway(), scope("POST", "/echo"), [b"x" * 60, b"x" * 60], stall_after=True))
    assert status_and_body(sent) == (413, b"too large: None\n")


def test_a_body_at_the_limit_is_accepted():
    sent = asyncio.run(call(gateway(), scope("POST", "/echo"), [b"x" * 50, b"x" * 50]))
    assert status_and_body(sent)[0] == 200


def test_a_body_that_stops_arriving_is_408():
    sent = asyncio.run(call(gateway(body_timeout=0.2), scope("POST", "/echo", {"Content-Length": "50"}), [b"x" * 10],
                            stall_after=True))
    status, body = status_and_body(sent)
    assert status == 408
    assert body.decode().startswith("request body: nothing arrived for 0.2 s after 10 of 50 bytes")


def test_expect_100_continue_is_answered_before_the_body_is_read():
    sent = asyncio.run(call(gateway(), scope("POST", "/echo", {"Expect": "100-continue", "Content-Length": "3"}),
                            [b"abc"]))
    assert sent[0] == {"type": "http.response.informational", "status": 100, "headers": []}
    assert status_and_body(sent)[0] == 200


def test_no_100_continue_for_a_body_that_will_be_refused():
    sent = asyncio.run(call(gateway(), scope("POST", "/echo", {"Expect": "100-continue", "Content-Length": "1000"})))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


def test_get_is_answered_while_every_prediction_slot_is_busy():
    """/ping runs on the event loop; a POST holding the only slot must not delay it."""
    app = echo_app()
    front = gateway(app, prediction_slots=1)

    async def scenario() -> tuple[int, bool]:
        blocked = asyncio.create_task(call(front, scope("POST", "/block"), [b"x"]))
        await asyncio.sleep(0.2)  # the POST now holds the slot
        ping = await asyncio.wait_for(call(front, scope("GET", "/ping")), timeout=2)
        still_blocked = not blocked.done()
        app.config["release"].set()
        await blocked
        return status_and_body(ping)[0], still_blocked

    status, still_blocked = asyncio.run(scenario())
    assert status == 200 and still_blocked


def test_lifespan_completes_and_shuts_the_pool_down():
    front = gateway()

    async def scenario() -> list[dict]:
        queue: asyncio.Queue = asyncio.Queue()
        for kind in ("lifespan.startup", "lifespan.shutdown"):
            queue.put_nowait({"type": kind})
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        await front({"type": "lifespan"}, queue.get, send)
        return sent

    assert [m["type"] for m in asyncio.run(scenario())] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    with pytest.raises(RuntimeError):
        front.pool.submit(print)
