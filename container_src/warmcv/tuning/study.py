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

    url = storage_url(run_dir)
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
        return optuna.create_study(storage=url, study_name=STUDY_NAME, sampler=sampler,
                                   direction=direction.lower(), load_if_exists=False)
    if not (run_dir / STUDY_FILE).is_file():
        raise UserInputError(f"nothing to resume in {run_dir}: it has no {STUDY_FILE}")
    study = optuna.load_study(storage=url, study_name=STUDY_NAME, sampler=sampler)
    if study.direction.name.lower() != direction.lower():
        created = study.direction.name.lower()
        raise UserInputError(f"the study in {run_dir} was created to {created}, not to {direction}")
    return study


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
