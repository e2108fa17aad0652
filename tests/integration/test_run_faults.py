"""Faults during a run give one line that says what happened and how to go on, and lose or hide no data.

Everything here is real: a tmpfs filled to its last page for a full disk, a read-only mount, worker
processes killed with SIGKILL, SIGINT sent to a real `warmcv run`'s process group (as a terminal's
Ctrl-C is) at each moment of its start-up, and study.db files damaged on disk.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

import warmcv
from tests.conftest import subprocess_env
from tests.disks import fill, tmpfs
from warmcv.cli import main
from warmcv.errors import UserInputError
from warmcv.settings.run import RunSettings
from warmcv.tuning.pipeline import Run
from warmcv.tuning.space import describe, resolve_space

QUICK = ["--folds", "3", "--search", "learning_rate=0.2:0.3"]
# Slow enough folds that a kill lands while a fold trains.
SLOW = ["--folds", "3", "--set", "early_stopping_rounds=0", "--set", "num_boost_round=300",
        "--search", "learning_rate=0.01:0.02"]


def _settings(data: Path, **changes) -> RunSettings:
    space = resolve_space(["learning_rate=0.2:0.3"], exclude=["max_depth", "min_gain_to_split", "lambda_l1"])
    base = dict(data=str(data), target="income", prepare={"target": "income", "folds": 3, "seed": 1},
                space=describe(space), fixed={"num_boost_round": "50", "early_stopping_rounds": "10"},
                trials=2, parallel=2, workers=2, seed=3)
    return RunSettings(**{**base, **changes})


def _start(args: list[str]) -> subprocess.Popen:
    """`warmcv run` in its own process group, as a shell runs a foreground job."""
    return subprocess.Popen([sys.executable, "-m", "warmcv", "run", "--no-progress", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env(), start_new_session=True)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _session(sid: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getsid(process.pid) == sid:
                found.append(process)
        except (ProcessLookupError, PermissionError):
            continue
    return found


def _forkserver_children(pid: int) -> list[psutil.Process]:
    """The run's warm workers: the children of its multiprocessing fork server."""
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    servers = [p for p in descendants if "forkserver" in " ".join(_cmdline(p))]
    return [child for server in servers for child in _children(server)]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children()
    except psutil.Error:
        return []


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text[-3000:]


# -- most trials crashing ------------------------------------------------------------------------------


def test_a_run_where_most_trials_crash_ends_with_an_error_and_no_model(tmp_path: Path, census_csv: Path) -> None:
    """The issue's "2 completed, 4 failed" and exit 0: every worker is killed after two trials completed."""
    run_dir = tmp_path / "run"
    process = _start(["--data", str(census_csv), "--target", "income", "--trials", "6", "--parallel", "1",
                      "--out", str(run_dir), *SLOW])
    stop_killing = threading.Event()

    def kill_every_worker() -> None:
        while not stop_killing.is_set():
            for worker in _forkserver_children(process.pid):
                try:
                    worker.kill()
                except psutil.Error:
                    pass
            time.sleep(0.05)

    killer = threading.Thread(target=kill_every_worker)
    try:
        completed = 0
        while completed < 2:
            line = process.stdout.readline()
            assert line, f"run ended early: {process.stderr.read()}"
            completed += line.startswith("trial #") and "auc" in line.split(":")[1]
        killer.start()
        stdout, stderr = process.communicate(timeout=240)
    finally:
        stop_killing.set()
        if killer.is_alive():
            killer.join()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, stderr
    message = _lines(stderr)[-1]
    assert message.startswith("warmcv: error: 4 of 6 trials failed, more than completed, so no model was built")
    assert "a worker process died with exit code -9 while training fold" in message and "SIGKILL" in message
    assert f"warmcv run --resume {run_dir} --trials 10" in message
    _no_traceback(stderr)
    assert not (run_dir / "model.tar.gz").exists() and not (run_dir / "report.json").exists()
    assert not (tmp_path / "registry").exists()


# -- Ctrl-C during start-up ----------------------------------------------------------------------------


