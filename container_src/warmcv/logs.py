"""Logging set-up shared by the CLI and the container: one line per event, to stdout (CloudWatch reads it)."""

from __future__ import annotations

import logging
import os
import sys


def configure_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("WARMCV_LOG_LEVEL", "INFO")).upper()
    root = logging.getLogger()
    if root.handlers:  # already configured (by us, or by the training toolkit's basicConfig): don't double lines
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # The training toolkit configures its own logger; keep its chatter at warning level.
    logging.getLogger("sagemaker-training-toolkit").setLevel(logging.WARNING)
