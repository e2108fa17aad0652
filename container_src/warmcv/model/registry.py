"""A local model registry: SageMaker Model Registry's shape in one JSON file.

Model package groups hold numbered versions; each version records where its model.tar.gz is (and its
sha256), the cross-validated metrics, the hyperparameters, the run that produced it and an approval
status (PendingManualApproval, Approved, Rejected), with SageMaker's field names so an entry maps
one-to-one onto CreateModelPackage when the model moves to the cloud. Several runs may register at
once: every change holds a file lock and replaces the file atomically.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from warmcv.errors import UserInputError
from warmcv.files import write_text_atomic
from warmcv.settings.choices import APPROVAL_STATUSES

REGISTRY_FILE = "registry.json"
_FORMAT_VERSION = 1
# SageMaker's ModelPackageGroupName pattern.
_GROUP_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def group_name_from(*parts: str) -> str:
    """A valid group name from free text (file stem, target column): other characters become hyphens."""
    text = "-".join(re.sub(r"[^a-zA-Z0-9]+", "-", p).strip("-") for p in parts if p)
    text = re.sub(r"-+", "-", text).strip("-")[:63].strip("-")
    return text or "model"


def check_group_name(name: str) -> str:
    if not _GROUP_NAME.match(name):
        raise UserInputError(
            f"model group name {name!r} is not valid: use 1-63 letters, digits and hyphens, starting and ending "
            "with a letter or digit (SageMaker's ModelPackageGroupName rule)"
        )
    return name


def check_status(status: str) -> str:
    if status not in APPROVAL_STATUSES:
        raise UserInputError(f"approval status {status!r} is not one of {', '.join(APPROVAL_STATUSES)}")
    return status


# What a user can do about a damaged registry file: it is theirs (it may hold other runs' models), so
# warmcv never overwrites it; moved aside, a new one starts with the next registration.
_REPAIR = "repair it, or move it aside (the next registration starts a new one)"
# The fields every version has (what listing, approving and re-registering a run read).
_VERSION_FIELDS = ("ModelPackageGroupName", "ModelPackageVersion", "ModelApprovalStatus", "CreationTime",
                   "ModelDataUrl", "ModelMetrics", "Run")


def _entry_problem(group: Any) -> str | None:
    """What is wrong with one group of a registry file read from disk (edited by hand, say), or None."""
    versions = group.get("versions") if isinstance(group, dict) else None
    if not isinstance(versions, list):
        return "has no list of versions"
    for index, version in enumerate(versions):
        if not isinstance(version, dict):
            return f"has a version #{index + 1} that is not an object"
        missing = [name for name in _VERSION_FIELDS if name not in version]
        if missing:
            return f"has a version #{index + 1} without {', '.join(missing)}"
        if not isinstance(version["ModelPackageVersion"], int) or not isinstance(version["ModelMetrics"], dict):
            return f"has a version #{index + 1} whose ModelPackageVersion or ModelMetrics is malformed"
    return None


class LocalModelRegistry:
    def __init__(self, path: Path | str):
        path = Path(path)
        self.path = path / REGISTRY_FILE if path.is_dir() or not path.suffix else path

    # -- reading ------------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"format_version": _FORMAT_VERSION, "groups": {}}
        try:
            data = json.loads(self.path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserInputError(f"{self.path} is not a valid registry file: {error}; {_REPAIR}") from None
        if (not isinstance(data, dict) or data.get("format_version") != _FORMAT_VERSION
                or not isinstance(data.get("groups"), dict)):
            raise UserInputError(f"{self.path} is not a warmcv registry (format {_FORMAT_VERSION}); {_REPAIR}")
        for name, group in data["groups"].items():
            problem = _entry_problem(group)
            if problem is not None:
                raise UserInputError(f"{self.path} is not a valid registry file: model group {name!r} {problem}; "
                                     f"{_REPAIR}")
        return data

    def versions(self, group: str | None = None) -> list[dict[str, Any]]:
        """Every version (of one group, or of all), oldest first."""
        groups = self._load()["groups"]
        names = [group] if group is not None else sorted(groups)
        return [entry for name in names for entry in groups.get(name, {}).get("versions", [])]

    def latest(self, group: str, status: str | None = "Approved") -> dict[str, Any] | None:
        """The newest version of `group` (with `status`, if given): what a deployment step would pick."""
        candidates = [v for v in self.versions(group) if status is None or v["ModelApprovalStatus"] == status]
        return candidates[-1] if candidates else None

    # -- writing ------------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(f".{self.path.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._load()
            yield data
            write_text_atomic(self.path, json.dumps(data, indent=2, sort_keys=True))

    def register(self, group: str, *, model_data: Path, model_sha256: str, metrics: Mapping[str, Any],
                 hyperparameters: Mapping[str, str], run: Path, status: str = "PendingManualApproval",
                 description: str = "") -> dict[str, Any]:
        """Add a version to `group` (created if new). A run registers once: registering it again (after a
        resume) updates its version instead of adding another."""
        check_group_name(group)
        check_status(status)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        run_path = str(Path(run).resolve())
        with self._locked() as data:
            versions = data["groups"].setdefault(group, {"ModelPackageGroupName": group, "CreationTime": now,
                                                         "versions": []})["versions"]
            entry = next((v for v in versions if v["Run"] == run_path), None)
            if entry is None:
                entry = {"ModelPackageGroupName": group,
                         "ModelPackageVersion": max((v["ModelPackageVersion"] for v in versions), default=0) + 1,
                         "CreationTime": now}
                versions.append(entry)
            entry.update({
                "ModelApprovalStatus": status, "LastModifiedTime": now,
                "ModelDataUrl": Path(model_data).resolve().as_uri(), "ModelDataSha256": model_sha256,
                "ModelMetrics": dict(metrics), "Hyperparameters": dict(hyperparameters), "Run": run_path,
                "ModelPackageDescription": description,
            })
            return dict(entry)

    def set_status(self, group: str, version: int, status: str) -> dict[str, Any]:
        check_status(status)
        with self._locked() as data:
            versions = data["groups"].get(group, {}).get("versions", [])
            entry = next((v for v in versions if v["ModelPackageVersion"] == version), None)
            if entry is None:
                known = ", ".join(str(v["ModelPackageVersion"]) for v in versions) or "none"
                raise UserInputError(f"model group {group!r} has no version {version} (versions: {known})")
            entry["ModelApprovalStatus"] = status
            entry["LastModifiedTime"] = datetime.now(UTC).isoformat(timespec="seconds")
            return dict(entry)