def _cpu_seconds(process: subprocess.Popen) -> float:
    try:
        times = psutil.Process(process.pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def _forkserver_importing(process: subprocess.Popen, run_dir: Path) -> bool:
    """The fork server exists and has forked no worker yet: it is importing its preload modules."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        return False
    servers = [p for p in descendants if "forkserver" in " ".join(_cmdline(p))]
    return bool(servers) and not any(_children(server) for server in servers)


def _worker_started(process: subprocess.Popen, run_dir: Path) -> bool:
    return bool(_forkserver_children(process.pid))


# Moments of start-up, in order, each recognised from outside as a user would see it happen, and
# whether the search can have begun by then (the fork server imports for seconds and starts its
# workers in parallel with the preparation, which on 2,000 rows may finish first).
STARTUP_MOMENTS: dict[str, tuple[Callable[[subprocess.Popen, Path], bool], bool]] = {
    # Past the interpreter's own start-up (which no program can guard), into warmcv's imports.
    "while importing and parsing": (lambda process, run_dir: _cpu_seconds(process) >= 0.5, False),
    "with the folder locked, before run.json": (lambda process, run_dir: (run_dir / ".lock").exists(), False),
    "with run.json written": (lambda process, run_dir: (run_dir / "run.json").exists(), False),
    "while the fork server imports LightGBM": (_forkserver_importing, True),
    "while a worker starts": (_worker_started, True),
    "while preparing the data": (lambda process, run_dir: (run_dir / "prepared").exists(), False),
    "with the data prepared": (lambda process, run_dir: (run_dir / "prepared" / "manifest.json").exists(), False),
}


# The search's first line ("searching 9 hyperparameters with TPE ..."; a fitted range's line also says
# "searching", for its new range, before the search begins).
SEARCH_STARTED = re.compile(r"^searching \d+ hyperparameters", re.MULTILINE)


@pytest.mark.parametrize("moment", list(STARTUP_MOMENTS))
def test_ctrl_c_at_any_moment_of_start_up_ends_in_one_line(tmp_path: Path, census_csv: Path, moment: str) -> None:
    run_dir = tmp_path / "run"
    process = _start(["--data", str(census_csv), "--target", "income", "--trials", "2", "--out", str(run_dir),
                      *QUICK])
    reached, search_may_have_begun = STARTUP_MOMENTS[moment]
    try:
        deadline = time.monotonic() + 120
        while not reached(process, run_dir):
            assert process.poll() is None, f"the run ended before {moment}: {process.communicate()}"
            assert time.monotonic() < deadline, f"never {moment}"
            time.sleep(0.002)
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    _no_traceback(stdout, stderr)
    assert process.returncode == 130, stderr
    assert "could not prestart" not in stdout + stderr
    lines = _lines(stderr)
    assert lines[-1].startswith("warmcv: stopped ("), stderr
    if not search_may_have_begun:
        assert not SEARCH_STARTED.search(stdout), "the Ctrl-C did not stop the start-up at once"
    if not SEARCH_STARTED.search(stdout):  # stopped during start-up: one line
        assert len(lines) == 1, stderr
    else:  # the fork server still importing while the search began: the search's notice, then the stop
        assert len(lines) == 2 and lines[0].startswith("warmcv: SIGINT received, stopping"), stderr
    deadline = time.monotonic() + 30  # nothing lingers: the fork server and the workers are gone too
    while _session(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _session(process.pid) == []
    # A folder that either resumes or is absent.
    if run_dir.exists():
        assert f"Continue with: warmcv run --resume {run_dir}" in stderr
        RunSettings.load(run_dir)  # what --resume reads first
        assert not list(run_dir.rglob("*.tmp"))
    else:
        assert "nothing was written" in stderr or "interrupted" in stderr


def test_a_run_stopped_during_start_up_resumes(tmp_path: Path, census_csv: Path) -> None:
    run_dir = tmp_path / "run"
    process = _start(["--data", str(census_csv), "--target", "income", "--trials", "2", "--out", str(run_dir),
                      *QUICK])
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "prepared").exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.002)
        os.killpg(process.pid, signal.SIGINT)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert main(["run", "--no-progress", "--resume", str(run_dir)]) == 0
    assert json.loads((run_dir / "report.json").read_text())["search"]["counts"]["complete"] == 2


# -- the run folder ------------------------------------------------------------------------------------


def _too_long(tmp_path: Path) -> Path:
    return tmp_path / ("x" * 300)


def _below_a_file(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path / "a-file" / "run"


def _a_file(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path / "a-file"


@pytest.mark.parametrize("out, reason", [
    (_below_a_file, "a part of the path is a file, not a folder"),
    (_a_file, "it exists and is not a folder"),
    (_too_long, "the name is too long"),
])
def test_an_impossible_out_is_refused_in_one_line(tmp_path: Path, census_csv: Path, capsys: pytest.CaptureFixture,
                                                 out: Callable[[Path], Path], reason: str) -> None:
    run_dir = out(tmp_path)
    assert main(["run", "--data", str(census_csv), "--target", "income", "--out", str(run_dir), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert _lines(captured.err) == [f"warmcv: error: run folder {run_dir} cannot be used: {reason}"]
    _no_traceback(captured.out, captured.err)


def test_a_read_only_out_is_refused_in_one_line(tmp_path: Path, census_csv: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    with tmpfs(tmp_path / "ro", size="1m", read_only=True) as disk:
        for argv in (["--data", str(census_csv), "--target", "income"], ["--example"]):
            assert main(["run", *argv, "--out", str(disk / "run"), "--no-progress"]) == 2
            captured = capsys.readouterr()
            assert _lines(captured.err) == [f"warmcv: error: run folder {disk / 'run'} cannot be used: the file "
                                            "system is read-only"]
            _no_traceback(captured.out, captured.err)


def test_a_new_run_that_fails_before_run_json_leaves_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`--example` writes its hold-out rows into the folder before the settings are checked."""
    run_dir = tmp_path / "run"
    assert main(["run", "--example", "--trials", "0", "--out", str(run_dir), "--no-progress"]) == 2
    assert "trials = 0: must be at least 1" in capsys.readouterr().err
    assert not run_dir.exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    assert main(["run", "--example", "--trials", "0", "--out", str(existing), "--no-progress"]) == 2
    assert existing.is_dir()  # a folder the user made is not removed


# -- a full disk ---------------------------------------------------------------------------------------


@pytest.fixture
def disk(tmp_path: Path):
    with tmpfs(tmp_path / "disk", size="8m") as mounted:
        yield mounted


def test_a_full_disk_while_preparing_is_one_line_and_leaves_no_tmp(disk: Path, census_csv: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    run_dir = disk / "run"
    filler = fill(disk, leave=3 * 4096)  # room for the lock and run.json, not for the prepared data
    code = main(["run", "--data", str(census_csv), "--target", "income", "--trials", "2", "--out", str(run_dir),
                 "--no-progress", *QUICK])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    _no_traceback(captured.out, captured.err)
    [message] = _lines(captured.err)
    assert message.startswith("warmcv: error: ") and "no space left on the device" in message
    assert f"continue with: warmcv run --resume {run_dir}" in message
    assert not list(run_dir.rglob("*.tmp")) and not (run_dir / "prepared" / "manifest.json").exists()
    filler.unlink()
    assert main(["run", "--no-progress", "--resume", str(run_dir)]) == 0
    assert json.loads((run_dir / "report.json").read_text())["search"]["counts"]["complete"] == 2


@pytest.mark.parametrize("stage, files", [
    ("searching", "study.db"),  # Optuna's commit fails: its own message blames "exceeding max length"
    ("best trial", "the final model"),
])
def test_a_full_disk_later_in_the_run_is_one_line_and_the_run_resumes(disk: Path, census_csv: Path, stage: str,
                                                                      files: str) -> None:
    run_dir = disk / "run"
    filled: list[Path] = []

    def on_stage(message: str) -> None:
        if message.startswith(stage) and not filled:
            filled.append(fill(disk))

    with pytest.raises(UserInputError) as raised:
        Run(run_dir, _settings(census_csv), resume=False, on_stage=on_stage).execute()
    message = str(raised.value)
    assert "no space left on the device" in message or "is it full?" in message, message
    assert "max length" not in message and "\n" not in message
    assert f"continue with: warmcv run --resume {run_dir}" in message
    assert not list(run_dir.rglob("*.tmp")) and not (run_dir / "model.tar.gz").exists()
    assert not (run_dir / "report.json").exists()
    filled[0].unlink()
    Run(run_dir, RunSettings.load(run_dir), resume=True).execute()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["search"]["counts"]["complete"] == 2 and (run_dir / "model.tar.gz").is_file()


# -- a damaged study.db on --resume --------------------------------------------------------------------


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory, census_csv: Path) -> Path:
    """A run folder with a study of 2 trials, as a run leaves it when stopped after its search."""
    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    Run(run_dir, _settings(census_csv), resume=False).execute()
    (run_dir / "report.json").unlink()
    return run_dir


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.write_text("this is not a database\n" * 100)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:5000])


