"""Content negotiation and body decoding, without HTTP."""

from __future__ import annotations

import pytest

from warmcv.data.schema import Feature, FeatureSchema
from warmcv.errors import UserInputError
from warmcv.serving import codec

FEATURES = FeatureSchema((
    Feature("age", "numeric", "int64"),
    Feature("workclass", "categorical", "object", ("Private", "Self-emp, inc", "State-gov")),
    Feature("hours", "numeric", "int64"),
))


@pytest.mark.parametrize(("content_type", "media", "header"), [
    (None, codec.CSV, None),
    ("text/csv", codec.CSV, None),
    ("text/csv; header=present", codec.CSV, "present"),
    ("TEXT/CSV;header=ABSENT", codec.CSV, "absent"),
    ("application/jsonlines", codec.JSON_LINES, None),
    ("application/x-ndjson; charset=utf-8", codec.JSON_LINES, None),
])
def test_request_formats(content_type, media, header):
    fmt = codec.request_format(content_type)
    assert (fmt.media_type, fmt.header) == (media, header)


def test_unknown_content_type():
    with pytest.raises(codec.UnsupportedMediaType, match="'application/json' is not supported"):
        codec.request_format("application/json")


@pytest.mark.parametrize(("accept", "media", "output", "header"), [
    (None, codec.CSV, "probabilities", False),
    ("*/*", codec.CSV, "probabilities", False),
    ("text/csv; output=labels", codec.CSV, "labels", False),
    ("text/csv; header=present", codec.CSV, "probabilities", True),
    ("application/jsonlines;output=probabilities", codec.JSON_LINES, "probabilities", False),
    ("text/*", codec.CSV, "probabilities", False),
])
def test_response_formats(accept, media, output, header):
    fmt = codec.response_format(accept, codec.RequestFormat(codec.CSV), "probabilities")
    assert (fmt.media_type, fmt.output, fmt.header) == (media, output, header)


def test_response_defaults_to_the_request_type():
    assert codec.response_format(None, codec.RequestFormat(codec.JSON_LINES), "labels") == \
        codec.ResponseFormat(codec.JSON_LINES, "labels")


CSV_IN = codec.RequestFormat(codec.CSV)
JSON_IN = codec.RequestFormat(codec.JSON_LINES)
COLOURS = FeatureSchema((
    Feature("colour", "categorical", "object", ("blue", "green", "red")),
    Feature("size", "categorical", "object", ("L", "M", "S")),
))


def test_header_is_detected_by_feature_names():
    with_header = codec.decode_csv(b"hours,age,workclass,id\n40,30,Private,7\n", CSV_IN, FEATURES)
    assert list(with_header.columns) == ["hours", "age", "workclass", "id"] and len(with_header) == 1
    without = codec.decode_csv(b"30,Private,40\n31,,41\n", CSV_IN, FEATURES)
    assert list(without.columns) == FEATURES.names and len(without) == 2
    assert without["workclass"].isna().tolist() == [False, True]


def test_header_cells_are_taken_as_training_reads_them():
    """Training keeps ' x2' from a ', '-separated file; serve must find ' x2' there too, not strip it."""
    spaced = FeatureSchema((Feature("x1", "numeric", "float64"), Feature(" x2", "numeric", "float64")))
    frame = codec.decode_csv(b"x1, x2\n0.5, 1.5\n2.0, 3.0\n", CSV_IN, spaced)
    assert list(frame.columns) == ["x1", " x2"] and len(frame) == 2


def test_a_byte_order_mark_is_not_part_of_the_first_name():
    frame = codec.decode_csv("\ufeffage,workclass,hours\n30,Private,40\n".encode(), CSV_IN, FEATURES)
    assert list(frame.columns) == FEATURES.names and frame["age"].tolist() == [30]


def test_a_mistyped_header_on_categorical_features_is_refused_not_predicted():
    """Read as data, 'colour,sizee' would be a row of two unseen categories: a prediction from nothing."""
    with pytest.raises(UserInputError) as error:
        codec.decode_csv(b"colour,sizee\nred,S\nblue,M\n", CSV_IN, COLOURS)
    assert str(error.value) == (
        "CSV: the first row looks like a header, not data; missing column(s) 'size' that the model was trained on "
        "('sizee' is not 'size'); names must be written exactly as in training: 'colour', 'size'. "
        "If the first row is data, send Content-Type 'text/csv; header=absent'.")


@pytest.mark.parametrize("first_row", [b"Colour,Size", b"colour, size", b"COLOUR,size"])
def test_a_header_that_differs_only_in_case_or_spaces_is_refused_with_the_names(first_row):
    with pytest.raises(UserInputError, match="the first row looks like a header"):
        codec.decode_csv(first_row + b"\nred,S\n", CSV_IN, COLOURS)


def test_a_header_that_differs_on_a_numeric_model_names_the_column():
    with pytest.raises(UserInputError, match=r"missing column\(s\) 'hours' .*\('hour' is not 'hours'\)"):
        codec.decode_csv(b"age,workclass,hour\n30,Private,40\n", CSV_IN, FEATURES)


