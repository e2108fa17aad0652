"""gunicorn running the serving app: what `warmcv serve` (and so `docker run IMAGE serve`) starts.

Decisions, and why:
- gunicorn's master binds the port first, then forks the workers; each worker loads the model itself
  (no preload). LightGBM uses OpenMP, which is not safe to use in a child forked after the parent
  used it, so the booster must never be loaded before the fork. The master only checks model.json
  (no LightGBM), so a missing or broken model stops the start at once with a clear message; a model.txt
  that LightGBM cannot read stops it from the first worker, with LightGBM's reason and no traceback.
- A worker answers nothing until its model is loaded; a /ping that arrives earlier waits in the
  listen queue, so 200 always means "this server can predict".
- gunicorn's asyncio worker ("asgi") with gateway.py in front of the Flask app: a request body is
  read on the event loop, so clients that stall mid-body hold a socket, not a thread, and /ping is
  answered on the loop within SageMaker's 2 s however many of them there are. Predictions run in a
  thread pool of `prediction_slots` threads per worker. (gunicorn's gthread worker, used before,
  gives every connection a thread that blocks on its body: five stalled clients took all of them.)
- SIGTERM (SageMaker stopping the endpoint or transform job): gunicorn stops accepting, lets running
  requests finish for up to `graceful_timeout`, then exits 0.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.errors import AppImportError, HaltServer

from warmcv.errors import UserInputError
from warmcv.model.artifacts import TrainedModel, load_metadata
from warmcv.serving.settings import ServeSettings

log = logging.getLogger(__name__)
GRACEFUL_TIMEOUT_SECONDS = 20


def gunicorn_options(settings: ServeSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bind": [f"{settings.host}:{settings.port}"],
        "workers": settings.workers,
        "worker_class": "asgi",
        # uvloop is not in the image; say so rather than let "auto" depend on what happens to be installed.
        "asgi_loop": "asyncio",
        "asgi_lifespan": "on",
        # The event loop heartbeats while predictions run in threads, so this bounds a stuck loop, not a long request.
        "timeout": settings.timeout_seconds,
        "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
        "keepalive": 5,
        "errorlog": "-",
        "loglevel": "info",
        "accesslog": None,
        # The runtime control socket (gunicorn >= 25) would create $HOME/.gunicorn; nothing here uses it.
        "control_socket_disable": True,
    }
    # Heartbeat files on tmpfs: a container's /tmp can sit on a slow overlay disk.
    if os.path.isdir("/dev/shm"):
        options["worker_tmp_dir"] = "/dev/shm"
    return options


class ModelServer(BaseApplication):
    def __init__(self, settings: ServeSettings):
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.settings).items():
            self.cfg.set(key, value)

    def load(self):
        """Runs in each worker after the fork: load the model, then build the app around it."""
        from warmcv.serving.app import create_app
        from warmcv.serving.gateway import BufferedWSGIGateway

        started = time.perf_counter()
        try:
            model = TrainedModel.load(self.settings.model_dir)
        except UserInputError as error:
            # gunicorn prints an AppImportError's message alone (any other exception with its traceback),
            # stops the other workers and exits with APP_LOAD_ERROR; serve() turns that into our exit code 2.
            raise AppImportError(str(error)) from None
        log.info("worker %d loaded the model in %.2f s", os.getpid(), time.perf_counter() - started)
        settings = self.settings
        return BufferedWSGIGateway(
            create_app(model, settings), max_body_bytes=settings.max_payload_bytes,
            body_timeout=settings.body_timeout_seconds, prediction_slots=settings.prediction_slots,
            too_large=settings.payload_too_large)


def serve(settings: ServeSettings) -> None:
    """Check the model, then run gunicorn until it is stopped (SIGTERM/SIGINT); exits the process."""
    metadata = load_metadata(settings.model_dir)
    kind = f"classes {metadata.classes}" if metadata.classes is not None else "regression"
    log.info("serving %s model from %s (%s, %d features) on %s:%d: %d worker(s) x %d prediction slot(s), "
             "%d LightGBM thread(s) per request, payload limit %s",
             metadata.task, settings.model_dir, kind, len(metadata.features), settings.host, settings.port,
             settings.workers, settings.prediction_slots, settings.predict_threads,
             f"{settings.max_payload_mb} MB" if settings.max_payload_mb else "none")
    master = os.getpid()
    try:
        ModelServer(settings).run()
    except (SystemExit, HaltServer) as stop:
        # Workers are forks of this process and leave through here too: only the master's exit is translated.
        # HaltServer escapes gunicorn (26.2) when a second worker fails while it halts for the first.
        code = stop.exit_status if isinstance(stop, HaltServer) else stop.code
        if os.getpid() == master and code == Arbiter.APP_LOAD_ERROR:
            raise UserInputError(
                f"cannot load the model in {settings.model_dir} (a worker logged why, above)") from None
        raise
