"""The Flask application behind SageMaker's inference contract: /ping, /invocations, /execution-parameters.

Every error is a short plain-text body that says what is wrong (batch transform writes it to the
job's log, an endpoint returns it to the caller): 400 for a bad body or columns, 406/415 for types we
do not speak, 413 for a body over the payload limit. Anything else is our bug: 500, traceback logged.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from warmcv.errors import UserInputError
from warmcv.model.artifacts import TrainedModel
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
    features = metadata.schema.names
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
        body = request.get_data(cache=False)
        if not body.strip():
            raise UserInputError(f"empty request body: send rows as {codec.SUPPORTED}")
        frame = codec.decode(body, request_fmt, features, metadata.target, metadata.id_columns)
        if frame.empty:  # a CSV header and no rows
            predictions = frame.iloc[:, :0]
        else:
            output = response_fmt.output if is_classifier else None
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
        size = f"{request.content_length} bytes" if request.content_length is not None else "the body"
        return _client_error(413, (
            f"payload too large: {size} is over the limit of {settings.max_payload_mb} MB "
            "(SAGEMAKER_MAX_PAYLOAD_IN_MB). Send fewer rows per request; for batch transform use "
            "SplitType=Line with BatchStrategy=MultiRecord so SageMaker splits the input to fit MaxPayloadInMB."))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return _text(error.code or 500, f"{error.name}: {error.description}")

    @app.errorhandler(Exception)
    def internal(error: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.path)
        return _text(500, f"internal error: {type(error).__name__}: {error}")

    return app


def _client_error(status: int, error: Exception | str) -> Response:
    message = str(error)
    # Batch transform only shows the status in the job; the log line is where a user finds the reason.
    log.warning("%s %s -> %d: %s", request.method, request.path, status, message)
    return _text(status, message)