def test_data_rows_with_unseen_categories_are_still_data():
    frame = codec.decode_csv(b"purple,XL\nred,S\n", CSV_IN, COLOURS)
    assert len(frame) == 2 and frame["colour"].tolist() == ["purple", "red"]
    # header=absent takes even a header-like first row as data
    frame = codec.decode_csv(b"colour,sizee\nred,S\n", codec.request_format("text/csv; header=absent"), COLOURS)
    assert len(frame) == 2


def test_a_declared_header_missing_a_feature_names_what_was_probably_meant():
    with pytest.raises(UserInputError, match=r"CSV header: missing column\(s\) 'age' .*\(' age' is not 'age'\)"):
        codec.decode_csv(b" age,workclass,hours\n30,Private,40\n", codec.request_format("text/csv; header=present"),
                         FEATURES)


def test_a_first_row_that_is_both_header_and_data_must_be_declared():
    """Features named '0' and '1' (a header of numbers): guessing would drop a row or predict a header."""
    numbered = FeatureSchema((Feature("0", "numeric", "int64"), Feature("1", "numeric", "int64")))
    with pytest.raises(UserInputError, match="names every feature of the model but is also a valid data row"):
        codec.decode_csv(b"0,1\n5,6\n", CSV_IN, numbered)
    assert len(codec.decode_csv(b"0,1\n5,6\n", codec.request_format("text/csv; header=absent"), numbered)) == 2
    assert len(codec.decode_csv(b"0,1\n5,6\n", codec.request_format("text/csv; header=present"), numbered)) == 1
    assert len(codec.decode_csv(b"5,6\n7,8\n", CSV_IN, numbered)) == 2  # not every name: data


def test_a_quoted_newline_in_the_header_is_one_header_cell():
    schema = FeatureSchema((Feature("a\nb", "numeric", "int64"), Feature("c", "numeric", "int64")))
    frame = codec.decode_csv(b'"a\nb",c\n1,2\n', CSV_IN, schema)
    assert list(frame.columns) == ["a\nb", "c"] and len(frame) == 1


def test_quoted_fields_keep_their_commas():
    frame = codec.decode_csv(b'30,"Self-emp, inc",40\n', CSV_IN, FEATURES)
    assert frame.loc[0, "workclass"] == "Self-emp, inc"


def test_json_lines_missing_keys_are_missing_values():
    frame = codec.decode(b'{"age": 30, "workclass": "Private", "hours": 40}\n\n{"age": 31}\n', JSON_IN, FEATURES)
    assert len(frame) == 2 and frame["hours"].isna().tolist() == [False, True]
    assert frame["age"].dtype.kind in "if"


def test_json_lines_empty_objects_are_rows_of_missing_values():
    frame = codec.decode(b"{}\n{}\n{}\n", JSON_IN, FEATURES)
    assert len(frame) == 3 and list(frame.columns) == FEATURES.names
    assert frame.isna().all().all()


def test_a_key_absent_from_every_line_is_missing_not_an_error():
    """As when it is absent from some lines: the answer must not depend on how batch transform cut the file."""
    frame = codec.decode(b'{"age": 30, "workclass": "Private"}\n{"age": 31}\n', JSON_IN, FEATURES)
    assert frame["hours"].isna().all() and len(frame) == 2


def test_json_lines_may_start_with_a_byte_order_mark():
    frame = codec.decode('\ufeff{"age": 30}\n'.encode(), JSON_IN, FEATURES)
    assert frame["age"].tolist() == [30]


def test_json_lines_split_at_newlines_only():
    """U+2028 and U+0085 are valid inside a JSON string; str.splitlines would cut the line there."""
    frame = codec.decode('{"age": 30, "workclass": "a\u2028b\u0085c"}\r\n'.encode(), JSON_IN, FEATURES)
    assert frame.loc[0, "workclass"] == "a\u2028b\u0085c"


@pytest.mark.parametrize(("body", "message"), [
    (b"[" * 100_000 + b"]" * 100_000, "line 1 nests too deeply to read"),
    (b'{"age": 3}\n{"age": ' + b"1" * 5000 + b"}", "line 2 cannot be read: Exceeds the limit (4300 digits)"),
    (b'{"age": [1, 2]}', "line 1: feature 'age' holds an array"),
    (b'{"age": 30, "workclass": {"name": "Private"}}', "line 1: feature 'workclass' holds an object"),
    (b'42\n', "line 1 is a number"),
    (b'{"age": 30}\n{"agee": 31}\n', "line 2: 'agee' is not 'age'"),
    (b'{"Hours": 40, "age": 3}', "line 1: 'Hours' is not 'hours'"),
    (b'{"id": 7, "label": 1}', "line 1 names none of the model's features (its keys: 'id', 'label')"),
])
def test_json_lines_refusals_name_the_line_and_the_problem(body, message):
    with pytest.raises(UserInputError) as error:
        codec.decode(body, JSON_IN, FEATURES)
    assert message in str(error.value)


def test_unknown_charset():
    with pytest.raises(UserInputError, match="charset 'klingon' is unknown"):
        codec.decode_csv(b"1,2,3\n", codec.request_format("text/csv; charset=klingon"), FEATURES)


def test_latin1_charset_is_honoured():
    frame = codec.decode_csv("30,Café,40\n".encode("latin-1"), codec.request_format("text/csv; charset=latin-1"),
                             FEATURES)
    assert frame.loc[0, "workclass"] == "Café"
