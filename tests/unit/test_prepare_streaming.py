"""The streamed preparation gives what the whole-table preparation gave: the same folds, schema, categories and values.

The oracle is tests/prepare_reference.py, the in-memory implementation as it was before streaming.
Batches, CSV blocks, row groups and the time-order spill slices are shrunk here so that a few thousand
rows cross many of each: every boundary the streaming introduced is crossed in these tests.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.prepare_reference import reference_prepare
from warmcv.data import io, writer
from warmcv.data.columns import ColumnScan, resolve
from warmcv.data.manifest import DATA_FILE, PreparedData
from warmcv.data.prepare import PrepareOptions, prepare
from warmcv.examples import make_census_like


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    monkeypatch.setattr(io, "BATCH_ROWS", 97)
    monkeypatch.setattr(io, "CSV_BLOCK_BYTES", 2048)
    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 200)
    monkeypatch.setattr(writer, "MAX_SPILL_FILES", 4)


def assert_same_preparation(tmp_path: Path, source: Path, options: PrepareOptions) -> PreparedData:
    manifest = prepare(source, tmp_path / "streamed", options)
    expected = reference_prepare(source, tmp_path / "reference", options)
    streamed = json.loads(manifest.to_json())
    for key, value in expected.items():
        assert streamed[key] == json.loads(json.dumps(value)), key
    new_file, old_file = tmp_path / "streamed" / DATA_FILE, tmp_path / "reference" / DATA_FILE
    pd.testing.assert_frame_equal(pd.read_parquet(new_file), pd.read_parquet(old_file), check_exact=True)
    assert pq.read_schema(new_file).equals(pq.read_schema(old_file), check_metadata=True)
    rows = manifest.rows
    assert pq.ParquetFile(new_file).metadata.num_row_groups == -(-rows // writer.ROW_GROUP_ROWS)
    return PreparedData.load(tmp_path / "streamed")


def census(rows: int = 3000, seed: int = 4) -> pd.DataFrame:
    return make_census_like(rows, seed=seed)


def test_stratified_census_csv_with_string_categoricals_and_missing_values(tmp_path):
    census().to_csv(tmp_path / "census.csv", index=False)
    data = assert_same_preparation(tmp_path, tmp_path / "census.csv", PrepareOptions(target="income", folds=4, seed=2))
    assert data.manifest.splitter == "stratified" and data.features["occupation"].isna().any()


def test_kfold_regression_from_one_parquet_file(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=2500), "n": rng.integers(0, 50, 2500),
                          "y": rng.normal(size=2500)})
    frame.loc[rng.random(2500) < 0.1, "x"] = None
    frame.to_parquet(tmp_path / "r.parquet")
    data = assert_same_preparation(tmp_path, tmp_path / "r.parquet", PrepareOptions(target="y", folds=3, seed=9))
    assert data.manifest.splitter == "kfold"


@pytest.mark.parametrize(("target", "splitter"), [("income", "stratified_group"), ("hours_per_week", "group")])
def test_group_folds(tmp_path, target, splitter):
    frame = census().dropna(subset=[target]).assign(household=lambda f: np.arange(len(f)) // 7)
    frame.to_csv(tmp_path / "g.csv", index=False)
    task = "regression" if target == "hours_per_week" else "auto"
    data = assert_same_preparation(tmp_path, tmp_path / "g.csv",
                                   PrepareOptions(target=target, folds=3, group_column="household", task=task))
    assert data.manifest.splitter == splitter


@pytest.mark.parametrize("ordering", ["shuffled with ties", "already sorted"])
def test_time_folds_sort_the_rows(tmp_path, ordering, monkeypatch):
    spill_slices: set[int] = set()
    original = writer.PreparedDataWriter._spill

    def spy(self, number):
        spill_slices.add(number)
        return original(self, number)

    monkeypatch.setattr(writer.PreparedDataWriter, "_spill", spy)
    rng = np.random.default_rng(3)
    frame = census(2900).assign(t=rng.integers(0, 400, 2900))
    if ordering == "already sorted":
        frame = frame.sort_values("t", kind="stable")
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = assert_same_preparation(tmp_path, tmp_path / "t.csv",
                                   PrepareOptions(target="capital_gain", folds=4, time_column="t", task="regression"))
    assert pd.read_parquet(tmp_path / "streamed" / DATA_FILE)["t"].is_monotonic_increasing
    assert data.manifest.fold_kind == "forward"
    assert not list((tmp_path / "streamed").glob(".*")), "temporary or spill files left behind"
    # Shuffled rows go through all 4 spill slices; rows already in time order are written as they come.
    assert spill_slices == ({0, 1, 2, 3} if ordering == "shuffled with ties" else set())


def test_multiclass_with_types_pandas_infers_differently_per_block(tmp_path):
    """Columns whose type a first block alone would get wrong: late floats, late values after empties,
    booleans, missing-value markers, padded and hexadecimal numbers, a duplicated header name."""
    rng = np.random.default_rng(5)
    n = 2400
    late_float = rng.integers(0, 100, n).astype(str).astype(object)
    late_float[n - 3] = "2.5"
    late_values = np.full(n, "", dtype=object)
    late_values[n - 50:] = rng.integers(0, 9, 50).astype(str)
    markers = rng.choice(["a", "b", "NA", "null", "None", "", "c"], n)
    frame = pd.DataFrame({
        "late_float": late_float, "late_values": late_values, "flag": rng.choice(["true", "false"], n),
        "flag_missing": rng.choice(["True", "False", ""], n), "markers": markers,
        "padded": [f" {v} " for v in rng.integers(0, 99, n)], "hex": rng.choice(["0x1F", "0x10", "12"], n),
        "a": rng.normal(size=n), "a_copy": rng.normal(size=n), "empty": "",
        "label": rng.integers(0, 4, n),
    })
    text = frame.to_csv(index=False).replace("a_copy", "a", 1)
    (tmp_path / "m.csv").write_text(text)
    data = assert_same_preparation(tmp_path, tmp_path / "m.csv", PrepareOptions(target="label", folds=3, task="multiclass"))
    kinds = {f.name: (f.kind, f.dtype) for f in data.manifest.schema.features}
    assert kinds["late_float"] == ("numeric", "float64") and kinds["late_values"] == ("numeric", "float64")
    assert kinds["flag"] == ("numeric", "bool") and kinds["flag_missing"][0] == "categorical"
    assert "a.1" in kinds and data.manifest.task == "multiclass" and data.manifest.classes == [0, 1, 2, 3]


def test_folder_of_csv_parts_with_listed_categoricals_and_dropped_columns(tmp_path):
    frame = census(3000, seed=8)
    frame["zip"] = np.random.default_rng(1).integers(10, 20, 3000)
    frame["id"] = np.arange(3000)
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, start in enumerate(range(0, 3000, 700)):
        frame.iloc[start:start + 700].to_csv(parts / f"part-{i:05d}.csv", index=False)
    with gzip.open(parts / "part-99999.csv.gz", "wt") as handle:
        frame.iloc[:300].to_csv(handle, index=False)
    listed = ("age", "zip", "workclass", "education", "marital_status", "occupation", "sex", "native_region")
    data = assert_same_preparation(tmp_path, parts, PrepareOptions(target="income", folds=5, categorical=listed,
                                                                   drop=("id",)))
    age = next(f for f in data.manifest.schema.features if f.name == "age")
    assert age.kind == "categorical" and "40" in age.categories


def test_folder_of_parquet_parts_with_pandas_dtypes(tmp_path):
    rng = np.random.default_rng(2)
    parts = tmp_path / "parts"
    parts.mkdir()
    colors = pd.CategoricalDtype(["blue", "green", "red"])
    for i in range(4):
        n = 600
        frame = pd.DataFrame({
            "count": rng.integers(0, 9, n),
            "sparse": rng.integers(0, 5, n).astype(float),
            "ratio": rng.normal(size=n),
            "city": rng.choice(["Lyon", "Oslo", "Rome", None], n),
            "color": pd.Categorical(rng.choice(["red", "green", "blue"], n), dtype=colors),
            "member": rng.random(n) < 0.5,
            "visits": pd.array(rng.integers(0, 20, n), dtype="Int64"),
            "grade": rng.choice(["A", "B", "C"], n),
        })
        if i == 2:  # nulls in one part only: that part reads as float64, and so does the column
            frame.loc[::7, "sparse"] = None
            frame["count"] = frame["count"].astype(float).where(frame.index % 11 != 0)
        frame.loc[::5, "visits"] = None
        frame.to_parquet(parts / f"part-{i}.parquet")
    data = assert_same_preparation(tmp_path, parts, PrepareOptions(target="grade", folds=3, seed=1))
    kinds = {f.name: (f.kind, f.dtype) for f in data.manifest.schema.features}
    assert kinds["color"] == ("categorical", "category") and kinds["visits"] == ("numeric", "Int64")
    assert kinds["count"] == ("numeric", "float64") and kinds["member"] == ("numeric", "bool")


# --- CSV typing: the streamed reader types text exactly as pandas' reader (pyarrow engine) ----------

TYPING_CASES = {
    "ints": ["1", "-2", "0012", " 7 ", "\t8", "0x1F", "9223372036854775807"],
    "ints with missing": ["1", "", "NA", "3", "None"],
    "int overflow": ["9223372036854775808", "1"],
    "floats": ["1.5", "-0.25", "1e3", "1E-3", ".5", "1.", "+3", "inf", "-inf", "Infinity", "1e500", " 2.5 "],
    "floats with markers": ["1.5", "nan", "NaN", "-nan", "", "#N/A"],
    "booleans": ["true", "false", "True", "FALSE"],
    "booleans with missing": ["true", "", "false"],
    "ones and true": ["1", "true", "0"],
    "text": ["a", "b", "", " c ", "NA", "null", "n/a"],
    "hex among floats": ["0x10", "1.5"],
    "all missing": ["", "NA"],
    "dates": ["2020-01-02", " 2021-12-31"],
    "timestamps": ["2020-01-02 10:00:00", "2020-01-02T11:30"],
    "fractional timestamps": ["2020-01-02 10:00:00.123"],
    "zoned timestamps": ["2020-01-02T10:00:00Z", "2020-01-02T10:00:00+01:00"],
    "dates among text": ["2020-01-02", "x"],
    "numbers among text": ["1", "2", "oops"],
}


@pytest.mark.parametrize("case", list(TYPING_CASES))
def test_csv_text_is_typed_as_pandas_reads_it(tmp_path, case, monkeypatch):
    monkeypatch.setattr(io, "CSV_BLOCK_BYTES", 256)
    values = TYPING_CASES[case] * 500
    path = tmp_path / "v.csv"
    path.write_text("v\n" + "\n".join(values) + "\n")
    expected = pd.read_csv(path, engine="pyarrow")["v"]
    scan = ColumnScan("v")
    batches = list(io.iter_batches([path], ["v"]))
    assert len(batches) > 1
    for batch in batches:
        scan.observe(batch.table, path, batch.offset, from_csv=True)
    column = resolve(scan, "group", from_csv=True).type  # a group column keeps every type as read
    streamed = pd.concat([column.series(b.table.column("v")) for b in batches], ignore_index=True)
    pd.testing.assert_series_equal(streamed.rename("v"), expected, check_exact=True)


def test_random_floats_read_to_the_same_bits(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "CSV_BLOCK_BYTES", 4096)
    rng = np.random.default_rng(11)
    numbers = np.concatenate([rng.normal(size=1500) * 10.0 ** rng.integers(-30, 30, 1500), rng.random(500)])
    text = [repr(float(x)) for x in numbers[:1000]] + [f"{x:.6e}" for x in numbers[1000:1500]] + \
        [f"{x:.3f}" for x in numbers[1500:]]
    path = tmp_path / "f.csv"
    path.write_text("v\n" + "\n".join(text) + "\n")
    expected = pd.read_csv(path, engine="pyarrow")["v"]
    batches = list(io.iter_batches([path], ["v"]))
    scan = ColumnScan("v")
    for batch in batches:
        scan.observe(batch.table, path, batch.offset, from_csv=True)
    column = resolve(scan, "feature", from_csv=True).type
    streamed = pd.concat([column.series(b.table.column("v")) for b in batches], ignore_index=True)
    assert (streamed.to_numpy().view(np.int64) == expected.to_numpy().view(np.int64)).all()


def test_memory_holds_one_batch_of_features_at_a_time(tmp_path, monkeypatch):
    """The write pass sees batches of BATCH_ROWS rows (never the whole table) and the scan pass too."""
    census(3000).to_csv(tmp_path / "c.csv", index=False)
    seen: list[int] = []
    original = io._part_tables

    def spy(path, columns):
        for table in original(path, columns):
            seen.append(table.num_rows)
            yield table

    monkeypatch.setattr(io, "_part_tables", spy)
    prepare(tmp_path / "c.csv", tmp_path / "out", PrepareOptions(target="income", folds=3))
    # Three passes, each in batches of about BATCH_ROWS rows (whole CSV blocks of 2 kB, ~25 rows, are joined).
    assert sum(seen) == 3 * 3000 and max(seen) < io.BATCH_ROWS + 50


def test_workers_load_only_what_lightgbm_needs(tmp_path, monkeypatch):
    """PreparedData holds the features, labels and folds; the group and time columns are not even read."""
    from warmcv.data import manifest as manifest_module

    frame = census(600).assign(household=lambda f: np.arange(len(f)) // 3, t=lambda f: np.arange(len(f)))
    frame.to_csv(tmp_path / "g.csv", index=False)
    prepare(tmp_path / "g.csv", tmp_path / "p", PrepareOptions(target="income", folds=3, group_column="household"))
    read: list[list[str]] = []
    original = manifest_module.pd.read_parquet

    def spy(path, columns=None, **kwargs):
        read.append(list(columns))
        return original(path, columns=columns, **kwargs)

    monkeypatch.setattr(manifest_module.pd, "read_parquet", spy)
    data = PreparedData.load(tmp_path / "p")
    assert read == [[*data.manifest.schema.names, "income", "__fold__"]]
    assert "household" not in data.features and len(data.label) == len(data.folds) == 600