def _damaged_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for start in range(4096, len(data), 4096):  # every page after the first: its b-tree headers
        data[start:start + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))


def _another_database(path: Path) -> None:
    import sqlite3

    path.unlink()
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")


@pytest.mark.parametrize("damage, words", [
    (_empty, "is empty"),
    (_garbage, "is not a readable SQLite database (file is not a database)"),
    (_truncated, "cannot resume"),
    (_damaged_pages, "cannot resume"),
    (_another_database, "is an SQLite database but not an Optuna study"),
])
def test_a_damaged_study_is_refused_in_one_line_and_left_as_it_was(tmp_path: Path, stopped_run: Path,
                                                                   capsys: pytest.CaptureFixture,
                                                                   damage: Callable[[Path], None], words: str) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run, run_dir)
    damage(run_dir / "study.db")
    before = (run_dir / "study.db").read_bytes()
    assert main(["run", "--no-progress", "--resume", str(run_dir)]) == 2
    captured = capsys.readouterr()
    _no_traceback(captured.out, captured.err)
    [message] = _lines(captured.err)
    assert message.startswith(f"warmcv: error: cannot resume {run_dir}") and words in message, message
    assert "restore study.db from a backup, or start the run again in another folder" in message
    assert (run_dir / "study.db").read_bytes() == before  # not "repaired" into an empty study
    assert not (run_dir / "report.json").exists()


