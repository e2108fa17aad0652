"""--id-column: kept out of the features, checked unique, written first in predictions; serving ignores it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.serving_helpers import train_model
from warmcv.data.manifest import DATA_FILE, read_manifest
from warmcv.data.prepare import PrepareOptions, prepare
from warmcv.errors import UserInputError
from warmcv.model.artifacts import TrainedModel
from warmcv.model.batch import predict_file
from warmcv.serving.app import create_app
from warmcv.serving.settings import ServeSettings


def frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(size=rows), "colour": rng.choice(["red", "blue", "green"], rows),
                       "patient_id": [f"P{i:04d}" for i in range(rows)], "visit": rng.integers(1, 4, rows)})
    df["target"] = (df["x"] + (df["colour"] == "red") > 0.3).astype(int)
    return df


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ids")
    frame().to_csv(folder / "data.csv", index=False)
    prepare(folder / "data.csv", folder / "prepared", PrepareOptions(target="target", folds=3,
                                                                       id_columns=("patient_id", "visit")))
    return folder / "prepared"


def test_id_columns_are_not_features_but_stay_in_the_prepared_data(prepared: Path) -> None:
    manifest = read_manifest(prepared)
    assert manifest.id_columns == ["patient_id", "visit"]
    assert manifest.schema.names == ["x", "colour"]  # a string ID would otherwise have become a category
    table = pq.read_table(prepared / DATA_FILE)
    assert table.column("patient_id").to_pylist()[:3] == ["P0000", "P0001", "P0002"]
    assert table.column("visit").to_pylist() == frame()["visit"].tolist()


@pytest.mark.parametrize("change, message", [
    (lambda df: df.assign(patient_id=["P1"] * 2 + list(df["patient_id"][2:])),
     r"ID column 'patient_id' must identify each row, but 2 rows share their ID with another row "
     r"\(patient_id='P1' at rows 0, 1\)"),
    (lambda df: df.assign(patient_id=[None] + list(df["patient_id"][1:])),
     r"ID column 'patient_id' has 1 missing value\(s\), first at row\(s\) 0; every row needs an ID"),
])
def test_ids_must_be_present_and_unique(tmp_path: Path, change, message: str) -> None:
    change(frame()).to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(UserInputError, match=message):
        prepare(tmp_path / "data.csv", tmp_path / "out", PrepareOptions(target="target", id_columns=("patient_id",)))
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_several_id_columns_are_unique_together(tmp_path: Path) -> None:
    df = frame()
    df["patient_id"] = [f"P{i // 2}" for i in range(len(df))]
    df["visit"] = [i % 2 for i in range(len(df))]
    df.to_csv(tmp_path / "data.csv", index=False)
    prepare(tmp_path / "data.csv", tmp_path / "ok", PrepareOptions(target="target", id_columns=("patient_id", "visit")))
    with pytest.raises(UserInputError, match=r"ID column 'patient_id' must identify each row, but 200 rows share "
                                             r"their ID with another row \(patient_id='P0' at rows 0, 1\); .*"
                                             r"another --id-column"):
        prepare(tmp_path / "data.csv", tmp_path / "no", PrepareOptions(target="target", id_columns=("patient_id",)))


@pytest.mark.parametrize("options, message", [
    ({"id_columns": ("patient_ids",)}, r"ID column 'patient_ids' not found \(did you mean 'patient_id'\?\)"),
    ({"id_columns": ("target",)}, "column 'target' cannot be both an ID column and the target column"),
    ({"id_columns": ("patient_id",), "drop": ("patient_id",)}, "is both an ID column and dropped"),
    ({"id_columns": ("patient_id", "patient_id")}, "given more than once"),
    ({"id_columns": ("visit",), "group_column": "visit"}, "cannot be both an ID column and the group column"),
    ({"id_columns": ("patient_id",), "categorical": ("patient_id",)}, "categorical columns not among the features"),
])
def test_contradictory_options_are_refused(tmp_path: Path, options: dict, message: str) -> None:
    frame().to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(UserInputError, match=message):
        prepare(tmp_path / "data.csv", tmp_path / "out", PrepareOptions(target="target", **options))


@pytest.fixture(scope="module")
def model_dir(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model(prepared, tmp_path_factory.mktemp("model"))


def test_predictions_carry_the_ids_first_in_the_inputs_order(model_dir: Path, tmp_path: Path) -> None:
    new = frame(30, seed=4).drop(columns="target").sample(frac=1.0, random_state=2)
    new = new[["colour", "visit", "x", "patient_id"]]  # any column order
    new.to_csv(tmp_path / "new.csv", index=False)
    model = TrainedModel.load(model_dir)
    assert model.metadata.id_columns == ["patient_id", "visit"]
    assert predict_file(model, tmp_path / "new.csv", tmp_path / "p.csv") == 30
    written = pd.read_csv(tmp_path / "p.csv")
    assert list(written.columns) == ["patient_id", "visit", "probability_0", "probability_1"]
    assert written["patient_id"].tolist() == new["patient_id"].tolist()
    assert written["visit"].tolist() == new["visit"].tolist()
    np.testing.assert_allclose(written[["probability_0", "probability_1"]].to_numpy(),
                               model.predict(new).to_numpy(), rtol=1e-9)
    new.drop(columns="visit").to_csv(tmp_path / "no_visit.csv", index=False)
    with pytest.raises(UserInputError, match=r"missing ID column\(s\) 'visit'; the model was trained with them"):
        predict_file(model, tmp_path / "no_visit.csv", tmp_path / "q.csv")
    assert not (tmp_path / "q.csv").exists()


def test_serve_mode_ignores_the_id_columns(model_dir: Path) -> None:
    model = TrainedModel.load(model_dir)
    client = create_app(model, ServeSettings.from_env({}, model_dir=model_dir, cpus=1)).test_client()
    rows = frame(6, seed=9).drop(columns="target")
    expected = model.predict(rows).to_csv(index=False, header=False)
    # a header: the IDs are extra columns; no header: IDs first, then the features (the batch input's layout)
    for body in (rows.to_csv(index=False),
                 rows[["patient_id", "visit", "x", "colour"]].to_csv(index=False, header=False),
                 rows[["x", "colour"]].to_csv(index=False, header=False)):
        response = client.post("/invocations", data=body, content_type="text/csv")
        assert response.status_code == 200, response.data
        assert response.data.decode() == expected
    lines = "\n".join(f'["{r.patient_id}", {r.visit}, {r.x}, "{r.colour}"]' for r in rows.itertuples())
    response = client.post("/invocations", data=lines, content_type="application/jsonlines", headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response.data.decode() == expected
    response = client.post("/invocations", data=rows[["visit", "x", "colour"]].to_csv(index=False, header=False),
                           content_type="text/csv")
    assert response.status_code == 400
    assert b"or 4 with the ID column(s) patient_id, visit first, got 3" in response.data
