"""Columns a user's data really has: names LightGBM refuses, stray tokens among numbers, dates, parts that disagree.

Issue 15 ("Data"): each of these was accepted silently or ended in a traceback; each test here failed
on commit 86d1600 (the code before the fix) and names what it failed with.
"""

from __future__ import annotations

import decimal
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warmcv.data.manifest import DATA_FILE, MANIFEST_FILE, PreparedData
from warmcv.data.prepare import PrepareOptions, prepare
from warmcv.data.schema import FeatureSchema
from warmcv.declarations import parse_hyperparameters
from warmcv.errors import UserInputError
from warmcv.model.params import training_setup
from warmcv.model.training import train_fold


def signal(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, (x > 0).astype(int)


def parts(directory: Path, *frames: pd.DataFrame) -> Path:
    directory.mkdir()
    for i, frame in enumerate(frames):
        frame.to_parquet(directory / f"part-{i}.parquet")
    return directory


def validation_auc(prepared: Path) -> float:
    data = PreparedData.load(prepared)
    hps = parse_hyperparameters({"num_boost_round": "30", "learning_rate": "0.3", "min_data_in_leaf": "5"})
    return train_fold(data, training_setup(hps, data.manifest, num_threads=1), 0).validation_metrics["auc"]


# --- a stray token among numbers -----------------------------------------------------------------

def test_stray_token_keeps_a_numeric_column_numeric(tmp_path, caplog):
    """86d1600: 'x' became a categorical of 300 levels and the CV AUC fell from 1.0 to about 0.5, silently."""
    x, y = signal()
    frame = pd.DataFrame({"x": x.astype(object), "y": y})
    frame.loc[17, "x"] = "oops"
    frame.to_csv(tmp_path / "in.csv", index=False)
    with caplog.at_level(logging.WARNING):
        manifest = prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3))
    feature = manifest.schema.features[0]
    assert (feature.kind, feature.dtype) == ("numeric", "float64") and feature.missing_values == ("oops",)
    assert "column 'x' is numeric, but 1 of its 300 values are not numbers: 'oops' (1 row: 17)" in caplog.text
    values = pd.read_parquet(tmp_path / "p" / DATA_FILE)["x"]
    assert np.isnan(values[17]) and np.allclose(values.drop(17), np.delete(x, 17))
    assert validation_auc(tmp_path / "p") > 0.98
    # Prediction reads the same token the same way, and still refuses text it has never seen.
    schema = manifest.schema
    assert schema.apply(pd.DataFrame({"x": ["1.5", " oops ", None]}))["x"].isna().tolist() == [False, True, True]
    with pytest.raises(UserInputError, match="column 'x' must be numeric but holds 'nope'"):
        schema.apply(pd.DataFrame({"x": ["1.5", "nope"]}))


def test_a_missing_marker_in_many_rows_is_still_a_missing_value(tmp_path, caplog):
    """'?' for missing (UCI style) in 1 row of 7: 86d1600 made the column categorical."""
    x, y = signal()
    frame = pd.DataFrame({"x": x.astype(object), "y": y})
    frame.loc[::7, "x"] = "?"
    frame.to_csv(tmp_path / "in.csv", index=False)
    with caplog.at_level(logging.WARNING):
        manifest = prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3))
    assert manifest.schema.features[0].kind == "numeric"
    assert "'?' (43 rows: 0, 7, 14, 21, 28, ...)" in caplog.text


def test_many_distinct_words_among_numbers_are_refused(tmp_path):
    """Neither numeric nor categorical: 86d1600 made a categorical of every number and word."""
    x, y = signal()
    frame = pd.DataFrame({"x": x.astype(object), "y": y})
    frame.loc[::9, "x"] = [f"note {i}" for i in range(len(frame.loc[::9]))]
    frame.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(UserInputError, match=r"column 'x' mixes numbers \(266 values\) and text \(34 values, more "
                                             r"than 10 distinct: 'note 0' \(1 row: 0\), 'note 1' \(1 row: 9\)"):
        prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3))
    assert not (tmp_path / "p").exists()


def test_text_columns_with_a_few_numbers_stay_categorical(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"size": rng.choice(["S", "M", "L", "XL", "10", "12"], 300), "y": rng.integers(0, 2, 300)})
    frame.to_csv(tmp_path / "in.csv", index=False)
    feature = prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3)).schema.features[0]
    assert feature.kind == "categorical" and feature.categories == ("10", "12", "L", "M", "S", "XL")


