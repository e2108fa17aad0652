"""The asyncio front of the Flask app: each request body is read in full, without a thread, before work starts.

Why: under gunicorn's thread-per-request worker (gthread) a client that sends a Content-Length and part
of a body holds a request thread while it waits for the rest; five such clients took every thread and
/ping, which SageMaker gives 2 s, went unanswered for as long as they stalled. Under gunicorn's asyncio
worker a waiting client costs a socket, not a thread. This gateway (an ASGI application around the
WSGI one) therefore:

- collects the body on the event loop, bounded by the payload limit (a 413 as soon as a chunked body
  passes it, before it is all in memory) and by an idle timeout (a 408 when a body stops arriving);
- answers GET requests (/ping, /execution-parameters: no body, microseconds of work) on the event
  loop itself, so they never queue behind predictions;
- hands complete POST requests to a thread pool sized for the predictions one worker should run at
  once, so CPU-bound LightGBM work never oversubscribes the cores however many clients connect.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
INLINE_METHODS = frozenset({"GET", "HEAD"})
# How long a refused body is read and dropped before the connection closes (see _drain).
DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class WSGIResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    values = [value.decode("latin-1") for key, value in headers if key == name]
    return ",".join(values) if values else None


def wsgi_environ(scope: Message, body: bytes) -> dict[str, Any]:
    """The PEP 3333 environ of an ASGI HTTP request whose whole body is `body`."""
    server_host, server_port = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", ""),
        # PEP 3333: the path as native str whose code points are the URL's bytes (latin-1).
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server_host),
        "SERVER_PORT": str(server_port),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(client[0]), str(client[1])
    headers: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    for name, values in headers.items():
        if name in ("content-length", "transfer-encoding"):
            continue  # the body is complete, its length is what was received (Werkzeug reads none if "chunked")
        key = "CONTENT_TYPE" if name == "content-type" else "HTTP_" + name.upper().replace("-", "_")
        environ[key] = ",".join(values)
    return environ


def call_wsgi(app: WSGIApp, environ: dict[str, Any]) -> WSGIResponse:
    """Run the WSGI app to completion and collect its response."""
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started["status"], started["headers"] = status, headers
        return lambda _data: None  # the legacy write() callable; Flask never uses it

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return WSGIResponse(
        int(started["status"].split(" ", 1)[0]),
        [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in started["headers"]],
        body,
    )


async def _answer(send: Send, response: WSGIResponse) -> None:
    await send({"type": "http.response.start", "status": response.status, "headers": response.headers})
    await send({"type": "http.response.body", "body": response.body})


def _plain(status: int, message: str, *, close: bool = False) -> WSGIResponse:
    body = (message.rstrip("\n") + "\n").encode("utf-8")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    return WSGIResponse(status, headers, body)


class BufferedWSGIGateway:
    """ASGI application that runs a WSGI app on complete requests (see the module docstring)."""

    def __init__(self, app: WSGIApp, *, max_body_bytes: int | None, body_timeout: float, prediction_slots: int,
                 too_large: Callable[[int | None], str]):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.too_large = too_large
        self.pool = ThreadPoolExecutor(max_workers=prediction_slots, thread_name_prefix="warmcv-predict")

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        else:  # a WebSocket upgrade: nothing here speaks it
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.pool.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["method"] in INLINE_METHODS:
            await _answer(send, call_wsgi(self.app, wsgi_environ(scope, b"")))
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        response = await asyncio.get_running_loop().run_in_executor(
            self.pool, call_wsgi, self.app, wsgi_environ(scope, body))
        await _answer(send, response)

    async def _read_body(self, scope: Message, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None once the request has been answered (413, 408) or the client has gone."""
        headers = scope["headers"]
        declared = _header(headers, b"content-length")
        length = int(declared) if declared and declared.isdigit() else None
        limit = self.max_body_bytes
        if limit is not None and length is not None and length > limit:
            await self._refuse(scope, send, 413, self.too_large(length))
            await self._drain(receive)
            return None
        if (_header(headers, b"expect") or "").lower() == "100-continue":
            # Clients that ask (curl does above 1 KB) wait for this before they send the body.
            await send({"type": "http.response.informational", "status": 100, "headers": []})
        chunks: list[bytes] = []
        received = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=self.body_timeout)
            except TimeoutError:
                expected = f" of {length}" if length is not None else ""
                await self._refuse(scope, send, 408, (
                    f"request body: nothing arrived for {self.body_timeout:g} s after {received}{expected} bytes; "
                    "send the whole body without pausing (WARMCV_SERVE_BODY_TIMEOUT)"))
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if limit is not None and received > limit:
                await self._refuse(scope, send, 413, self.too_large(length))
                await self._drain(receive)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse(self, scope: Message, send: Send, status: int, message: str) -> None:
        # Batch transform only shows the status in the job; the log line is where a user finds the reason.
        log.warning("%s %s -> %d: %s", scope["method"], scope["path"], status, message)
        await _answer(send, _plain(status, message, close=True))

    async def _drain(self, receive: Receive) -> None:
        """Read and drop the rest of a refused body for a while, so the client reads the answer.

        Closing a socket with unread data makes the kernel reset the connection, and a client still
        sending would then see "connection reset" instead of the 413. Dropping costs no memory.
        """
        deadline = asyncio.get_running_loop().time() + DRAIN_SECONDS
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                message = await asyncio.wait_for(receive(), timeout=remaining)
            except TimeoutError:
                return
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                return
