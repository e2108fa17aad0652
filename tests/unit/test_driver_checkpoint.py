"""The driver's study between restarts: snapshots in the checkpoint directory and in S3 (moto's S3 server)."""

from __future__ import annotations

import logging

import optuna
import pytest

from tests.fakes.s3 import MotoS3
from warmcv.aws.training_jobs import TrainingJobsApi
from warmcv.tuning.checkpoint import StudyCheckpoint, readable_study
from warmcv.tuning.study import STUDY_NAME, storage_url

BUCKET = "warmcv-checkpoints"


@pytest.fixture(scope="module")
def s3():
    server = MotoS3()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.close()


def keys(s3: MotoS3, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def add_trial(work, value: float) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage_url(work), study_name=STUDY_NAME, direction="maximize",
                                load_if_exists=True)
    trial = study.ask()
    study.tell(trial, value)


def test_every_save_is_a_new_whole_snapshot_here_and_in_s3_and_old_ones_go(s3, tmp_path):
    api = TrainingJobsApi(object(), s3=s3.client())  # type: ignore[arg-type]
    store = StudyCheckpoint(tmp_path / "work", tmp_path / "checkpoints", f"s3://{BUCKET}/run-a", api)
    assert store.restore() is False  # a new run
    for value in (0.5, 0.6, 0.7):
        add_trial(tmp_path / "work", value)
        store.save()
    local = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert local == ["study-000002.db", "study-000003.db"]  # the newest two
    assert keys(s3, "run-a/") == ["run-a/study-000002.db", "run-a/study-000003.db"]
    newest = tmp_path / "checkpoints" / "study-000003.db"
    assert readable_study(newest)
    assert s3.client().get_object(Bucket=BUCKET, Key="run-a/study-000003.db")["Body"].read() == newest.read_bytes()
    store.write_record({"run_name": "run-a"})
    assert store.read_record() == {"run_name": "run-a"} and "run-a/run.json" in keys(s3, "run-a/")


def test_a_restart_resumes_from_the_newest_readable_snapshot(tmp_path, caplog):
    first = StudyCheckpoint(tmp_path / "work1", tmp_path / "checkpoints")
    first.restore()
    for value in (0.5, 0.6):
        add_trial(tmp_path / "work1", value)
        first.save()
    (tmp_path / "checkpoints" / "study-000003.db").write_bytes(b"half a file")  # as a torn upload would leave it
    second = StudyCheckpoint(tmp_path / "work2", tmp_path / "checkpoints")
    with caplog.at_level(logging.WARNING):
        assert second.restore() is True
    assert "checkpoint study-000003.db is not a readable study" in caplog.text
    study = optuna.load_study(storage=storage_url(tmp_path / "work2"), study_name=STUDY_NAME)
    assert [t.value for t in study.trials] == [0.5, 0.6]
    add_trial(tmp_path / "work2", 0.7)
    second.save()  # numbered past everything in the directory, the unreadable file included
    assert (tmp_path / "checkpoints" / "study-000004.db").is_file()


def test_without_a_checkpoint_location_nothing_is_saved(tmp_path):
    store = StudyCheckpoint(tmp_path / "work", None)
    assert store.restore() is False
    add_trial(tmp_path / "work", 0.5)
    store.save()
    assert store.saved == 0 and store.read_record() is None
