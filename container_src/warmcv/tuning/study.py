"""The Optuna study of a run: SQLite in the run folder, and what resuming means for unfinished trials.

A trial that was running when the run stopped (Ctrl-C, SIGTERM, SIGKILL, power loss) did not fail on
its own merits: it is marked failed and queued again with the same parameters, with Optuna's own
retry bookkeeping (RetryHeartbeatStaleTrialCallback), so the sampler's sequence is not disturbed and
the budget is not charged for it. A run folder is used by one process at a time (an exclusive lock),
which is what makes "still RUNNING when we open it" the same as "interrupted".
"""

from __future__ import annotations

import copy
import fcntl
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from warmcv.errors import UserInputError
from warmcv.files import storage_fault

log = logging.getLogger(__name__)

STUDY_FILE = "study.db"
STUDY_NAME = "warmcv"
LOCK_FILE = ".lock"
# A trial whose run dies this many times in a row is given up on (failed, not retried again).
MAX_RETRIES = 3


def storage_url(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / STUDY_FILE).resolve()}"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder; the kernel drops it if the process dies, so no stale locks."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserInputError(
                f"{run_dir} is in use by another warmcv run (it holds {run_dir / LOCK_FILE})") from None
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(handle)


def open_study(run_dir: Path, direction: str, sampler: Any, create: bool) -> Any:
    """Create the run's study, or load it (create=False) to resume."""
    import optuna

    path = run_dir / STUDY_FILE
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
        _create_study_file(path, direction)
    elif not path.is_file():
        raise UserInputError(f"nothing to resume in {run_dir}: it has no {STUDY_FILE}")
    check_study_file(path)
    try:
        study = optuna.load_study(storage=storage_url(run_dir), study_name=STUDY_NAME, sampler=sampler)
    except KeyError:  # Optuna's "Record does not exist."
        raise UserInputError(f"cannot resume {run_dir}: {path} holds no warmcv study (no study named "
                             f"{STUDY_NAME!r}); {_START_AGAIN}") from None
    if study.direction.name.lower() != direction.lower():
        created = study.direction.name.lower()
        raise UserInputError(f"the study in {run_dir} was created to {created}, not to {direction}")
    return study


_START_AGAIN = ("its finished trials cannot be read: restore study.db from a backup, or start the run again in "
                "another folder")


def _create_study_file(path: Path, direction: str) -> None:
    """Create the study under a temporary name and rename it into place once complete.

    Creating a study is several commits (the schema, the study, its direction); a Ctrl-C or a full disk
    between them used to leave a study.db that made the folder look like a run and could not be resumed.
    """
    import optuna

    tmp = path.with_name(f".{path.name}.tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
        leftover.unlink(missing_ok=True)
    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp.resolve()}")
        try:
            optuna.create_study(storage=storage, study_name=STUDY_NAME,
                                direction=optuna.study.StudyDirection[direction.upper()])
        finally:
            storage.engine.dispose()  # no connection may hold the file while it is renamed
        os.replace(tmp, path)
    except BaseException:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            leftover.unlink(missing_ok=True)
        raise


def check_study_file(path: Path) -> None:
    """Refuse a study.db that is empty, not SQLite, damaged or not a study, before Optuna touches it.

    Optuna would create its tables in an empty file and then fail with KeyError('Record does not
    exist.'), and answer a damaged one with SQLAlchemy's DatabaseError or its own StorageInternalError
    ("exceeding max length"). The connection is a normal (writable) one on purpose: a study.db left
    mid-commit by a killed run has a hot journal that SQLite must roll back when it is opened.
    """
    import sqlite3

    if path.stat().st_size == 0:
        raise UserInputError(f"cannot resume {path.parent}: {path} is empty; {_START_AGAIN}")
    try:
        connection = sqlite3.connect(path)
        try:
            check = [row[0] for row in connection.execute("PRAGMA quick_check").fetchall()]
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        fault = storage_fault(error, path)  # a full disk or a read-only folder is not a damaged study
        if fault is not None:
            raise fault from None
        raise UserInputError(f"cannot resume {path.parent}: {path} is not a readable SQLite database "
                             f"({error}); {_START_AGAIN}") from None
    if check != ["ok"]:
        raise UserInputError(f"cannot resume {path.parent}: {path} is damaged (SQLite's check: {check[0]}); "
                             f"{_START_AGAIN}")
    if not {"studies", "trials"} <= tables:
        raise UserInputError(f"cannot resume {path.parent}: {path} is an SQLite database but not an Optuna "
                             f"study; {_START_AGAIN}")


def _retry(study: Any, trial: Any) -> bool:
    """Queue `trial` again (same parameters); False once it has been retried MAX_RETRIES times."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
        before = len(study.get_trials(deepcopy=False))
        callback(study, trial)
    return len(study.get_trials(deepcopy=False)) > before


def fail_and_requeue(study: Any, number: int) -> bool:
    """Mark a running trial failed because its run stopped, and queue its parameters again."""
    from optuna.trial import TrialState

    study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    # A copy: the callback appends to the trial's retry history in place, which must not leak into
    # the storage's cache of finished trials.
    frozen = copy.deepcopy(next(t for t in study.get_trials(deepcopy=False) if t.number == number))
    return _retry(study, frozen)


def recover_interrupted(study: Any) -> list[int]:
    """Trials left RUNNING by a run that died: fail them and queue them again. Returns their numbers."""
    from optuna.trial import TrialState

    numbers = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    for number in numbers:
        fail_and_requeue(study, number)
    if numbers:
        log.info("trial(s) %s were interrupted by the previous run; queued again", ", ".join(map(str, numbers)))
    return numbers


def retried_numbers(study: Any) -> set[int]:
    """Trials that were queued again after an interruption: their failure is not a real one."""
    retried: set[int] = set()
    for trial in study.get_trials(deepcopy=False):
        retried.update(trial.system_attrs.get("retry_history", []))
    return retried


def counted_trials(study: Any) -> tuple[int, int]:
    """(completed, failed) trials that count towards the budget; interrupted-and-requeued ones do not."""
    from optuna.trial import TrialState

    retried = retried_numbers(study)
    complete = failed = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.COMPLETE:
            complete += 1
        elif trial.state == TrialState.FAIL and trial.number not in retried:
            failed += 1
    return complete, failed


def pruned_trials(study: Any) -> int:
    """Pruned trials: they count towards the budget too (a resume neither reruns nor forgets them)."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
