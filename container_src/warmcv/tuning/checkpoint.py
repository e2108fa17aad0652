"""The driver's study across restarts: snapshots of its SQLite file in the job's checkpoint location.

What SageMaker documents about checkpoints (developer guide, "Checkpoints in Amazon SageMaker AI",
model-checkpoints): the files in the checkpoint S3 location are copied to the local path (default
/opt/ml/checkpoints) when a job starts; files the container writes there are copied to S3 during
training; a file deleted in the container is deleted in S3; files added to S3 after the start are not
copied in. WHEN a written file is uploaded is not documented, nor what an upload of a file being
rewritten holds. So:

- The live study is a SQLite file outside the checkpoint directory: SQLite writes in place, with a
  journal, and a copy taken mid-write may be torn.
- After every change that must survive a restart, a consistent copy (sqlite3's backup API) goes into
  the directory under a NEW name, `study-<n>.db`, written aside and renamed in, so every file there is
  whole and an upload still in flight of an older snapshot can never overwrite a newer one in S3.
- The same bytes are put to the checkpoint S3 location directly and synchronously: SageMaker's own copy
  comes some time later, and the driver creates a trial's fold jobs only once the study that names
  the trial is in S3 (so a restart finds those jobs, never duplicates them).
- The newest `keep` snapshots stay; older ones are deleted in the directory (SageMaker mirrors that) and
  in S3.
- On start, the newest snapshot that opens as a warmcv study is taken (an unreadable one is skipped and
  said so).

`run.json` beside the snapshots keeps what must not change when the driver restarts: the run's name
(fold jobs are named after it) and when it began (the fold listing's lower bound).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from warmcv.aws.training_jobs import ApiError, TrainingJobsApi
from warmcv.tuning.study import STUDY_FILE, STUDY_NAME

log = logging.getLogger(__name__)

SNAPSHOT = re.compile(r"study-(\d{6,})\.db")
RECORD_FILE = "run.json"


def snapshot_name(number: int) -> str:
    return f"study-{number:06d}.db"


def readable_study(path: Path) -> bool:
    """A SQLite file that passes its integrity check and holds warmcv's Optuna study."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            if connection.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                return False
            row = connection.execute("SELECT 1 FROM studies WHERE study_name = ?", (STUDY_NAME,)).fetchone()
            return row is not None
    except sqlite3.Error:
        return False


class StudyCheckpoint:
    """Snapshots of `work_dir/study.db` in `local_dir` (SageMaker's checkpoint directory) and at `s3_uri`."""

    def __init__(self, work_dir: Path, local_dir: Path | None, s3_uri: str | None = None,
                 api: TrainingJobsApi | None = None, keep: int = 2):
        if s3_uri and api is None:
            raise ValueError("writing the checkpoint to S3 needs the S3 API")
        self.work_dir = Path(work_dir)
        self.local_dir = Path(local_dir) if local_dir is not None else None
        self.s3_uri = s3_uri.rstrip("/") if s3_uri else None
        self.api = api
        self.keep = max(1, keep)
        self.saved = 0  # snapshots written by this process
        self._next = 1

    @property
    def study_path(self) -> Path:
        return self.work_dir / STUDY_FILE

    # -- start --------------------------------------------------------------------------------------------
    def snapshots(self) -> list[tuple[int, Path]]:
        """(number, path) of the snapshots in the checkpoint directory, newest first."""
        if self.local_dir is None or not self.local_dir.is_dir():
            return []
        found = []
        for path in self.local_dir.iterdir():
            match = SNAPSHOT.fullmatch(path.name)
            if match and path.is_file():
                found.append((int(match.group(1)), path))
        return sorted(found, reverse=True)

    def restore(self) -> bool:
        """Copy the newest readable snapshot to the live study; False when there is none (a new run)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        found = self.snapshots()
        if found:
            self._next = found[0][0] + 1
        for _, path in found:
            if readable_study(path):
                self._copy(path, self.study_path)
                log.info("resuming the study from checkpoint %s", path.name)
                return True
            log.warning("checkpoint %s is not a readable study; trying an older one", path.name)
        if found:
            log.warning("no readable study among the %d checkpoint file(s); starting a new study", len(found))
        return False

    def read_record(self) -> dict[str, Any] | None:
        if self.local_dir is None or not (self.local_dir / RECORD_FILE).is_file():
            return None
        return json.loads((self.local_dir / RECORD_FILE).read_text())

    def write_record(self, record: Mapping[str, Any]) -> None:
        data = json.dumps(dict(record), indent=2, sort_keys=True).encode()
        if self.local_dir is not None:
            self._write_whole(self.local_dir / RECORD_FILE, data)
        if self.s3_uri and self.api is not None:
            self.api.write_s3_object(f"{self.s3_uri}/{RECORD_FILE}", data, "application/json")

    # -- after every change -----------------------------------------------------------------------------
    def save(self) -> None:
        """A whole, consistent snapshot of the live study, in the directory and (synchronously) in S3."""
        if self.local_dir is None and not self.s3_uri:
            return
        name = snapshot_name(self._next)
        self._next += 1
        staging = self.work_dir / f".{name}"
        self._copy(self.study_path, staging)
        data = staging.read_bytes()
        staging.unlink()
        if self.s3_uri and self.api is not None:
            self.api.write_s3_object(f"{self.s3_uri}/{name}", data)
        if self.local_dir is not None:
            self._write_whole(self.local_dir / name, data)  # renamed within the directory: always whole there
        self.saved += 1
        self._prune()

    def _prune(self) -> None:
        for _, path in self.snapshots()[self.keep:]:
            path.unlink(missing_ok=True)
            if self.s3_uri and self.api is not None:
                try:
                    self.api.delete_s3_object(f"{self.s3_uri}/{path.name}")
                except ApiError as error:  # an old snapshot left in S3 costs a little storage, nothing more
                    log.warning("could not delete the old checkpoint %s from S3: %s", path.name, error)

    @staticmethod
    def _copy(source: Path, target: Path) -> None:
        """sqlite3's online backup: a consistent copy even while the study is open elsewhere in this process."""
        partial = target.with_name(target.name + ".partial")
        partial.unlink(missing_ok=True)
        origin, copy = sqlite3.connect(source), sqlite3.connect(partial)
        try:
            origin.backup(copy)
        finally:
            copy.close()
            origin.close()
        os.replace(partial, target)

    @staticmethod
    def _write_whole(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(data)
        os.replace(partial, path)
