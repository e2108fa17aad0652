"""The content types serve mode speaks: request bodies to feature tables, predictions to response bodies.

In: `text/csv` (with or without a header row) and `application/jsonlines` (one JSON object per line,
or one array in training order). Out, per the Accept header: the same two types, with an `output`
parameter choosing class probabilities or labels. docs/serving.md shows every case.

Batch transform splits a file by line (SplitType=Line) into requests of up to MaxPayloadInMB, so only
the first request of a CSV file with a header carries that header: csv_header.py detects it per request
by training's own header rule, unless the Content-Type says `header=present` or `header=absent`.
json_lines.py reads JSON Lines.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from werkzeug.http import parse_accept_header, parse_options_header

from warmcv.data.schema import FeatureSchema
from warmcv.errors import UserInputError
from warmcv.serving.csv_header import has_header, missing_columns, read_first_row
from warmcv.serving.json_lines import decode_json_lines

CSV = "text/csv"
JSON_LINES = "application/jsonlines"
JSON_LINES_ALIASES = frozenset({JSON_LINES, "application/jsonl", "application/x-jsonlines",
                                "application/x-ndjson", "application/ndjson"})
SUPPORTED = f"{CSV}, {JSON_LINES}"
OUTPUTS = ("probabilities", "labels")
HEADER_VALUES = ("present", "absent")


class UnsupportedMediaType(UserInputError):
    """The request's Content-Type is not one we read (HTTP 415)."""


class NotAcceptable(UserInputError):
    """No media type in the Accept header is one we write (HTTP 406)."""


@dataclass(frozen=True)
class RequestFormat:
    media_type: str
    # "present", "absent", or None to detect it (CSV only)
    header: str | None = None
    charset: str = "utf-8"


@dataclass(frozen=True)
class ResponseFormat:
    media_type: str
    output: str
    header: bool = False


def _canonical(media_type: str) -> str | None:
    media_type = media_type.strip().lower()
    if media_type == CSV:
        return CSV
    if media_type in JSON_LINES_ALIASES:
        return JSON_LINES
    return None


def _choice(params: dict[str, str], name: str, allowed: tuple[str, ...], where: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    value = value.strip().lower()
    if value not in allowed:
        raise UserInputError(f"{where} parameter {name}={value!r} is not valid (allowed: {', '.join(allowed)})")
    return value


def request_format(content_type: str | None) -> RequestFormat:
    """How to read the body. No Content-Type at all is read as CSV, batch transform's usual input."""
    if not content_type or not content_type.strip():
        return RequestFormat(CSV)
    media_type, params = parse_options_header(content_type)
    canonical = _canonical(media_type)
    if canonical is None:
        raise UnsupportedMediaType(f"Content-Type {media_type!r} is not supported; send one of: {SUPPORTED}")
    header = _choice(params, "header", HEADER_VALUES, "Content-Type") if canonical == CSV else None
    return RequestFormat(canonical, header, params.get("charset", "utf-8"))


def response_format(accept: str | None, request: RequestFormat, default_output: str) -> ResponseFormat:
    """The response type: the first acceptable one in the Accept header (by quality), else the request's."""
    if accept and accept.strip():
        for value, _quality in parse_accept_header(accept):
            media_type, params = parse_options_header(value)
            media_type = media_type.lower()
            chosen: str | None
            if media_type in ("*/*", ""):
                chosen = request.media_type
            elif media_type == "text/*":
                chosen = CSV
            elif media_type == "application/*":
                chosen = JSON_LINES
            else:
                chosen = _canonical(media_type)
            if chosen is None:
                continue
            output = _choice(params, "output", OUTPUTS, "Accept") or default_output
            header = _choice(params, "header", HEADER_VALUES, "Accept") if chosen == CSV else None
            return ResponseFormat(chosen, output, header == "present")
        raise NotAcceptable(f"Accept {accept!r} names no type this model server writes; accept one of: {SUPPORTED}")
    return ResponseFormat(request.media_type, default_output)


def _text(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset)
    except LookupError:
        raise UserInputError(f"charset {charset!r} is unknown") from None
    except UnicodeDecodeError as error:
        raise UserInputError(f"the body is not valid {charset} text: byte {error.start} "
                             f"({body[error.start:error.start + 1]!r}) cannot be decoded") from None


def decode_csv(body: bytes, fmt: RequestFormat, schema: FeatureSchema, target: str | None = None,
               id_columns: Sequence[str] = ()) -> pd.DataFrame:
    """CSV rows as a table. Without a header the rows hold exactly the model's features in order, or the
    model's ID columns first and then the features (the batch input's layout), and the IDs are ignored."""
    data = _text(body, fmt.charset).encode("utf-8")
    if fmt.header is None:
        header = has_header(read_first_row(data), schema)
    else:
        header = fmt.header == "present"
    try:
        # The same reader as training (pyarrow engine), so values and names are read as they were at preparation.
        frame = pd.read_csv(io.BytesIO(data), engine="pyarrow", header=0 if header else None)
    except Exception as error:  # noqa: BLE001 - any parser failure is a malformed body
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserInputError(f"cannot read the CSV body: {detail}") from None
    if header:
        frame.columns = [str(c) for c in frame.columns]
        problem = missing_columns(list(frame.columns), schema)
        if problem:
            raise UserInputError(f"CSV header: {problem}")
        return frame
    features = schema.names
    if id_columns and frame.shape[1] == len(id_columns) + len(features):
        frame = frame.iloc[:, len(id_columns):]
    if frame.shape[1] != len(features):
        hint = ""
        if frame.shape[1] == len(features) + 1:
            hint = (f" If the rows include the target column {target!r} or an ID, leave it out (batch transform: "
                    "DataProcessing.InputFilter, e.g. \"$[1:]\").") if target else ""
        ids = (f", or {len(id_columns) + len(features)} with the ID column(s) {', '.join(id_columns)} first"
               if id_columns else "")
        raise UserInputError(
            f"headerless CSV: expected {len(features)} columns (the model's features in training order: "
            f"{', '.join(features)}){ids}, got {frame.shape[1]}. Send exactly these columns, or a header row "
            f"naming them (with a header, extra columns are ignored).{hint}"
        )
    frame.columns = features
    return frame


def decode(body: bytes, fmt: RequestFormat, schema: FeatureSchema, target: str | None = None,
           id_columns: Sequence[str] = ()) -> pd.DataFrame:
    """The request's rows; the model's ID columns, when sent, are not features and are ignored."""
    if fmt.media_type == CSV:
        return decode_csv(body, fmt, schema, target, id_columns)
    return decode_json_lines(_text(body, fmt.charset), schema, id_columns)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def encode(predictions: pd.DataFrame, fmt: ResponseFormat) -> bytes:
    """One output line per input row, in input order."""
    if fmt.media_type == CSV:
        if predictions.empty and not fmt.header:
            return b""
        return predictions.to_csv(index=False, header=fmt.header, lineterminator="\n").encode("utf-8")
    lines = (json.dumps(record, default=_plain) for record in predictions.to_dict(orient="records"))
    return "".join(f"{line}\n" for line in lines).encode("utf-8")