def test_parquet_parts_that_disagree_on_a_column_are_read_as_numbers(tmp_path, caplog):
    """86d1600: floats in one part and numbers as text in the other made 'x' categorical (AUC 0.68 against 0.94)."""
    x, y = signal(400)
    text = x[200:].astype(str).astype(object)
    text[5] = "n/a?"
    source = parts(tmp_path / "parts", pd.DataFrame({"x": x[:200], "y": y[:200]}),
                   pd.DataFrame({"x": text, "y": y[200:]}))
    with caplog.at_level(logging.WARNING):
        manifest = prepare(source, tmp_path / "p", PrepareOptions(target="y", folds=3))
    assert manifest.schema.features[0].kind == "numeric"
    assert ("column 'x' is numeric, but 1 of its 400 values are not numbers (the parts disagree: floats in "
            "part-0.parquet; text in part-1.parquet): 'n/a?' (1 row: 205)") in caplog.text
    values = pd.read_parquet(tmp_path / "p" / DATA_FILE)["x"].to_numpy()
    assert np.isnan(values[205]) and np.allclose(np.delete(values, 205), np.delete(x, 205))
    assert validation_auc(tmp_path / "p") > 0.98


def test_parquet_parts_with_words_where_others_have_numbers_are_refused(tmp_path):
    x, y = signal(400)
    source = parts(tmp_path / "parts", pd.DataFrame({"x": x[:200], "y": y[:200]}),
                   pd.DataFrame({"x": [f"w{i}" for i in range(200)], "y": y[200:]}))
    with pytest.raises(UserInputError, match=r"column 'x': the parts disagree on its type \(floats in part-0.parquet; "
                                             r"text in part-1.parquet\) and its text is not numbers: 'w0' \(1 row: "
                                             r"200\)"):
        prepare(source, tmp_path / "p", PrepareOptions(target="y", folds=3))


# --- dates -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("written", ["%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y %H:%M", "%Y-%m-%d %H:%M:%S"])
def test_csv_date_columns_are_refused_with_what_to_do(tmp_path, written):
    """86d1600: a date column became a categorical whose every future value is unseen."""
    x, y = signal()
    dates = pd.date_range("2021-03-01", periods=300, freq="D").strftime(written)
    pd.DataFrame({"day": dates, "x": x, "y": y}).to_csv(tmp_path / "in.csv", index=False)
    expected = (rf"column 'day' holds dates \('{dates[0]}', row 0\): as a category every future date would be unseen; "
                r"convert it to numbers .*, drop it \(--drop day\), or use it to order a time-series split "
                r"\(--time-column day\)")
    with pytest.raises(UserInputError, match=expected):
        prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3))
    manifest = prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3, drop=("day",)))
    assert manifest.schema.names == ["x"]


def test_parquet_date_columns_are_refused_too(tmp_path):
    """86d1600: a Parquet date32 column became a categorical of date strings."""
    x, y = signal()
    table = pa.table({"day": pa.array(pd.date_range("2021-03-01", periods=300).date, pa.date32()), "x": x, "y": y})
    pq.write_table(table, tmp_path / "in.parquet")
    with pytest.raises(UserInputError, match="column 'day' holds dates: as a category every future date"):
        prepare(tmp_path / "in.parquet", tmp_path / "p", PrepareOptions(target="y", folds=3))


def test_time_column_of_dates_written_month_first_is_refused(tmp_path):
    """86d1600 sorted '01/02/2021' < '12/31/2020' as text: the forward folds validated on the past."""
    x, y = signal()
    dates = pd.date_range("2020-12-01", periods=300, freq="D").strftime("%m/%d/%Y")
    pd.DataFrame({"day": dates, "x": x, "y": y}).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(UserInputError, match=r"time column 'day' holds dates written day or month first "
                                             r"\('12/01/2020', row 0\), which do not sort in time order as text"):
        prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3, time_column="day"))
    iso = pd.date_range("2020-12-01", periods=300, freq="D").strftime("%Y-%m-%d")
    pd.DataFrame({"day": iso[::-1], "x": x, "y": y}).to_csv(tmp_path / "iso.csv", index=False)
    manifest = prepare(tmp_path / "iso.csv", tmp_path / "p", PrepareOptions(target="y", folds=3, time_column="day"))
    days = pd.read_parquet(tmp_path / "p" / DATA_FILE)["day"]
    assert manifest.splitter == "time" and days.is_monotonic_increasing


