"""A full disk while writing any of a run's files: one line naming the file, no temporary file left, nothing
half-written under the real name, and an older version of the file kept intact.

The disk is a real one: a tmpfs filled to its last page, so every library fails as it does in the field.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.disks import fill, tmpfs
from warmcv.errors import UserInputError


@pytest.fixture
def full_disk(tmp_path: Path):
    with tmpfs(tmp_path / "disk", size="4m") as disk:
        yield disk


def _assert_clean(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")], list(folder.rglob("*"))


def test_report_json(full_disk: Path) -> None:
    from warmcv.tuning.report import write_report

    path = full_disk / "report.json"
    write_report(path, {"version": 1})
    fill(full_disk)
    with pytest.raises(UserInputError, match=f"^{path}: no space left on the device$"):
        write_report(path, {"version": 2, "trials": ["x" * 100] * 1000})
    assert json.loads(path.read_text()) == {"version": 1}  # the previous report, whole
    _assert_clean(full_disk)


def test_model_archive(full_disk: Path, tmp_path: Path) -> None:
    from warmcv.model.package import package_model

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.txt").write_bytes(__import__("os").urandom(200_000))  # incompressible
    (model / "model.json").write_text("{}")
    fill(full_disk, leave=16 * 4096)
    with pytest.raises(UserInputError, match=f"^{full_disk / 'model.tar.gz'}: no space left on the device$"):
        package_model(model, full_disk / "model.tar.gz")
    assert not (full_disk / "model.tar.gz").exists()
    _assert_clean(full_disk)


def test_saved_model(full_disk: Path, prepared_census: Path) -> None:
    """LightGBM reports a short write as "Cannot write binary data ... wrote N of M bytes"."""
    from warmcv.cv import train_and_save
    from warmcv.data.manifest import PreparedData
    from warmcv.declarations import parse_hyperparameters

    hps = parse_hyperparameters({"mode": "worker", "fold": "all", "num_boost_round": "200", "num_leaves": "64",
                                 "num_threads": "1"})
    fill(full_disk, leave=4 * 4096)
    with pytest.raises(UserInputError, match=r"model\.txt: the device took only \d+ of \d+ bytes \(is it full\?\)"):
        train_and_save(PreparedData.load(prepared_census), hps, full_disk / "model", full_disk / "out")
    assert not (full_disk / "model" / "model.json").exists()  # no marker of a complete model
    _assert_clean(full_disk)


def test_predictions(full_disk: Path, prepared_census: Path, census_csv: Path, tmp_path: Path) -> None:
    from warmcv.cv import train_and_save
    from warmcv.data.manifest import PreparedData
    from warmcv.declarations import parse_hyperparameters
    from warmcv.model.artifacts import TrainedModel
    from warmcv.model.batch import predict_file

    hps = parse_hyperparameters({"mode": "worker", "fold": "all", "num_boost_round": "5", "num_threads": "1"})
    train_and_save(PreparedData.load(prepared_census), hps, tmp_path / "model", tmp_path / "out")
    fill(full_disk, leave=4096)
    with pytest.raises(UserInputError, match=f"^{full_disk / 'predictions.csv'}: no space left on the device$"):
        predict_file(TrainedModel.load(tmp_path / "model"), census_csv, full_disk / "predictions.csv")
    assert not (full_disk / "predictions.csv").exists()
    _assert_clean(full_disk)


def test_registry_keeps_every_model_registered_before(full_disk: Path, tmp_path: Path) -> None:
    from warmcv.model.registry import LocalModelRegistry

    registry = LocalModelRegistry(full_disk / "registry")
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(b"x")

    def register(run: str, description: str = "") -> None:
        registry.register("g", model_data=archive, model_sha256="0" * 64, metrics={"cv_mean": 0.9},
                          hyperparameters={}, run=tmp_path / run, description=description)

    register("first")
    before = registry.path.read_text()
    fill(full_disk)
    with pytest.raises(UserInputError, match=f"^{registry.path}: no space left on the device$"):
        register("second", description="x" * 20_000)
    assert registry.path.read_text() == before
    _assert_clean(full_disk)


def test_run_settings(full_disk: Path, census_csv: Path) -> None:
    from warmcv.settings.run import RunSettings

    settings = RunSettings(data=str(census_csv), target="income", prepare={"target": "income"}, space={},
                           fixed={"x": "y" * 20_000})
    fill(full_disk)
    with pytest.raises(UserInputError, match=f"^{full_disk / 'run.json'}: no space left on the device$"):
        settings.save(full_disk)
    assert not (full_disk / "run.json").exists()
    _assert_clean(full_disk)


def test_only_refusals_of_the_machine_become_one_line() -> None:
    """Anything else is our bug and keeps its traceback."""
    import errno
    import sqlite3

    from warmcv.files import storage_fault

    assert storage_fault(ValueError("a bug")) is None
    assert storage_fault(OSError(errno.EBADF, "Bad file descriptor")) is None
    assert storage_fault(sqlite3.OperationalError("no such table: trials")) is None
    wrapped = RuntimeError("An exception is raised during the commit ... exceeding max length")
    wrapped.__cause__ = sqlite3.OperationalError("database or disk is full")
    assert str(storage_fault(wrapped, "runs/a/study.db")) == "runs/a/study.db: no space left on the device"
