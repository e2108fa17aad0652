"""Resume semantics of the run's Optuna study: interrupted trials are re-queued, not charged to the budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from warmcv.errors import UserInputError
from warmcv.tuning.study import (
    MAX_RETRIES,
    counted_trials,
    fail_and_requeue,
    open_study,
    recover_interrupted,
    retried_numbers,
    run_lock,
)

DISTRIBUTIONS = {"a": IntDistribution(1, 100, log=True), "b": FloatDistribution(0.0, 1.0)}


def test_running_trials_are_requeued_with_the_same_parameters(tmp_path: Path) -> None:
    study = open_study(tmp_path, "Maximize", optuna.samplers.RandomSampler(seed=0), create=True)
    done = study.ask(DISTRIBUTIONS)
    study.tell(done, 0.5)
    crashed = study.ask(DISTRIBUTIONS)
    study.tell(crashed, state=TrialState.FAIL)  # a genuine failure: counted
    killed = study.ask(DISTRIBUTIONS)  # left RUNNING, as after SIGKILL

    reopened = open_study(tmp_path, "Maximize", None, create=False)
    assert recover_interrupted(reopened) == [killed.number]
    assert counted_trials(reopened) == (1, 1)
    retry = reopened.ask(DISTRIBUTIONS)
    assert retry.params == killed.params
    reopened.tell(retry, 0.7)
    assert counted_trials(reopened) == (2, 1)
    assert retried_numbers(reopened) == {killed.number}
    assert recover_interrupted(reopened) == []


def test_a_trial_is_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    study = open_study(tmp_path, "Minimize", optuna.samplers.RandomSampler(seed=0), create=True)
    trial = study.ask(DISTRIBUTIONS)
    params = trial.params
    for _ in range(MAX_RETRIES):
        assert fail_and_requeue(study, trial.number)
        trial = study.ask(DISTRIBUTIONS)
        assert trial.params == params
    assert not fail_and_requeue(study, trial.number)  # given up: now it counts as a failure
    assert counted_trials(study) == (0, 1)


def test_direction_and_missing_study_are_checked(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="nothing to resume"):
        open_study(tmp_path, "Maximize", None, create=False)
    open_study(tmp_path, "Maximize", None, create=True)
    with pytest.raises(UserInputError, match="created to maximize, not to Minimize"):
        open_study(tmp_path, "Minimize", None, create=False)


def test_a_run_folder_is_used_by_one_process_at_a_time(tmp_path: Path) -> None:
    import os

    code = ("import sys, time; from pathlib import Path; from warmcv.tuning.study import run_lock\n"
            "with run_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)\n")
    src = str(Path(__file__).resolve().parents[2] / "container_src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)}
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserInputError, match="in use by another warmcv run"):
            with run_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path):  # the kernel released the dead holder's lock: no stale lock file to clean up
        pass
