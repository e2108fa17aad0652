"""Preparation: folds from scikit-learn's splitters, one Parquet + manifest, and clear errors for bad data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from warmcv.data.io import read_table
from warmcv.data.manifest import DATA_FILE, FOLD_COLUMN, MANIFEST_FILE, PreparedData, read_manifest
from warmcv.data.prepare import PrepareOptions, prepare
from warmcv.errors import UserInputError
from warmcv.examples import make_census_like


def test_census_preparation_fixes_schema_classes_and_stratified_folds(tmp_path, census_csv):
    manifest = prepare(census_csv, tmp_path / "p", PrepareOptions(target="income", folds=4, seed=1))
    assert manifest.task == "binary" and manifest.classes == ["<=50K", ">50K"]
    assert manifest.splitter == "stratified" and manifest.fold_kind == "kfold"
    assert sorted(manifest.schema.categorical_names) == ["education", "marital_status", "native_region",
                                                         "occupation", "sex", "workclass"]
    occupation = next(f for f in manifest.schema.features if f.name == "occupation")
    assert list(occupation.categories) == sorted(occupation.categories) and "Sales" in occupation.categories
    assert sum(manifest.rows_per_fold) == manifest.rows == 2000
    data = PreparedData.load(tmp_path / "p")
    # Stratified: each fold's positive rate is within one row of the overall rate.
    overall = data.label.mean()
    for fold in range(4):
        in_fold = data.label[data.folds == fold]
        assert abs(in_fold.mean() - overall) * len(in_fold) <= 1.0
    assert isinstance(data.features["occupation"].dtype, pd.CategoricalDtype)
    assert data.features["occupation"].isna().sum() > 0  # missing values survive as missing
    assert json.loads((tmp_path / "p" / MANIFEST_FILE).read_text())["source"]["sha256"]


def test_same_seed_same_folds_other_seed_other_folds(tmp_path, census_csv):
    folds = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        prepare(census_csv, tmp_path / name, PrepareOptions(target="income", folds=5, seed=seed))
        folds[name] = pd.read_parquet(tmp_path / name / DATA_FILE)[FOLD_COLUMN].to_numpy()
    assert (folds["a"] == folds["b"]).all()
    assert not (folds["a"] == folds["c"]).all()


def test_regression_uses_plain_kfold(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "y": rng.normal(size=300)})
    frame.to_parquet(tmp_path / "r.parquet")
    manifest = prepare(tmp_path / "r.parquet", tmp_path / "p", PrepareOptions(target="y", folds=3))
    assert manifest.task == "regression" and manifest.splitter == "kfold" and manifest.classes is None
    assert manifest.rows_per_fold == [100, 100, 100]


def test_group_column_keeps_groups_in_one_fold(tmp_path, census_csv):
    frame = pd.read_csv(census_csv)
    frame["household"] = np.arange(len(frame)) // 7
    frame.to_csv(tmp_path / "g.csv", index=False)
    manifest = prepare(tmp_path / "g.csv", tmp_path / "p",
                       PrepareOptions(target="income", folds=4, group_column="household"))
    assert manifest.splitter == "stratified_group"
    assert "household" not in manifest.schema.names
    prepared = pd.read_parquet(tmp_path / "p" / DATA_FILE)
    assert prepared.groupby("household")[FOLD_COLUMN].nunique().max() == 1


def test_time_column_gives_forward_folds(tmp_path):
    frame = pd.DataFrame({"t": np.arange(120)[::-1], "x": np.arange(120.0), "y": np.arange(120.0) % 7})
    frame.to_csv(tmp_path / "t.csv", index=False)
    manifest = prepare(tmp_path / "t.csv", tmp_path / "p", PrepareOptions(target="y", folds=3, time_column="t"))
    assert manifest.splitter == "time" and manifest.fold_kind == "forward"
    data = PreparedData.load(tmp_path / "p")
    prepared = pd.read_parquet(tmp_path / "p" / DATA_FILE)
    assert prepared["t"].is_monotonic_increasing
    for fold in range(3):
        train, valid = manifest.fold_masks(data.folds, fold)
        assert valid.sum() == 30 and prepared["t"][train].max() < prepared["t"][valid].min()


def test_folder_of_parts_is_one_data_set(tmp_path):
    frame = make_census_like(600, seed=2)
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, start in enumerate(range(0, 600, 200)):
        frame.iloc[start:start + 200].to_csv(parts / f"part-{i:05d}.csv", index=False)
    (parts / "_SUCCESS").write_text("")
    assert len(read_table(parts)) == 600
    manifest = prepare(parts, tmp_path / "p", PrepareOptions(target="income", folds=3))
    assert manifest.rows == 600 and len(manifest.source["parts"]) == 3


def test_parts_with_different_columns_are_refused(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    pd.DataFrame({"a": [1], "y": [0]}).to_csv(parts / "p1.csv", index=False)
    pd.DataFrame({"b": [1], "y": [0]}).to_csv(parts / "p2.csv", index=False)
    with pytest.raises(UserInputError, match="p2.csv has columns .* all parts of a data set need the same columns"):
        read_table(parts)


# --- bad inputs: each names the problem ------------------------------------------------------------

def _prepare_frame(tmp_path, frame, **options):
    frame.to_csv(tmp_path / "in.csv", index=False)
    return prepare(tmp_path / "in.csv", tmp_path / "out", PrepareOptions(**options))


def test_missing_target_column(tmp_path):
    with pytest.raises(UserInputError, match=r"target column 'incom' not found \(did you mean 'income'\?\)"):
        _prepare_frame(tmp_path, make_census_like(50), target="incom", folds=2)


def test_empty_data_header_only(tmp_path):
    (tmp_path / "in.csv").write_text("a,b,y\n")
    with pytest.raises(UserInputError, match="empty data: .*in.csv has a header but no rows"):
        prepare(tmp_path / "in.csv", tmp_path / "out", PrepareOptions(target="y"))


def test_empty_data_zero_bytes(tmp_path):
    (tmp_path / "in.csv").write_text("")
    with pytest.raises(UserInputError, match="empty data: .*in.csv is an empty file"):
        prepare(tmp_path / "in.csv", tmp_path / "out", PrepareOptions(target="y"))


def test_nan_in_target(tmp_path):
    frame = make_census_like(60)
    frame.loc[[4, 9], "income"] = None
    expected = r"target column 'income' has 2 missing value\(s\) \(NaN\), first at row\(s\) 4, 9"
    with pytest.raises(UserInputError, match=expected):
        _prepare_frame(tmp_path, frame, target="income", folds=3)


def test_single_class(tmp_path):
    frame = make_census_like(60)
    frame["income"] = ">50K"
    with pytest.raises(UserInputError, match=r"at least two classes, but target 'income' has only '>50K' \(60 rows\)"):
        _prepare_frame(tmp_path, frame, target="income", folds=3, task="binary")


def test_fewer_rows_than_folds(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.5]})
    with pytest.raises(UserInputError, match="5 folds need at least 5 rows, but the data has 3"):
        _prepare_frame(tmp_path, frame, target="y", folds=5)


def test_class_rarer_than_folds(tmp_path):
    frame = pd.DataFrame({"x": np.arange(40.0), "y": ["a"] * 37 + ["b"] * 3})
    with pytest.raises(UserInputError, match="class 'b' of target 'y' has 3 row\\(s\\), fewer than the 5 folds"):
        _prepare_frame(tmp_path, frame, target="y", folds=5)


def test_fewer_groups_than_folds(tmp_path):
    frame = make_census_like(100)
    frame["site"] = np.arange(100) % 3
    with pytest.raises(UserInputError, match="group column 'site' has 3 distinct group\\(s\\), fewer than the 4 folds"):
        _prepare_frame(tmp_path, frame, target="income", folds=4, group_column="site")


def test_corrupt_parquet(tmp_path):
    (tmp_path / "in.parquet").write_bytes(b"PAR1" + b"\x00garbage" * 50)
    with pytest.raises(UserInputError, match=r"cannot read .*in.parquet: "):
        prepare(tmp_path / "in.parquet", tmp_path / "out", PrepareOptions(target="y"))


def test_unreadable_file(tmp_path):
    (tmp_path / "in.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(UserInputError, match=r"cannot read .*in.csv.gz: "):
        prepare(tmp_path / "in.csv.gz", tmp_path / "out", PrepareOptions(target="y"))


def test_missing_input(tmp_path):
    with pytest.raises(UserInputError, match="input data not found"):
        prepare(tmp_path / "nope.csv", tmp_path / "out", PrepareOptions(target="y"))


def test_regression_on_strings_is_refused(tmp_path):
    with pytest.raises(UserInputError, match="task regression needs a numeric target, but 'income' holds"):
        _prepare_frame(tmp_path, make_census_like(50), target="income", folds=2, task="regression")


def test_failed_preparation_leaves_no_manifest(tmp_path, census_csv):
    prepare(census_csv, tmp_path / "out", PrepareOptions(target="income", folds=3))
    assert (tmp_path / "out" / MANIFEST_FILE).exists()
    bad = make_census_like(50)
    bad["income"] = None
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(UserInputError):
        prepare(tmp_path / "bad.csv", tmp_path / "out", PrepareOptions(target="income", folds=3))
    # Validation fails before anything is written, so the earlier complete result stays intact.
    assert read_manifest(tmp_path / "out").rows == 2000


def test_tampered_data_is_detected(tmp_path, prepared_census):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(prepared_census, copy)
    frame = pd.read_parquet(copy / DATA_FILE)
    frame.iloc[:10].to_parquet(copy / DATA_FILE)
    with pytest.raises(UserInputError, match="does not match its manifest"):
        PreparedData.load(copy)


def test_crash_while_writing_leaves_no_manifest(tmp_path, census_csv, monkeypatch):
    """The manifest is the completeness marker: a crash after the data file is written leaves none."""
    from warmcv.data import manifest as manifest_module

    prepare(census_csv, tmp_path / "out", PrepareOptions(target="income", folds=3))

    def crash(self):
        raise OSError("disk full")

    monkeypatch.setattr(manifest_module.Manifest, "to_json", crash)
    with pytest.raises(OSError, match="disk full"):
        prepare(census_csv, tmp_path / "out", PrepareOptions(target="income", folds=4))
    assert not (tmp_path / "out" / MANIFEST_FILE).exists()
    with pytest.raises(UserInputError, match="no prepared data"):
        PreparedData.load(tmp_path / "out")


def test_reserved_fold_column_name(tmp_path):
    frame = make_census_like(40).assign(__fold__=1)
    with pytest.raises(UserInputError, match="column '__fold__' is reserved for the fold assignment"):
        _prepare_frame(tmp_path, frame, target="income", folds=2)
