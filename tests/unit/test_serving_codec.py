"""Content negotiation and body decoding, without HTTP."""

from __future__ import annotations

import pytest

from warmcv.errors import UserInputError
from warmcv.serving import codec

FEATURES = ["age", "workclass", "hours"]


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


def test_header_is_detected_by_feature_names():
    with_header = codec.decode_csv(b"hours,age,workclass,id\n40,30,Private,7\n", codec.RequestFormat(codec.CSV),
                                   FEATURES)
    assert list(with_header.columns) == ["hours", "age", "workclass", "id"] and len(with_header) == 1
    without = codec.decode_csv(b"30,Private,40\n31,,41\n", codec.RequestFormat(codec.CSV), FEATURES)
    assert list(without.columns) == FEATURES and len(without) == 2
    assert without["workclass"].isna().tolist() == [False, True]


def test_quoted_fields_keep_their_commas():
    frame = codec.decode_csv(b'30,"Self-emp, inc",40\n', codec.RequestFormat(codec.CSV), FEATURES)
    assert frame.loc[0, "workclass"] == "Self-emp, inc"


def test_json_lines_missing_keys_are_missing_values():
    frame = codec.decode_jsonlines(b'{"age": 30, "workclass": "Private", "hours": 40}\n\n{"age": 31}\n',
                                   codec.RequestFormat(codec.JSON_LINES), FEATURES)
    assert len(frame) == 2 and frame["hours"].isna().tolist() == [False, True]
    assert frame["age"].dtype.kind in "if"


def test_unknown_charset():
    with pytest.raises(UserInputError, match="charset 'klingon' is unknown"):
        codec.decode_csv(b"1,2,3\n", codec.request_format("text/csv; charset=klingon"), FEATURES)


def test_latin1_charset_is_honoured():
    frame = codec.decode_csv("30,Café,40\n".encode("latin-1"), codec.request_format("text/csv; charset=latin-1"),
                             FEATURES)
    assert frame.loc[0, "workclass"] == "Café"