def test_time_of_day_categories_match_what_prediction_sends(tmp_path):
    """86d1600 stored '10:00' as the category '10:00:00', so the '10:00' of every prediction was unseen."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"slot": rng.choice(["09:30", "10:00", "17:45"], 300), "y": rng.integers(0, 2, 300)})
    frame.to_csv(tmp_path / "in.csv", index=False)
    schema = prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3)).schema
    assert schema.features[0].categories == ("09:30", "10:00", "17:45")
    assert schema.apply(pd.DataFrame({"slot": ["10:00"]}))["slot"].notna().all()


def test_float_categories_are_labelled_alike_in_training_and_prediction():
    """86d1600 labelled 5.0 '5.0' when the column also held 2.5, but '5' in a request holding only 5.0."""
    schema = FeatureSchema.infer(pd.DataFrame({"size": [5.0, 2.5, None]}), ["size"], categorical=["size"])
    assert schema.features[0].categories == ("2.5", "5")
    assert schema.apply(pd.DataFrame({"size": [5.0]}))["size"].tolist() == ["5"]


# --- targets ---------------------------------------------------------------------------------------

def test_parquet_target_int_in_one_part_and_text_in_another(tmp_path):
    """86d1600: classes [0, 1, '0', '1'], task multiclass, then an ArrowInvalid traceback writing the data."""
    x, y = signal(400)
    source = parts(tmp_path / "parts", pd.DataFrame({"x": x[:200], "y": y[:200]}),
                   pd.DataFrame({"x": x[200:], "y": y[200:].astype(str)}))
    manifest = prepare(source, tmp_path / "p", PrepareOptions(target="y", folds=3))
    assert (manifest.task, manifest.classes) == ("binary", [0, 1])
    assert (PreparedData.load(tmp_path / "p").label == y).all()


def test_parquet_target_with_words_in_one_part_is_refused(tmp_path):
    x, y = signal(400)
    source = parts(tmp_path / "parts", pd.DataFrame({"x": x[:200], "y": y[:200]}),
                   pd.DataFrame({"x": x[200:], "y": np.where(y[200:] == 1, "yes", "no")}))
    with pytest.raises(UserInputError, match=r"target column 'y' holds text among its 200 numbers \(the parts "
                                             r"disagree: integers in part-0.parquet; text in part-1.parquet\): "
                                             r"'no' \(\d+ rows: 20\d"):
        prepare(source, tmp_path / "p", PrepareOptions(target="y", folds=3))


@pytest.mark.parametrize("task", ["auto", "regression"])
def test_constant_target_is_refused(tmp_path, task):
    """86d1600 prepared a constant numeric target as a regression (with auto) and trained on it."""
    x, _ = signal()
    pd.DataFrame({"x": x, "y": 7}).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(UserInputError, match=r"target column 'y' holds the same value, 7, in all 300 rows: "
                                             r"there is nothing to predict"):
        prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3, task=task))


def test_messages_show_values_as_written(tmp_path):
    """86d1600 said "class np.int64(1) of target 'y'"."""
    pd.DataFrame({"x": np.arange(40.0), "y": [0] * 37 + [1] * 3}).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(UserInputError, match=r"^class 1 of target 'y' has 3 row\(s\), fewer than the 5 folds"):
        prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=5))


# --- more of the same kind -------------------------------------------------------------------------

def test_group_column_whose_parts_disagree_is_compared_as_text(tmp_path, caplog):
    """86d1600: ints in one part and text in the other ended in "TypeError: '<' not supported" from the splitter."""
    x, y = signal(400)
    groups = np.arange(400) % 20
    source = parts(tmp_path / "parts", pd.DataFrame({"x": x[:200], "g": groups[:200], "y": y[:200]}),
                   pd.DataFrame({"x": x[200:], "g": groups[200:].astype(str), "y": y[200:]}))
    with caplog.at_level(logging.WARNING):
        prepare(source, tmp_path / "p", PrepareOptions(target="y", folds=4, group_column="g"))
    assert "group column 'g': the parts disagree on its type" in caplog.text
    prepared = pd.read_parquet(tmp_path / "p" / DATA_FILE)
    assert prepared.groupby("g")["__fold__"].nunique().max() == 1 and prepared["g"].nunique() == 20


def test_parquet_decimals_are_numbers(tmp_path):
    """86d1600 made a decimal column categorical ('1.50', '2.25', ...)."""
    x, y = signal()
    table = pa.table({"price": pa.array([decimal.Decimal(f"{v:.2f}") for v in x], pa.decimal128(6, 2)), "y": y})
    pq.write_table(table, tmp_path / "in.parquet")
    manifest = prepare(tmp_path / "in.parquet", tmp_path / "p", PrepareOptions(target="y", folds=3))
    assert (manifest.schema.features[0].kind, manifest.schema.features[0].dtype) == ("numeric", "float64")
    assert validation_auc(tmp_path / "p") > 0.98


def test_parquet_list_columns_are_refused(tmp_path):
    """86d1600 made a categorical of each list's text ('[1 2]')."""
    x, y = signal()
    table = pa.table({"tags": pa.array([[1, 2]] * 300, pa.list_(pa.int64())), "x": x, "y": y})
    pq.write_table(table, tmp_path / "in.parquet")
    with pytest.raises(UserInputError, match=r"column 'tags' holds list<element: int64> values \(in in.parquet\), "
                                             r"which warmcv cannot read .* drop it \(--drop tags\)"):
        prepare(tmp_path / "in.parquet", tmp_path / "p", PrepareOptions(target="y", folds=3))


