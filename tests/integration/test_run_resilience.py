"""A crashed worker fails its trial, not the run; SIGKILL and Ctrl-C lose no finished trial; --resume continues.

Everything here is real: worker processes are killed with SIGKILL, `warmcv run` runs as a subprocess
and is killed or interrupted mid-search, and the study in SQLite is inspected afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from warmcv.cli import main
from warmcv.data.manifest import read_manifest
from warmcv.runners.pool import WarmWorkerPool
from warmcv.tuning.search import Search
from warmcv.tuning.space import make_sampler, resolve_space
from warmcv.tuning.study import STUDY_NAME, open_study, storage_url

SRC = Path(__file__).resolve().parents[2] / "container_src"
# Slow enough folds (no early stopping, small learning rate) that a kill lands while a fold trains.
SLOW = ["--set", "early_stopping_rounds=0", "--set", "num_boost_round=300", "--search", "learning_rate=0.01:0.02"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start_run(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "warmcv", "run", "--no-progress", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True)


def _wait_for_trials(process: subprocess.Popen, count: int, timeout: float = 120) -> list[str]:
    """Read the run's output until `count` trials have completed; returns those lines."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        assert time.monotonic() < deadline, f"no {count} trials within {timeout} s: {lines}"
        line = process.stdout.readline()
        assert line, f"run ended early: {process.stderr.read()}"
        if line.startswith("trial #") and "auc" in line.split(":")[1]:
            lines.append(line)
    return lines


