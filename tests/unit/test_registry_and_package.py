"""The local model registry (SageMaker Model Registry's shape) and model.tar.gz in SageMaker's layout."""

from __future__ import annotations

import multiprocessing as mp
import tarfile
from pathlib import Path

import pytest

from warmcv.errors import UserInputError
from warmcv.model.package import package_model, unpack_model
from warmcv.model.registry import LocalModelRegistry, check_group_name, group_name_from

METRICS = {"metric": "auc", "direction": "Maximize", "cv_mean": 0.81, "cv_std": 0.01, "n_folds": 5}


def _register(registry: LocalModelRegistry, run: Path, group: str = "census-income", **extra):
    archive = run / "model.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"x")
    return registry.register(group, model_data=archive, model_sha256="ab" * 32, metrics=METRICS,
                             hyperparameters={"num_leaves": "31"}, run=run, **extra)


def test_versions_count_up_per_group_and_a_resumed_run_keeps_its_version(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path / "registry")
    first = _register(registry, tmp_path / "run1")
    second = _register(registry, tmp_path / "run2")
    other = _register(registry, tmp_path / "run3", group="churn")
    again = _register(registry, tmp_path / "run1", status="Approved")
    assert (first["ModelPackageVersion"], second["ModelPackageVersion"], other["ModelPackageVersion"]) == (1, 2, 1)
    assert again["ModelPackageVersion"] == 1 and again["ModelApprovalStatus"] == "Approved"
    assert [v["ModelPackageVersion"] for v in registry.versions("census-income")] == [1, 2]
    assert first["ModelApprovalStatus"] == "PendingManualApproval"
    assert first["ModelMetrics"] == METRICS
    assert first["ModelDataUrl"] == (tmp_path / "run1" / "model.tar.gz").resolve().as_uri()
    assert registry.path == tmp_path / "registry" / "registry.json"


def test_approval_and_latest_approved(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path / "registry")
    for i in range(3):
        _register(registry, tmp_path / f"run{i}")
    assert registry.latest("census-income") is None
    registry.set_status("census-income", 2, "Approved")
    registry.set_status("census-income", 3, "Rejected")
    assert registry.latest("census-income")["ModelPackageVersion"] == 2
    assert registry.latest("census-income", status=None)["ModelPackageVersion"] == 3
    with pytest.raises(UserInputError, match="no version 9 .*versions: 1, 2, 3"):
        registry.set_status("census-income", 9, "Approved")
    with pytest.raises(UserInputError, match="approval status 'Maybe'"):
        registry.set_status("census-income", 1, "Maybe")
    assert registry.versions("census-income")[0]["ModelApprovalStatus"] == "PendingManualApproval"


def test_group_names_follow_sagemakers_rule() -> None:
    assert group_name_from("census.csv", "income") == "census-csv-income"
    assert group_name_from("my data (v2)", "y") == "my-data-v2-y"
    assert check_group_name(group_name_from("x" * 100, "y")) == "x" * 63
    for bad in ("-lead", "trail-", "under_score", "x" * 64, ""):
        with pytest.raises(UserInputError, match="not valid"):
            check_group_name(bad)


def _register_in_process(args: tuple[str, str]) -> int:
    registry_dir, run = args
    return _register(LocalModelRegistry(registry_dir), Path(run))["ModelPackageVersion"]


def test_concurrent_registrations_get_distinct_versions(tmp_path: Path) -> None:
    runs = [(str(tmp_path / "registry"), str(tmp_path / f"run{i}")) for i in range(8)]
    with mp.get_context("fork").Pool(4) as pool:  # real processes, each taking the lock
        versions = pool.map(_register_in_process, runs)
    assert sorted(versions) == list(range(1, 9))
    assert len(LocalModelRegistry(tmp_path / "registry").versions()) == 8


def test_a_broken_registry_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "registry.json").write_text("{not json")
    with pytest.raises(UserInputError, match="not a valid registry file"):
        LocalModelRegistry(tmp_path / "registry.json").versions()


def test_model_archive_has_the_files_at_its_root(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.txt").write_text("tree")
    (model / "model.json").write_text("{}")
    (model / ".model.json.tmp").write_text("leftover")
    sha = package_model(model, tmp_path / "out" / "model.tar.gz")
    with tarfile.open(tmp_path / "out" / "model.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["model.json", "model.txt"]
    assert len(sha) == 64
    unpack_model(tmp_path / "out" / "model.tar.gz", tmp_path / "opt_ml_model")
    assert (tmp_path / "opt_ml_model" / "model.txt").read_text() == "tree"
    (model / "model.json").unlink()
    with pytest.raises(UserInputError, match="model.json is missing"):
        package_model(model, tmp_path / "again.tar.gz")
    assert not (tmp_path / "again.tar.gz").exists()