def test_a_failure_while_writing_leaves_nothing_behind(tmp_path, monkeypatch):
    """A full disk mid-write: no manifest, no temporary file, no spill files (the earlier data file stays, without
    the manifest that made it a result)."""
    x, y = signal(3000)
    rng = np.random.default_rng(0)
    pd.DataFrame({"t": rng.permutation(3000), "x": x, "y": y}).to_csv(tmp_path / "in.csv", index=False)
    prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3))
    calls = []

    def full_disk(self, table, row_group_size=None):
        calls.append(table.num_rows)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3, time_column="t"))
    assert calls and sorted(p.name for p in (tmp_path / "p").iterdir()) == [DATA_FILE]
    assert not (tmp_path / "p" / MANIFEST_FILE).exists()


def test_text_that_is_not_utf8_is_refused_naming_the_column(tmp_path):
    """86d1600 ended in a UnicodeDecodeError traceback."""
    rows = "".join(f"{i},{city},{i % 2}\n" for i, city in enumerate(["Köln", "Paris", "Genève"] * 100))
    (tmp_path / "in.csv").write_bytes(b"x,city,y\n" + rows.encode("latin-1"))
    with pytest.raises(UserInputError, match=r"cannot read .*in.csv: column 'city' holds text that is not UTF-8; "
                                             r"save the file as UTF-8"):
        prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3))


def test_time_column_with_text_among_its_numbers_is_refused(tmp_path):
    """86d1600 sorted the whole column as text ('10' < '9'), so the folds did not follow time."""
    x, y = signal()
    t = np.arange(300).astype(object)
    t[4] = "unknown"
    pd.DataFrame({"t": t, "x": x, "y": y}).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(UserInputError, match=r"time column 't' holds text among its numbers: 'unknown' \(1 row: 4\); "
                                             r"rows cannot be put in time order"):
        prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3, time_column="t"))


def test_silent_choices_are_said_out_loud(tmp_path, caplog):
    """Choices 86d1600 made without a word: a saved index as a feature, integer labels taken for a
    regression. And rows without a group, where it failed with scikit-learn's "Input groups contains NaN"
    traceback: they now form one group of their own."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=300)
    groups = pd.Series(np.arange(300) % 30, dtype="Int64")
    groups[::50] = pd.NA
    frame = pd.DataFrame({"x": x, "g": groups, "y": np.digitize(x, [-0.5, 0.5])})
    frame.to_csv(tmp_path / "in.csv")  # with pandas' index: 'Unnamed: 0' counts the rows
    with caplog.at_level(logging.WARNING):
        prepare(tmp_path / "in.csv", tmp_path / "p", PrepareOptions(target="y", folds=3, group_column="g"))
    assert ("column 'Unnamed: 0' counts the rows (0, ...): as a feature it teaches the model the row order; if it is "
            "an index or an id, drop it (--drop 'Unnamed: 0')") in caplog.text
    assert ("target 'y' holds 3 distinct integers (0, 1, 2): prepared as a regression; if they are classes, pass "
            "--task multiclass") in caplog.text
    assert ("group column 'g' has 6 missing value(s), first at row(s) 0, 50, 100, 150, 200; those rows are kept "
            "together as one group") in caplog.text
    assert "column 'x' counts" not in caplog.text
    prepared = pd.read_parquet(tmp_path / "p" / DATA_FILE)
    assert prepared.loc[prepared["g"].isna(), "__fold__"].nunique() == 1
    assert prepared.dropna(subset=["g"]).groupby("g")["__fold__"].nunique().max() == 1
