"""The Flask application behind SageMaker's inference contract: /ping, /invocations, /execution-parameters.

Every error is a short plain-text body that says what is wrong (batch transform writes it to the
job's log, an endpoint returns it to the caller): 400 for a bad body or columns, 406/415 for types we
do not speak, 413 for a body over the payload limit. Anything else is our bug: 500, traceback logged.
"""

from __future__ import annotations

import logging
import time
from typing import cast

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from warmcv.errors import UserInputError
from warmcv.model.artifacts import OutputKind, TrainedModel
from warmcv.serving import codec
from warmcv.serving.settings import ServeSettings

log = logging.getLogger(__name__)


def _text(status: int, message: str) -> Response:
    return Response(message.rstrip("\n") + "\n", status=status, mimetype="text/plain")


def create_app(model: TrainedModel, settings: ServeSettings) -> Flask:
    """The WSGI application for one loaded model (each server worker builds its own)."""
    app = Flask("warmcv.serving")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes
    metadata = model.metadata
    schema = metadata.schema
    is_classifier = metadata.classes is not None

    @app.get("/ping")
    def ping() -> Response:
        # Each worker loads the model before it accepts a connection, so an answer means "ready".
        return Response(b"", status=200, mimetype="text/plain")

    @app.get("/execution-parameters")
    def execution_parameters() -> dict[str, object]:
        return settings.execution_parameters()

    @app.post("/invocations")
    def invocations() -> Response:
        started = time.perf_counter()
        request_fmt = codec.request_format(request.headers.get("Content-Type"))
        response_fmt = codec.response_format(request.headers.get("Accept"), request_fmt, settings.default_output)
        body = _read_body(settings.max_payload_bytes)
        if not body.strip():
            raise UserInputError(f"empty request body: send rows as {codec.SUPPORTED}")
        frame = codec.decode(body, request_fmt, schema, metadata.target, metadata.id_columns)
        if frame.empty:  # a CSV header and no rows
            predictions = frame.iloc[:, :0]
        else:
            # One of codec.OUTPUTS or the settings' default, both checked against the model's output kinds.
            output = cast(OutputKind, response_fmt.output) if is_classifier else None
            predictions = model.predict(frame, output=output, num_threads=settings.predict_threads)
        payload = codec.encode(predictions, response_fmt)
        log.debug("%d rows predicted in %.3f s", len(frame), time.perf_counter() - started)
        return Response(payload, status=200, mimetype=response_fmt.media_type)

    @app.errorhandler(codec.UnsupportedMediaType)
    def unsupported(error: codec.UnsupportedMediaType) -> Response:
        return _client_error(415, error)

    @app.errorhandler(codec.NotAcceptable)
    def not_acceptable(error: codec.NotAcceptable) -> Response:
        return _client_error(406, error)

    @app.errorhandler(UserInputError)
    def bad_input(error: UserInputError) -> Response:
        return _client_error(400, error)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_error: RequestEntityTooLarge) -> Response:
        return _client_error(413, settings.payload_too_large(request.content_length))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return _text(error.code or 500, f"{error.name}: {error.description}")

    @app.errorhandler(Exception)
    def internal(error: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.path)
        return _text(500, f"internal error: {type(error).__name__}: {error}")

    return app


def _read_body(limit: int | None) -> bytes:
    """The whole body, or a 413 when it is over `limit`: never the first `limit` bytes of a longer one.

    With a Content-Length, Werkzeug refuses a body over the limit before reading it. A chunked body has
    no length, and Werkzeug's limited stream just stops at the limit, so a chunked request over it was
    answered 200 for its first rows only: here one byte past the limit is read to tell the two apart.
    """
    if limit is None or request.content_length is not None or "wsgi.input_terminated" not in request.environ:
        return request.get_data(cache=False)
    stream = request.environ["wsgi.input"]
    chunks: list[bytes] = []
    received = 0
    while received <= limit:
        chunk = stream.read(min(1 << 20, limit + 1 - received))
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    if received > limit:
        raise RequestEntityTooLarge()
    return b"".join(chunks)


def _client_error(status: int, error: Exception | str) -> Response:
    message = str(error)
    # Batch transform only shows the status in the job; the log line is where a user finds the reason.
    log.warning("%s %s -> %d: %s", request.method, request.path, status, message)
    return _text(status, message)