def _study(run_dir: Path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(storage=storage_url(run_dir), study_name=STUDY_NAME)


def _session_processes(sid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 of /proc/pid/stat: session id
            pids.append(int(stat.parent.name))
    return pids


def test_a_killed_worker_fails_only_its_trial(tmp_path: Path, prepared_census: Path) -> None:
    manifest = read_manifest(prepared_census)
    space = resolve_space(["learning_rate=0.01:0.02"], exclude=["max_depth"])
    fixed = {"num_boost_round": "300", "early_stopping_rounds": "0"}
    study = open_study(tmp_path, "Maximize", make_sampler("tpe", 0), create=True)
    reports = []
    with WarmWorkerPool(workers=2, threads=1) as pool:
        def kill_one_busy_worker() -> None:
            # Retry until a kill lands on a worker mid-fold (one that had just finished does not count).
            for _ in range(50):
                busy = pool.busy()
                if busy:
                    os.kill(busy[0][0], signal.SIGKILL)
                    deadline = time.monotonic() + 3
                    while time.monotonic() < deadline and pool.crashes == 0:
                        time.sleep(0.02)
                    if pool.crashes:
                        return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_one_busy_worker)
        killer.start()
        outcome = Search(study, space, fixed, prepared_census, manifest, pool, trials=5, parallel=2,
                         on_trial=reports.append).run()
        killer.join()
        crashes = pool.crashes
    assert crashes == 1
    assert (outcome.completed, outcome.failed) == (4, 1)
    [failed] = [t for t in study.trials if t.state == TrialState.FAIL]
    assert "died with exit code -9" in failed.user_attrs["error"]
    assert [r.state for r in reports].count("failed") == 1
    assert all(t.state == TrialState.COMPLETE for t in study.trials if t.number != failed.number)


def test_sigkill_mid_run_then_resume_loses_no_finished_trial(tmp_path: Path, census_csv: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["--data", str(census_csv), "--target", "income", "--folds", "3", "--trials", "8", "--out", str(run_dir),
            *SLOW]
    process = _start_run(args)
    try:
        _wait_for_trials(process, 2)
        deadline = time.monotonic() + 60  # kill while a trial is in flight (a new one starts within moments)
        while not any(t.state == TrialState.RUNNING for t in _study(run_dir).trials):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    # Nothing of the killed run lingers: the forkserver and its workers notice their parent is gone.
    deadline = time.monotonic() + 30
    while _session_processes(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _session_processes(process.pid) == []

    assert list((run_dir / ".datasets").glob("*.bin"))  # the killed run's shared Datasets, left behind
    before = {t.number: t.value for t in _study(run_dir).trials if t.state == TrialState.COMPLETE}
    running = [t.number for t in _study(run_dir).trials if t.state == TrialState.RUNNING]
    assert len(before) >= 2 and running  # killed mid-search, with trials in flight

    resumed = subprocess.run([sys.executable, "-m", "warmcv", "run", "--no-progress", "--resume", str(run_dir)],
                             capture_output=True, text=True, env=_env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    study = _study(run_dir)
    after = {t.number: t.value for t in study.trials if t.state == TrialState.COMPLETE}
    assert {n: after[n] for n in before} == before  # every finished trial kept, untouched
    assert len(after) == 8
    retried = {t.system_attrs["failed_trial"]: t for t in study.trials if "failed_trial" in t.system_attrs}
    assert set(retried) == set(running)
    for number, retry in retried.items():  # the interrupted trials ran again with the same parameters
        # A kill between two suggestions leaves only the first ones recorded; the retry keeps those.
        assert retry.params.items() >= study.trials[number].params.items() and retry.state == TrialState.COMPLETE
    report = json.loads((run_dir / "report.json").read_text())
    assert report["search"]["counts"] == {"complete": 8, "pruned": 0, "failed": 0, "interrupted": len(running)}
    assert (run_dir / "model.tar.gz").is_file()
    assert not (run_dir / ".datasets").exists()  # reused by the resume, then removed


def test_ctrl_c_stops_cleanly_and_resume_finishes(tmp_path: Path, census_csv: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["--data", str(census_csv), "--target", "income", "--folds", "3", "--trials", "6", "--out", str(run_dir),
            *SLOW]
    process = _start_run(args)
    try:
        _wait_for_trials(process, 1)
        os.kill(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert f"warmcv run --resume {run_dir}" in stderr
    study = _study(run_dir)
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states  # the interrupted trials were closed and queued again
    assert states.count(TrialState.COMPLETE) >= 1
    assert not (run_dir / "report.json").exists()

    assert main(["run", "--no-progress", "--resume", str(run_dir), "--trials", "7"]) == 0  # and a raised budget
    assert sum(t.state == TrialState.COMPLETE for t in _study(run_dir).trials) == 7


def test_resume_refuses_new_settings_and_a_new_run_refuses_a_used_folder(
        tmp_path: Path, census_csv: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    (run_dir).mkdir()
    (run_dir / "run.json").write_text("{}")
    (run_dir / "study.db").write_text("")
    assert main(["run", "--data", str(census_csv), "--target", "income", "--out", str(run_dir)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["run", "--resume", str(run_dir), "--target", "income", "--sampler", "random"]) == 2
    assert "drop --target, --sampler" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path / "nothing")]) == 2
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["--search", "num_leaves=1:10"], "num_leaves='1': out of range"),
    (["--search", "lambda_l1=0:1:log"], "needs a low end above 0"),
    (["--set", "num_leaves=63", "--search", "num_leaves=16:64"], "both fixed"),
    (["--set", "metric=rmse"], "does not apply to a binary task"),
    (["--trials", "0"], "trials = 0: must be at least 1"),
    (["--timeout", "nan"], "timeout = nan: expected a finite number"),
    (["--timeout", "-1"], "timeout = -1.0: must be more than 0"),
    (["--parallel", "0"], "parallel = 0: must be at least 1"),
    (["--folds", "1"], "folds = 1: must be at least 2"),
    (["--seed", "-3"], "seed = -3: must be at least 0"),
    (["--predict", "/nonexistent/test.csv"], "no such file"),
])
def test_bad_search_settings_fail_before_any_trial(tmp_path: Path, census_csv: Path, capsys: pytest.CaptureFixture,
                                                   argv: list[str], words: str) -> None:
    run_dir = tmp_path / "run"
    common = ["run", "--data", str(census_csv), "--target", "income", "--out", str(run_dir), "--no-progress"]
    assert main([*common, *argv]) == 2
    assert words in capsys.readouterr().err
    assert not (run_dir / "study.db").exists()


def test_a_run_that_failed_before_searching_does_not_block_its_folder(tmp_path: Path, census_csv: Path) -> None:
    common = ["run", "--data", str(census_csv), "--target", "income", "--out", str(tmp_path / "run"), "--no-progress",
              "--folds", "3", "--trials", "1", "--search", "learning_rate=0.2:0.3"]
    assert main([*common, "--set", "metric=rmse"]) == 2  # found only after preparing (it needs the task)
    assert main(common) == 0


@pytest.mark.skipif(__import__("importlib").util.find_spec("torch") is not None, reason="PyTorch is installed")
def test_gp_sampler_fails_up_front_naming_pytorch(tmp_path: Path, census_csv: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "--data", str(census_csv), "--target", "income", "--out", str(tmp_path / "r"), "--sampler", "gp"])
    assert code == 2
    assert "needs PyTorch" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_every_trial_failing_stops_the_search(tmp_path: Path, prepared_census: Path) -> None:
    """Trial after trial crashing (here: every busy worker is killed) ends the search with a clear error."""
    from warmcv.tuning.search import SearchFailed

    manifest = read_manifest(prepared_census)
    space = resolve_space(["learning_rate=0.01:0.02"])
    fixed = {"num_boost_round": "300", "early_stopping_rounds": "0"}
    study = open_study(tmp_path, "Maximize", make_sampler("tpe", 0), create=True)
    stop_killing = threading.Event()
    with WarmWorkerPool(workers=2, threads=1) as pool:
        def kill_every_busy_worker() -> None:
            while not stop_killing.is_set():
                for pid, _, _ in pool.busy():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.02)

        killer = threading.Thread(target=kill_every_busy_worker)
        killer.start()
        try:
            with pytest.raises(SearchFailed, match="3 trials in a row failed; the last one: fold .* died"):
                Search(study, space, fixed, prepared_census, manifest, pool, trials=20, parallel=2,
                       max_consecutive_failures=3).run()
        finally:
            stop_killing.set()
            killer.join()
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states and states.count(TrialState.COMPLETE) == 0


def test_timeout_ends_the_search_and_the_run_still_finishes(tmp_path: Path, census_csv: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "--data", str(census_csv), "--target", "income", "--folds", "3", "--trials", "50",
                 "--timeout", "0.01", "--out", str(tmp_path / "run"), "--no-progress",
                 "--search", "learning_rate=0.2:0.3"])
    assert code == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["search"]["stopped_by_timeout"] is True
    assert 1 <= report["search"]["counts"]["complete"] <= report["search"]["parallel_trials"]
    assert (tmp_path / "run" / "model.tar.gz").is_file()