# -- settings that must be refused on every path -------------------------------------------------------


@pytest.mark.parametrize("timeout, words", [
    (math.nan, "timeout = nan: expected a finite number"),
    (-1, "timeout = -1: must be more than 0"),
    (math.inf, "timeout = inf: expected a finite number"),
])
def test_a_bad_timeout_is_refused_by_the_api_new_and_resumed(tmp_path: Path, census_csv: Path, stopped_run: Path,
                                                             timeout: float, words: str) -> None:
    with pytest.raises(UserInputError, match=words.replace("(", r"\(")):
        warmcv.tune(census_csv, target="income", out=tmp_path / "new", timeout=timeout, progress=False)
    assert not (tmp_path / "new").exists()
    run_dir = tmp_path / "resumed"
    shutil.copytree(stopped_run, run_dir)
    with pytest.raises(UserInputError, match=words):
        warmcv.tune(out=run_dir, resume=True, timeout=timeout, progress=False)


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_a_bad_timeout_is_refused_on_resume(tmp_path: Path, stopped_run: Path, capsys: pytest.CaptureFixture,
                                            value: str) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run, run_dir)
    assert main(["run", "--no-progress", "--resume", str(run_dir), "--timeout", value]) == 2
    assert f"invalid run settings: timeout = {float(value)}" in capsys.readouterr().err
    assert not (run_dir / "report.json").exists()


