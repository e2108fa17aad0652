"""Turning SIGTERM (SageMaker stop, tuner early stopping, MaxRuntime) into an exception our cleanup can catch.

SageMaker sends SIGTERM and kills 120 s later. Raising `StopRequested` unwinds the coordinator through
its `except`/`finally` blocks, which stop the folds. After the first signal further ones are ignored,
so a second SIGTERM cannot interrupt that cleanup half-way.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from warmcv.errors import StopRequested


@contextmanager
def stop_on_signals(signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be installed from the main thread
        return

    def handler(signum: int, _frame: object) -> None:
        for s in signals:
            signal.signal(s, signal.SIG_IGN)
        raise StopRequested(f"received {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
