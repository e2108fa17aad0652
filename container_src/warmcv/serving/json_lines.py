"""JSON Lines request bodies: one JSON object per line keyed by feature name, or one array in training order.

Every line that holds a value is a row, so the answer has one line per input line: `{}` is a row whose
features are all missing (LightGBM's missing-value branches), and a feature left out of every line of
a request is missing in every row, exactly as when it is left out of some, whatever way batch
transform happened to cut the file. A line whose keys are all unknown is refused, as is a key one typo
away from a feature the line leaves out: read as "all missing", either would predict silently from
nothing the user sent. Lines are separated by `\\n` only (JSON Lines' rule): a JSON
string may hold U+2028 and other characters that Python's `splitlines` would cut a line at.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import pandas as pd

from warmcv.data.schema import FeatureSchema
from warmcv.errors import UserInputError
from warmcv.serving.names import describe_misspellings, meant_feature

_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
          float: "a number", type(None): "null"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _parse(line: str, number: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise UserInputError(
            f"JSON Lines: line {number} is not valid JSON: {error.msg} (column {error.colno})") from None
    except RecursionError:
        raise UserInputError(f"JSON Lines: line {number} nests too deeply to read; each line must be one JSON "
                             "object of feature values (or one array of them)") from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        reason = str(error).split(";")[0]
        raise UserInputError(f"JSON Lines: line {number} cannot be read: {reason}") from None


@lru_cache(maxsize=4096)
def _meant(key: str, features: tuple[str, ...]) -> str | None:
    return meant_feature(key, features)


def _check_keys(record: dict[str, Any], features: tuple[str, ...], known: frozenset[str], number: int) -> None:
    """Refuse a key that is not a feature but one typo or a case away from a feature the line leaves out."""
    misspelt = {}
    for key in record:
        if key in known:
            continue
        meant = _meant(key, features)
        if meant is not None and meant not in record and meant not in misspelt:
            misspelt[meant] = key
    if misspelt:
        raise UserInputError(
            f"JSON Lines: line {number}: {describe_misspellings(misspelt)}; keys must name features exactly as in "
            f"training ({', '.join(map(repr, features))}). Other keys are ignored and a feature left out is a "
            "missing value, so a misspelt key would silently predict without that feature."
        )
    if record and known.isdisjoint(record):
        keys = ", ".join(map(repr, list(record)[:5])) + (", ..." if len(record) > 5 else "")
        raise UserInputError(
            f"JSON Lines: line {number} names none of the model's features (its keys: {keys}); keys must name "
            f"features exactly as in training ({', '.join(map(repr, features))}). Send {{}} for a row whose "
            "features are all missing."
        )


def decode_json_lines(text: str, schema: FeatureSchema, id_columns: Sequence[str] = ()) -> pd.DataFrame:
    """The rows of a JSON Lines body. The model's ID columns are not features: as keys they are ignored like
    any other key that is not a feature, and an array may hold them first, before the features."""
    features = tuple(schema.names)
    known = frozenset(features)
    columns: dict[str, list[Any]] = {name: [] for name in features}
    # A byte order mark (Windows tools write one) is not part of the first line; RFC 8259 lets a reader ignore it.
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        if not line.strip():
            continue
        record = _parse(line, number)
        if isinstance(record, list):
            if id_columns and len(record) == len(id_columns) + len(features):
                record = record[len(id_columns):]
            if len(record) != len(features):
                raise UserInputError(
                    f"JSON Lines: line {number} is an array of {len(record)} values; an array must hold exactly "
                    f"the model's {len(features)} features in training order ({', '.join(features)}), "
                    "or send an object keyed by feature name"
                )
            record = dict(zip(features, record, strict=True))
        elif isinstance(record, dict):
            _check_keys(record, features, known, number)
        else:
            raise UserInputError(f"JSON Lines: line {number} is {_kind(record)}; each line must be a JSON object "
                                 "keyed by feature name (or an array in training order)")
        for name in features:
            value = record.get(name)
            if isinstance(value, (dict, list)):
                raise UserInputError(f"JSON Lines: line {number}: feature {name!r} holds {_kind(value)}; a feature "
                                     "value must be a number, a string, true/false or null")
            columns[name].append(value)
    rows = len(columns[features[0]]) if features else 0
    # infer_objects: a column of JSON numbers becomes numeric, as it would be read from CSV.
    return pd.DataFrame(columns, index=pd.RangeIndex(rows)).infer_objects()