@pytest.mark.parametrize("key, value, words", [
    ("timeout", math.nan, "timeout = nan: expected a finite number"),
    ("timeout", -5, "timeout = -5: must be more than 0"),
    ("timeout", "soon", "timeout = 'soon': expected a number"),
    ("trials", 0, "trials = 0: must be at least 1"),
    ("space", {"num_leaves": {"low": 8, "high": 64}}, "space.num_leaves = {'low': 8, 'high': 64}: missing 'scaling'"),
    ("space", {"num_leafs": {"low": 8, "high": 64, "scaling": "Linear"}}, "space.num_leafs"),
    ("space", {"num_leaves": {"low": 1, "high": 64, "scaling": "Linear"}}, "num_leaves='1': out of range"),
    ("fixed", {"num_leaves": "many"}, "fixed: hyperparameter num_leaves='many': is not an integer"),
])
def test_a_run_json_edited_by_hand_is_refused_naming_the_key(tmp_path: Path, stopped_run: Path,
                                                             capsys: pytest.CaptureFixture, key: str, value: object,
                                                             words: str) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run, run_dir)
    settings = json.loads((run_dir / "run.json").read_text())
    settings[key] = value
    (run_dir / "run.json").write_text(json.dumps(settings))  # NaN as JSON's NaN, as a hand edit would
    assert main(["run", "--no-progress", "--resume", str(run_dir)]) == 2
    captured = capsys.readouterr()
    _no_traceback(captured.out, captured.err)
    [message] = _lines(captured.err)
    assert f"invalid run settings in {run_dir / 'run.json'}" in message and words in message, message


# -- the steps after the search ------------------------------------------------------------------------


def test_a_damaged_registry_stops_the_run_after_the_model_and_the_resume_registers_it(
        tmp_path: Path, census_csv: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    registry = tmp_path / "registry" / "registry.json"
    registry.parent.mkdir()
    registry.write_text(json.dumps({"format_version": 1, "groups": {"census-income": {"versions": [{"v": 1}]}}}))
    code = main(["run", "--data", str(census_csv), "--target", "income", "--trials", "2", "--out", str(run_dir),
                 "--no-progress", *QUICK])
    captured = capsys.readouterr()
    assert code == 2
    _no_traceback(captured.out, captured.err)
    [message] = _lines(captured.err)
    assert f"the model is built ({run_dir / 'model.tar.gz'}) but could not be registered" in message
    assert f"{registry} is not a valid registry file: model group 'census-income' has a version #1 without" in message
    assert f"continue with: warmcv run --resume {run_dir}" in message
    assert main(["registry", "list", "--registry", str(registry.parent)]) == 2
    _no_traceback(*capsys.readouterr())
    registry.rename(registry.with_name("damaged.json"))
    assert main(["run", "--no-progress", "--resume", str(run_dir)]) == 0
    assert json.loads((run_dir / "report.json").read_text())["registry"]["version"] == 1


def test_registry_list_shows_a_version_registered_without_cv_metrics(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    version = {"ModelPackageGroupName": "g", "ModelPackageVersion": 1, "ModelApprovalStatus": "Approved",
               "CreationTime": "2026-01-01T00:00:00+00:00", "ModelDataUrl": "file:///m.tar.gz", "ModelMetrics": {},
               "Run": "/elsewhere"}
    (tmp_path / "registry.json").write_text(json.dumps({"format_version": 1, "groups": {"g": {"versions": [version]}}}))
    assert main(["registry", "list", "--registry", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    _no_traceback(captured.out, captured.err)
    assert "v1" in captured.out and "CV (not recorded)" in captured.out


def test_a_predict_source_deleted_during_the_search_is_named_and_another_can_be_given(
        tmp_path: Path, census_csv: Path) -> None:
    run_dir = tmp_path / "run"
    source = tmp_path / "to-predict.csv"
    shutil.copy(census_csv, source)

    def delete_when_searching(message: str) -> None:
        if message.startswith("searching"):
            source.unlink()

    with pytest.raises(UserInputError) as raised:
        Run(run_dir, _settings(census_csv, predict=str(source)), resume=False,
            on_stage=delete_when_searching).execute()
    message = str(raised.value)
    assert message.startswith(f"the model is built and registered ({run_dir / 'model.tar.gz'}, census-income "
                              "version 1), but predicting")
    assert f"input data not found: {source}" in message
    assert f"warmcv run --resume {run_dir} --predict FILE" in message
    assert main(["run", "--no-progress", "--resume", str(run_dir), "--predict", str(census_csv)]) == 0
    report = json.loads((run_dir / "report.json").read_text())
    assert report["predictions"]["rows"] == 2000 and report["registry"]["version"] == 1
