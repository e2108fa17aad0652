"""Data a user really brings, through the commands they run: a clear refusal or a right answer, never a traceback.

Issue 15 ("Data"). Each case failed on commit 86d1600: the feature names made every trial of
`warmcv run` fail with a LightGBMError; the refused inputs were accepted (or ended in a traceback).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import subprocess_env
from tests.serving_helpers import train_model
from warmcv.data.prepare import PrepareOptions, prepare
from warmcv.model.artifacts import TrainedModel
from warmcv.serving.app import create_app
from warmcv.serving.settings import ServeSettings

NAMES = ["price [USD]", "a b", "a_b", "{x}", 'say "hi"', "k:v", "x,y"]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warmcv", *args], env=subprocess_env(), capture_output=True,
                          text=True, timeout=timeout)


def names_frame(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.normal(size=(rows, len(NAMES))), columns=NAMES)
    frame["colour: main"] = rng.choice(["red", "blue"], rows)
    frame["y"] = np.where(frame["price [USD]"] + frame["a b"] + (frame["colour: main"] == "red") > 0.5, "yes", "no")
    return frame


def test_run_trains_and_predicts_with_names_lightgbm_refuses(tmp_path):
    """`Unnamed: 0` (a saved index), JSON's special characters, and `a b` beside `a_b`: 86d1600 failed every trial."""
    names_frame().to_csv(tmp_path / "train.csv")  # with pandas' index: the first column is 'Unnamed: 0'
    done = run_cli("run", "--data", str(tmp_path / "train.csv"), "--target", "y", "--trials", "2", "--folds", "2",
                   "--workers", "1", "--set", "num_boost_round=20", "--predict", str(tmp_path / "train.csv"),
                   "--out", str(tmp_path / "run"), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "LightGBMError" not in done.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["search"]["counts"]["complete"] == 2 and report["search"]["counts"]["failed"] == 0
    assert len(pd.read_csv(tmp_path / "run" / "predictions.csv")) == 400
    manifest = json.loads((tmp_path / "run" / "prepared" / "manifest.json").read_text())
    named = {f["name"]: f.get("lightgbm_name") for f in manifest["schema"]}
    assert named["Unnamed: 0"] == "Unnamed__0" and named["a_b"] is None and named["a b"] == "a_b_2"
    assert named["colour: main"] == "colour__main"


def test_model_knows_its_features_by_the_users_names(tmp_path):
    """The booster's names map back to the user's; predict and serve take the user's names."""
    names_frame().to_csv(tmp_path / "train.csv", index=False)
    prepare(tmp_path / "train.csv", tmp_path / "p", PrepareOptions(target="y", folds=2))
    model_dir = train_model(tmp_path / "p", tmp_path / "m")
    model = TrainedModel.load(model_dir)
    schema = model.metadata.schema
    booster_names = model.booster.feature_name()
    assert booster_names == schema.lightgbm_names and booster_names != schema.names
    assert [schema.user_name(n) for n in booster_names] == [*NAMES, "colour: main"]
    rows = names_frame(5).drop(columns="y")
    direct = model.predict(rows)
    assert direct.shape == (5, 2) and direct.notna().all().all()
    client = create_app(model, ServeSettings.from_env({}, model_dir=model_dir, cpus=1)).test_client()
    response = client.post("/invocations", data=rows.to_json(orient="records", lines=True),
                           content_type="application/jsonlines")
    assert response.status_code == 200, response.data
    served = [json.loads(line) for line in response.data.decode().splitlines()]
    assert len(served) == 5


@pytest.mark.parametrize(("name", "make", "expected"), [
    ("mixed-column", lambda f: f.assign(x=[f"word {i}" if i % 9 == 0 else v for i, v in enumerate(f.x)]),
     "column 'x' mixes numbers (266 values) and text (34 values"),
    ("date-column", lambda f: f.assign(day=pd.date_range("2020-01-01", periods=len(f)).strftime("%d/%m/%Y")),
     "column 'day' holds dates ('01/01/2020', row 0): as a category every future date would be unseen"),
    ("constant-target", lambda f: f.assign(y=3), "target column 'y' holds the same value, 3, in all 300 rows"),
])
def test_prepare_refusals_reach_the_failure_file(tmp_path, name, make, expected):
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    make(pd.DataFrame({"x": x, "y": (x > 0).astype(int)})).to_csv(tmp_path / f"{name}.csv", index=False)
    message = tmp_path / "output" / "message"
    done = run_cli("--failure-file", str(message), "prepare", "--data", str(tmp_path / f"{name}.csv"),
                   "--target", "y", "--out", str(tmp_path / "out"), "--folds", "3")
    assert done.returncode == 2
    assert expected in message.read_text() and expected in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_parquet_target_parts_that_disagree_via_cli(tmp_path):
    """86d1600: 'task multiclass, 4 classes', then pyarrow's ArrowInvalid traceback."""
    rng = np.random.default_rng(1)
    (tmp_path / "parts").mkdir()
    x = rng.normal(size=400)
    pd.DataFrame({"x": x[:200], "y": (x[:200] > 0).astype(int)}).to_parquet(tmp_path / "parts" / "a.parquet")
    pd.DataFrame({"x": x[200:], "y": (x[200:] > 0).astype(int).astype(str)}).to_parquet(tmp_path / "parts" / "b.parquet")
    done = run_cli("prepare", "--data", str(tmp_path / "parts"), "--target", "y", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "task binary" in done.stdout and "the parts disagree on its type" in done.stdout  # logs go to stdout


def test_stray_token_warning_names_column_value_and_row(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=300).astype(object)
    x[41] = "oops"
    pd.DataFrame({"x": x, "y": rng.integers(0, 2, 300)}).to_csv(tmp_path / "in.csv", index=False)
    done = run_cli("prepare", "--data", str(tmp_path / "in.csv"), "--target", "y", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "column 'x' is numeric, but 1 of its 300 values are not numbers: 'oops' (1 row: 41)" in done.stdout
    assert "(0 categorical)" in done.stdout
