"""The few exception types that decide how a failure is reported.

The distinction matters at the edges: a `UserInputError` reaches the SageMaker failure file (and the
job's FailureReason) as its plain message, because the user can fix it; anything else is our bug and
is reported with a traceback.
"""

from __future__ import annotations


class WarmcvError(Exception):
    """Base class of every error warmcv raises on purpose."""


class UserInputError(WarmcvError):
    """The input (data, hyperparameters, files, columns) is wrong; the message says what and how to fix it."""


class StorageError(UserInputError):
    """The machine refused to read or write a file (disk full, read-only, permission, no such folder).

    Not our bug and not bad data, but something the user can fix (free space, choose another folder),
    so it is reported like bad input: one line that names the file and the cause, never a traceback.
    """


class StopRequested(BaseException):
    """The process was asked to stop (SIGTERM from SageMaker or the user, Ctrl-C) and has cleaned up.

    A BaseException, like KeyboardInterrupt, because the SIGTERM handler raises it wherever the main
    thread happens to be, and libraries catch `Exception` there: botocore wraps any exception raised
    during an HTTP request into a retryable HTTPClientError and sends the request again, so a stop that
    arrived during an AWS call was silently lost (verified), the coordinator ran on with SIGTERM already
    ignored, and its fold jobs were orphaned when SageMaker killed it 120 s later.
    """


class FoldFailed(WarmcvError):
    """A fold could not be trained; the message carries the fold's own failure reason."""

    def __init__(self, fold: int, reason: str):
        super().__init__(f"fold {fold} failed: {reason}")
        self.fold = fold
        self.reason = reason
