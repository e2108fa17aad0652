"""Whether the first row of a CSV body is a header, by the rule training used to read its file.

Training reads a CSV with pandas' pyarrow engine and takes the first row as the header, each cell as
written: a `", "`-separated file gives the column `' x2'`, a UTF-8 byte order mark is dropped, a
repeated name becomes `a.1`. A request's first row is read by that same reader, so a model trained
on `' x2'` finds `' x2'` and nothing is stripped or renamed on the way.

Batch transform cuts a file into requests by line, so only the first request of a file carries its
header. Unless the Content-Type says `header=present` or `header=absent`, the first row is a header
when it names every feature of the model. A first row that names some features (or names one typo
away from them) where the model cannot read it as data is refused: read as data, a mistyped header
became a predicted row on a model with only categorical features (its words are unseen categories,
i.e. missing values) and a misleading "must be numeric" error on any other.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from warmcv.data.schema import Feature, FeatureSchema
from warmcv.errors import UserInputError
from warmcv.serving.names import describe_misspellings, meant_feature, misspellings, same_name_but_spelling


@dataclass(frozen=True)
class FirstRow:
    # The cells as training's reader names columns when this row is the header.
    names: list[str]
    # The cells as that reader types values when this row is data.
    values: list[Any]


def _first_record(data: bytes) -> bytes:
    """The first non-blank record: its line, joined with the next ones while a quoted field is open."""
    lines = iter(data.splitlines(keepends=True))
    for line in lines:
        if line.strip(b"\r\n"):
            record = line
            break
    else:
        return b""
    # RFC 4180 quoting: an odd count of '"' leaves a quoted field (which may hold a newline) open.
    while record.count(b'"') % 2:
        following = next(lines, None)
        if following is None:
            break
        record += following
    return record


def read_first_row(data: bytes) -> FirstRow | None:
    """The first row as header names and as values (None if the reader cannot read it on its own)."""
    record = _first_record(data)
    if not record:
        return None
    try:
        names = [str(c) for c in pd.read_csv(io.BytesIO(record), engine="pyarrow", header=0).columns]
        values = pd.read_csv(io.BytesIO(record), engine="pyarrow", header=None).iloc[0].tolist()
    except Exception:  # noqa: BLE001 - the full read reports a malformed body with the reader's reason
        return None
    return FirstRow(names, values) if len(names) == len(values) else None


def _category_label(value: Any) -> str:
    """A value as a category label, by the schema's rule (an integral float prints without '.0')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _readable_as(value: Any, feature: Feature) -> bool:
    """Whether the model could read `value` as data for `feature` (a number, a known category, or missing)."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return True
    if feature.kind == "categorical":
        return _category_label(value) in feature.categories
    return bool(pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").notna().iloc[0])


def _expected(schema: FeatureSchema) -> str:
    return ", ".join(map(repr, schema.names))


def missing_columns(names: Sequence[str], schema: FeatureSchema) -> str | None:
    """What named columns lack (with the names that were probably meant), if they lack a feature."""
    missing = [feature for feature in schema.names if feature not in names]
    if not missing:
        return None
    found = misspellings(names, missing)
    hint = f" ({describe_misspellings(found)})" if found else ""
    return (f"missing column(s) {', '.join(map(repr, missing))} that the model was trained on{hint}; "
            f"names must be written exactly as in training: {_expected(schema)}")


def has_header(first: FirstRow | None, schema: FeatureSchema) -> bool:
    """Detect the header (see the module docstring); raises for a first row that is neither header nor data."""
    if first is None:
        return False
    aligned = len(first.names) == len(schema.features)
    if set(schema.names) <= set(first.names):
        if aligned and all(_readable_as(v, f) for v, f in zip(first.values, schema.features, strict=True)):
            # Feature names that are also values (a model trained on columns '0', '1', ...): taking this row for
            # a header would silently drop a data row, taking it for data would predict a header.
            raise UserInputError(
                "CSV: the first row names every feature of the model but is also a valid data row; say which it "
                "is: Content-Type 'text/csv; header=present' or 'text/csv; header=absent'")
        return True
    named, near, unreadable = 0, 0, 0
    for position, name in enumerate(first.names):
        if aligned and _readable_as(first.values[position], schema.features[position]):
            continue
        unreadable += 1
        if same_name_but_spelling(name, schema.names) is not None:
            named += 1
        elif meant_feature(name, schema.names) is not None:
            near += 1
    # A cell naming a feature where no data value fits, or a row of which nothing fits with a name one typo
    # away from a feature: a header that does not match, not data.
    if named or (near and unreadable == len(first.names)):
        problem = missing_columns(first.names, schema)
        raise UserInputError(f"CSV: the first row looks like a header, not data; {problem}. "
                             "If the first row is data, send Content-Type 'text/csv; header=absent'.")
    return False
