"""`warmcv serve`: the model server SageMaker starts with `docker run IMAGE serve`."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve", help="serve a model over HTTP for batch transform and endpoints (/ping, /invocations)",
        description="Answer SageMaker's inference contract with gunicorn: GET /ping, POST /invocations "
                    "(text/csv or application/jsonlines in; probabilities or labels out per the Accept "
                    "header, e.g. 'text/csv; output=labels'), GET /execution-parameters. Settings come from "
                    "SAGEMAKER_BIND_TO_PORT, SAGEMAKER_MAX_PAYLOAD_IN_MB, SAGEMAKER_MAX_CONCURRENT_TRANSFORMS, "
                    "SAGEMAKER_MODEL_SERVER_WORKERS, SAGEMAKER_MODEL_SERVER_TIMEOUT and WARMCV_SERVE_OUTPUT; "
                    "options below override them. See docs/serving.md.")
    serve.add_argument("--model-dir", type=Path,
                       help="model folder (model.txt + model.json); default $SAGEMAKER_BASE_DIR/model or /opt/ml/model")
    serve.add_argument("--host", help="address to bind (default 0.0.0.0, which SageMaker needs)")
    serve.add_argument("--port", help="port (default $SAGEMAKER_BIND_TO_PORT or 8080)")
    serve.add_argument("--workers", help="worker processes (default: the concurrency, at most one per CPU)")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from warmcv.errors import UserInputError
    from warmcv.serving.settings import MAX_WORKERS, ServeSettings

    port = _option(args.port, "--port", 1, 65535)
    workers = _option(args.workers, "--workers", 1, MAX_WORKERS)
    settings = ServeSettings.from_env(model_dir=args.model_dir, host=args.host, port=port, workers=workers)
    try:
        from warmcv.serving.server import serve
    except ImportError as error:
        raise UserInputError(f"serve needs the serve extra ({error.name} is missing): "
                             "pip install 'warmcv[serve]'") from None
    serve(settings)
    return 0


def _option(raw: str | None, name: str, low: int, high: int) -> int | None:
    from warmcv.errors import UserInputError
    from warmcv.serving.settings import bounded_int

    if raw is None:
        return None
    value = bounded_int(raw, low, high)
    if value is None:
        raise UserInputError(f"{name} {raw!r}: must be an integer from {low} to {high}")
    return value
