"""The serving app through Flask's test client: every content type, every error, against a real model."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.serving_helpers import train_model
from warmcv.model.artifacts import TrainedModel
from warmcv.serving.app import create_app
from warmcv.serving.settings import ServeSettings


@pytest.fixture(scope="module")
def model_dir(prepared_census: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model(prepared_census, tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def model(model_dir: Path) -> TrainedModel:
    return TrainedModel.load(model_dir)


@pytest.fixture(scope="module")
def rows(census_csv: Path) -> pd.DataFrame:
    """Raw rows as users send them: the target and every feature, strings and missing values included."""
    return pd.read_csv(census_csv).head(25)


def client_for(model: TrainedModel, model_dir: Path, **env: str):
    settings = ServeSettings.from_env(env, model_dir=model_dir, cpus=2)
    return create_app(model, settings).test_client()


@pytest.fixture
def client(model, model_dir):
    return client_for(model, model_dir)


def features_csv(frame: pd.DataFrame, names: list[str], header: bool) -> bytes:
    return frame[names].to_csv(index=False, header=header).encode()


def expected(model: TrainedModel, frame: pd.DataFrame, output: str = "probabilities") -> pd.DataFrame:
    return model.predict(frame, output=output)


def test_ping_is_200_with_an_empty_body(client):
    response = client.get("/ping")
    assert response.status_code == 200 and response.data == b""


def test_execution_parameters_follow_the_environment(model, model_dir):
    client = client_for(model, model_dir, SAGEMAKER_MAX_CONCURRENT_TRANSFORMS="3", SAGEMAKER_MAX_PAYLOAD_IN_MB="12")
    assert client.get("/execution-parameters").get_json() == {
        "MaxConcurrentTransforms": 3, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 12}


def test_headerless_csv_gives_probabilities_in_row_order(client, model, rows):
    names = model.metadata.schema.names
    response = client.post("/invocations", data=features_csv(rows, names, header=False),
                           content_type="text/csv")
    assert response.status_code == 200, response.text
    assert response.mimetype == "text/csv"
    got = pd.read_csv(io.BytesIO(response.data), header=None)
    want = expected(model, rows)
    assert got.shape == (len(rows), 2)
    assert got.to_numpy() == pytest.approx(want.to_numpy(), rel=1e-12)


def test_csv_with_a_header_selects_columns_by_name_and_ignores_extras(client, model, rows):
    shuffled = rows[list(reversed(rows.columns))]  # target first, features in reverse order
    response = client.post("/invocations", data=shuffled.to_csv(index=False).encode(), content_type="text/csv")
    assert response.status_code == 200, response.text
    got = pd.read_csv(io.BytesIO(response.data), header=None)
    assert got.to_numpy() == pytest.approx(expected(model, rows).to_numpy(), rel=1e-12)


def test_labels_and_a_header_on_request(client, model, rows):
    response = client.post("/invocations", data=features_csv(rows, model.metadata.schema.names, header=False),
                           content_type="text/csv", headers={"Accept": "text/csv; output=labels; header=present"})
    assert response.status_code == 200, response.text
    got = pd.read_csv(io.BytesIO(response.data))
    assert list(got.columns) == ["prediction"]
    assert got["prediction"].tolist() == expected(model, rows, "labels")["prediction"].tolist()
    assert set(got["prediction"]) <= {"<=50K", ">50K"}


def test_default_output_from_the_environment(model, model_dir, rows):
    client = client_for(model, model_dir, WARMCV_SERVE_OUTPUT="labels")
    response = client.post("/invocations", data=features_csv(rows, model.metadata.schema.names, header=False),
                           content_type="text/csv")
    assert response.data.decode().splitlines() == expected(model, rows, "labels")["prediction"].tolist()


def test_json_lines_objects_and_arrays(client, model, rows):
    names = model.metadata.schema.names
    records = json.loads(rows[names].to_json(orient="records"))
    body = "\n".join(json.dumps(r) for r in records[:10]) + "\n"
    body += json.dumps([records[10][n] for n in names]) + "\n"  # an array in training order
    response = client.post("/invocations", data=body, content_type="application/jsonlines")
    assert response.status_code == 200, response.text
    assert response.mimetype == "application/jsonlines"  # same type as the request when Accept is absent
    lines = [json.loads(line) for line in response.data.decode().splitlines()]
    want = expected(model, rows.head(11))
    assert len(lines) == 11
    assert list(lines[0]) == ["probability_<=50K", "probability_>50K"]
    got = [line[c] for line in lines for c in want.columns]
    assert got == pytest.approx(want.to_numpy().ravel().tolist(), rel=1e-12)


def test_json_lines_labels_out_for_csv_in(client, model, rows):
    response = client.post("/invocations", data=features_csv(rows, model.metadata.schema.names, header=False),
                           content_type="text/csv", headers={"Accept": "application/jsonlines;output=labels"})
    assert [json.loads(x)["prediction"] for x in response.data.decode().splitlines()] == \
        expected(model, rows, "labels")["prediction"].tolist()


def test_header_parameter_overrides_detection(client, model, rows):
    names = model.metadata.schema.names
    body = features_csv(rows.head(3), names, header=True)
    response = client.post("/invocations", data=body, content_type="text/csv; header=absent")
    # The header row is then a data row whose numeric columns hold words.
    assert response.status_code == 400
    assert "column 'age' must be numeric but holds 'age'" in response.text


def test_wrong_column_count_names_expected_and_got(client, model):
    response = client.post("/invocations", data=b"39,Private,HS-grad\n", content_type="text/csv")
    assert response.status_code == 400
    names = ", ".join(model.metadata.schema.names)
    assert f"expected 9 columns (the model's features in training order: {names}), got 3" in response.text


def test_an_extra_column_hints_at_the_target(client, rows, model):
    body = rows[model.metadata.schema.names + ["income"]].to_csv(index=False, header=False).encode()
    response = client.post("/invocations", data=body, content_type="text/csv")
    assert response.status_code == 400
    assert "got 10" in response.text and "target column 'income'" in response.text


def test_missing_named_column_is_400(client, rows, model):
    body = rows.drop(columns=["education"]).to_csv(index=False).encode()
    response = client.post("/invocations", data=body, content_type="text/csv; header=present")
    assert response.status_code == 400
    assert "missing column(s) 'education'" in response.text


def test_non_numeric_value_in_a_numeric_column_is_400(client, model, rows):
    frame = rows[model.metadata.schema.names].head(2).copy()
    frame["age"] = frame["age"].astype(object)
    frame.loc[frame.index[1], "age"] = "forty"
    response = client.post("/invocations", data=frame.to_csv(index=False).encode(), content_type="text/csv")
    assert response.status_code == 400
    assert "column 'age' must be numeric but holds 'forty'" in response.text


def test_ragged_csv_is_400(client):
    response = client.post("/invocations", data=b"1,2,3\n4,5\n", content_type="text/csv")
    assert response.status_code == 400 and "cannot read the CSV body" in response.text


def test_bad_json_line_names_the_line(client):
    response = client.post("/invocations", data=b'{"age": 3}\n{"age": \n', content_type="application/jsonlines")
    assert response.status_code == 400 and "line 2 is not valid JSON" in response.text


def test_json_scalar_line_is_400(client):
    response = client.post("/invocations", data=b"42\n", content_type="application/jsonlines")
    assert response.status_code == 400 and "line 1 is a number" in response.text


def test_short_json_array_is_400(client):
    response = client.post("/invocations", data=b"[1, 2]\n", content_type="application/jsonlines")
    assert response.status_code == 400 and "array of 2 values" in response.text


def test_empty_body_is_400(client):
    response = client.post("/invocations", data=b"\n", content_type="text/csv")
    assert response.status_code == 400 and "empty request body" in response.text


def test_header_only_csv_gives_no_rows(client, model):
    body = (",".join(model.metadata.schema.names) + "\n").encode()
    response = client.post("/invocations", data=body, content_type="text/csv")
    assert response.status_code == 200 and response.data == b""


def test_unsupported_content_type_is_415(client):
    response = client.post("/invocations", data=b"{}", content_type="application/x-protobuf")
    assert response.status_code == 415
    assert "text/csv, application/jsonlines" in response.text


def test_unacceptable_accept_is_406(client, model, rows):
    response = client.post("/invocations", data=features_csv(rows, model.metadata.schema.names, header=False),
                           content_type="text/csv", headers={"Accept": "application/x-recordio-protobuf"})
    assert response.status_code == 406


def test_bad_output_parameter_is_400(client, model, rows):
    response = client.post("/invocations", data=features_csv(rows, model.metadata.schema.names, header=False),
                           content_type="text/csv", headers={"Accept": "text/csv; output=scores"})
    assert response.status_code == 400
    assert "output='scores' is not valid (allowed: probabilities, labels)" in response.text


def test_accept_quality_order_is_respected(client, model, rows):
    response = client.post("/invocations", data=features_csv(rows, model.metadata.schema.names, header=False),
                           content_type="text/csv",
                           headers={"Accept": "application/x-unknown;q=1.0, application/jsonlines;q=0.8, text/csv;q=0.5"})
    assert response.status_code == 200 and response.mimetype == "application/jsonlines"


def test_invalid_utf8_is_400(client):
    response = client.post("/invocations", data=b"\xff\xfe,1\n", content_type="text/csv")
    assert response.status_code == 400 and "not valid utf-8 text" in response.text


def test_payload_over_the_limit_is_413_with_the_limit_named(model, model_dir):
    client = client_for(model, model_dir, SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    response = client.post("/invocations", data=b"1" * (1024 * 1024 + 1), content_type="text/csv")
    assert response.status_code == 413
    assert "1048577 bytes is over the limit of 1 MB (SAGEMAKER_MAX_PAYLOAD_IN_MB)" in response.text


def test_zero_payload_limit_means_no_limit(model, model_dir, rows):
    client = client_for(model, model_dir, SAGEMAKER_MAX_PAYLOAD_IN_MB="0")
    names = model.metadata.schema.names
    big = pd.concat([rows[names]] * 3000)  # several MB
    body = features_csv(big, names, header=False)
    assert len(body) > 6 * 1024 * 1024 / 4
    response = client.post("/invocations", data=body, content_type="text/csv")
    assert response.status_code == 200 and response.data.count(b"\n") == len(big)


def test_unknown_path_and_method(client):
    assert client.get("/nothing").status_code == 404
    assert client.get("/invocations").status_code == 405


def test_unseen_category_is_predicted_not_rejected(client, model, rows):
    frame = rows[model.metadata.schema.names].head(1).copy()
    frame["occupation"] = "Astronaut"
    response = client.post("/invocations", data=frame.to_csv(index=False).encode(), content_type="text/csv")
    assert response.status_code == 200 and len(response.data.decode().splitlines()) == 1


def test_regression_model_returns_values(tmp_path: Path, census_csv: Path):
    from warmcv.data.prepare import PrepareOptions, prepare

    prepared = tmp_path / "prepared"
    frame = pd.read_csv(census_csv).drop(columns=["income"])
    frame.to_csv(tmp_path / "raw.csv", index=False)
    prepare(tmp_path / "raw.csv", prepared, PrepareOptions(target="capital_gain", folds=3, seed=1))
    model_dir = train_model(prepared, tmp_path)
    model = TrainedModel.load(model_dir)
    client = client_for(model, model_dir)
    rows = frame.head(5)
    response = client.post("/invocations", data=rows.to_csv(index=False).encode(), content_type="text/csv",
                           headers={"Accept": "application/jsonlines; output=labels"})  # output is moot for values
    assert response.status_code == 200, response.text
    values = [json.loads(line)["prediction"] for line in response.data.decode().splitlines()]
    assert values == pytest.approx(model.predict(rows)["prediction"].tolist(), rel=1e-12)


# --- issue 15: every row answered, or a clear refusal ------------------------------------------------------

def chunked_post(client, body: bytes):
    """A chunked request as gunicorn hands it to a WSGI app: no Content-Length, wsgi.input_terminated set."""
    return client.post("/invocations", input_stream=io.BytesIO(body), content_type="text/csv",
                       headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})


def test_a_chunked_body_over_the_limit_is_413_not_its_first_rows(model, model_dir, rows):
    client = client_for(model, model_dir, SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    names = model.metadata.schema.names
    body = features_csv(pd.concat([rows[names]] * 3000), names, header=False)
    assert len(body) > 1024 * 1024
    response = chunked_post(client, body)
    assert response.status_code == 413, response.text[:300]
    assert "a chunked body of more than 1048576 bytes is over the limit of 1 MB" in response.text


def test_a_chunked_body_under_the_limit_gives_every_row(model, model_dir, rows):
    client = client_for(model, model_dir, SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    names = model.metadata.schema.names
    big = pd.concat([rows[names]] * 500)
    body = features_csv(big, names, header=False)
    assert 512 * 1024 < len(body) <= 1024 * 1024
    response = chunked_post(client, body)
    assert response.status_code == 200 and response.data.count(b"\n") == len(big)


def test_empty_json_objects_are_rows_not_dropped(client, model):
    response = client.post("/invocations", data=b"{}\n{}\n{}\n", content_type="application/jsonlines")
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.data.decode().splitlines()]
    all_missing = pd.DataFrame({name: [None] * 3 for name in model.metadata.schema.names})
    assert [line["probability_>50K"] for line in lines] == \
        pytest.approx(model.predict(all_missing)["probability_>50K"].tolist(), rel=1e-12)


def test_deep_json_nesting_is_400_not_500(client):
    response = client.post("/invocations", data=b"[" * 100_000 + b"]" * 100_000 + b"\n",
                           content_type="application/jsonlines")
    assert response.status_code == 400 and "line 1 nests too deeply to read" in response.text


def test_a_huge_json_integer_is_400_not_500(client):
    response = client.post("/invocations", data=b'{"age": ' + b"9" * 5000 + b"}\n", content_type="application/jsonlines")
    assert response.status_code == 400 and "line 1 cannot be read" in response.text


@pytest.fixture(scope="module")
def spaced_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainedModel, Path]:
    """A model trained on a ', '-separated CSV: its features are 'x1' and ' x2' (training keeps the space)."""
    from warmcv.data.prepare import PrepareOptions, prepare

    root = tmp_path_factory.mktemp("spaced")
    rng = np.random.default_rng(3)
    x1, x2 = rng.normal(size=300), rng.normal(size=300)
    lines = ["x1, x2, y"] + [f"{a:.4f}, {b:.4f}, {int(a + b > 0)}" for a, b in zip(x1, x2, strict=True)]
    (root / "spaced.csv").write_text("\n".join(lines) + "\n")
    prepare(root / "spaced.csv", root / "prepared", PrepareOptions(target=" y", folds=3, seed=1))
    model_dir = train_model(root / "prepared", root)
    return TrainedModel.load(model_dir), model_dir


def test_a_header_is_read_by_training_s_rule_not_stripped(spaced_model):
    model, model_dir = spaced_model
    assert model.metadata.schema.names == ["x1", " x2"]
    client = client_for(model, model_dir)
    response = client.post("/invocations", data=b"x1, x2\n0.5, 1.5\n-2.0, -1.0\n", content_type="text/csv")
    assert response.status_code == 200, response.text
    got = pd.read_csv(io.BytesIO(response.data), header=None).to_numpy()
    want = model.predict(pd.DataFrame({"x1": [0.5, -2.0], " x2": [1.5, -1.0]})).to_numpy()
    assert got == pytest.approx(want, rel=1e-12)


@pytest.fixture(scope="module")
def categorical_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainedModel, Path]:
    from warmcv.data.prepare import PrepareOptions, prepare

    root = tmp_path_factory.mktemp("categorical")
    rng = np.random.default_rng(4)
    colours, sizes = rng.choice(["red", "green", "blue"], 300), rng.choice(["S", "M", "L"], 300)
    pd.DataFrame({"colour": colours, "size": sizes, "y": (colours == "red").astype(int)}).to_csv(
        root / "cat.csv", index=False)
    prepare(root / "cat.csv", root / "prepared", PrepareOptions(target="y", folds=3, seed=1))
    model_dir = train_model(root / "prepared", root)
    return TrainedModel.load(model_dir), model_dir


def test_a_mistyped_header_is_not_predicted_as_a_row(categorical_model):
    model, model_dir = categorical_model
    assert [f.kind for f in model.metadata.schema.features] == ["categorical", "categorical"]
    client = client_for(model, model_dir)
    response = client.post("/invocations", data=b"colour,sizee\nred,S\nblue,M\n", content_type="text/csv")
    assert response.status_code == 400, response.data
    assert "the first row looks like a header, not data; missing column(s) 'size'" in response.text
    assert "('sizee' is not 'size')" in response.text
    good = client.post("/invocations", data=b"colour,size\nred,S\nblue,M\n", content_type="text/csv")
    assert good.status_code == 200 and good.data.count(b"\n") == 2
