"""Writing files so that a fault leaves no half-written file behind, and naming the fault when the machine refuses.

Two jobs, both about the same faults (a full disk, a read-only or missing folder, a permission):
- `atomic_path` gives a temporary name beside the file to write; the file appears under its real name
  only once it is complete, and the temporary one is removed when the writing fails or is interrupted
  (a full disk used to leave `prepared/.data.parquet.tmp` and `.model.tar.gz.tmp` behind).
- `storage_fault` recognises such a fault under whatever a library wrapped it in (pyarrow's OSError,
  SQLite's "database or disk is full" inside SQLAlchemy inside Optuna's StorageInternalError, whose own
  message blames "exceeding max length"; LightGBM's "Cannot write binary data") and turns it into a
  `StorageError` that says what happened to which file in one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from warmcv.errors import StorageError

# What each refusal means to a user; errno values from the C library, named by the errno module.
_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "it exists and is not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EIO: "the device reported an input/output error",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files",
}
# SQLite's messages for the same faults (sqlite3 reports them as OperationalError without an errno).
_SQLITE_REASONS = {
    "database or disk is full": _REASONS[errno.ENOSPC],
    "attempt to write a readonly database": "the database file or its folder is read-only",
    "unable to open database file": "the database file cannot be opened (its folder is missing or not writable)",
    "disk i/o error": _REASONS[errno.EIO],
}
_LIGHTGBM_SHORT_WRITE = re.compile(
    r"Cannot write binary data to (?P<path>.+), wrote (?P<wrote>\d+) of (?P<total>\d+) bytes")


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path beside `path` to write to: renamed onto `path` if the block succeeds, removed if not.

    A reader therefore sees the old file, the complete new one, or none, and a failure (a full disk,
    Ctrl-C) leaves nothing behind that a later step could take for the real file. A refused write
    comes out as a StorageError naming `path`.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        # Named here, where the file is known: pyarrow's and pandas' write errors carry no path.
        fault = storage_fault(error, path) if isinstance(error, Exception) else None
        if fault is not None and fault is not error:
            raise fault from error
        raise


def write_text_atomic(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything it was raised from or during (SQLAlchemy also keeps the driver's as `orig`)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        pending += [current.__cause__, current.__context__, orig if isinstance(orig, BaseException) else None]


def _shown(path: str | os.PathLike[str]) -> str:
    """The file a user knows: the real name, not our temporary one."""
    text = os.fspath(path)
    head, name = os.path.split(text)
    if name.startswith(".") and name.endswith(".tmp"):
        return os.path.join(head, name[1:-4])
    return text


def storage_fault(error: BaseException, where: Path | str | None = None) -> StorageError | None:
    """A one-line `StorageError` if `error` is the machine refusing a file operation, else None.

    `where` names the file or folder being written when the error itself does not (pyarrow's and
    SQLite's errors carry no path).
    """
    for cause in _causes(error):
        if isinstance(cause, StorageError):
            return cause
        if isinstance(cause, OSError) and cause.errno in _REASONS:
            target = cause.filename if cause.filename is not None else where
            return StorageError(f"{_shown(target)}: {_REASONS[cause.errno]}" if target is not None
                                else _REASONS[cause.errno])
        if isinstance(cause, sqlite3.OperationalError):
            reason = _SQLITE_REASONS.get(str(cause).strip().lower())
            if reason is not None:
                return StorageError(f"{where}: {reason}" if where is not None else reason)
        if type(cause).__name__ == "LightGBMError":
            short = _LIGHTGBM_SHORT_WRITE.search(str(cause))
            if short is not None:
                return StorageError(f"{_shown(short['path'])}: the device took only {short['wrote']} of "
                                    f"{short['total']} bytes (is it full?)")
    return None


def check_writable_folder(folder: Path | str, what: str) -> Path:
    """Create `folder` if needed and prove a file can be written in it, or raise a StorageError naming it.

    Done before any work, so an impossible or read-only output folder is a one-line refusal at the
    start rather than a traceback after the data has been prepared.
    """
    folder = Path(folder)
    probe = folder / f".warmcv-write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        reason = _REASONS.get(error.errno or 0) or (error.strerror or str(error)).lower()
        if error.errno == errno.ENOENT:
            reason = "a folder cannot be created there"
        raise StorageError(f"{what} {folder} cannot be used: {reason}") from None
    return folder
