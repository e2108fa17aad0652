"""What each input column is: observed over every batch of every part, decided once, applied to each batch.

Preparation streams its input, so a column's type cannot come from whichever rows happen to be read
first. `ColumnScan` watches a column batch by batch and `resolve` decides its type from everything
seen, with the reason for any surprise spelled out:

- CSV text is typed as pandas' reader types a whole file (pyarrow's inference: the first of null,
  int64, bool, date32, timestamp, float64 that reads every value, else text), so clean data is
  prepared exactly as before. The one exception is a time of day ("10:00"): it stays the text it was,
  where pandas made `datetime.time` objects whose text ("10:00:00") a prediction request would not match.
- A feature whose values are numbers but for a few distinct tokens (`oops`, `?`, `-`) is numeric; the
  tokens are read as missing, recorded in the schema so prediction reads them the same way, and a
  warning names the column, the tokens and their rows. Read as text, one stray token turned a numeric
  column into a category per number (CV AUC 1.0 became 0.49, with no word). A column that is mostly
  numbers but holds many distinct words is neither, and is refused.
- A feature holding dates is refused: as a category every future date would be unseen, and as a
  number it would extrapolate; the message says how to use it instead.
- Parquet columns keep the type their files declare. Parts that disagree (int64 in one, text in
  another) are reconciled as numbers when the text reads as numbers, and refused otherwise, naming
  the parts; before, the column silently became a category of mixed values.

The target, group and time columns follow their own rules (see `resolve`), because a stray token
means something else there: in a target it is a label that cannot be, in a group column an identifier.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from warmcv.data.schema import TOKEN_WHITESPACE
from warmcv.errors import UserInputError

log = logging.getLogger(__name__)

Role = Literal["feature", "categorical", "target", "group", "time", "id"]

# pyarrow's CSV inference order (pandas' reader uses it), without time32: see the module docstring.
CSV_KINDS = ("int64", "bool", "date32", "timestamp", "float64")
# The timestamp types pyarrow infers, in its order: whole seconds before nanoseconds, zone offsets as UTC.
_TIMESTAMP_TYPES = (pa.timestamp("s"), pa.timestamp("ns"), pa.timestamp("s", "UTC"), pa.timestamp("ns", "UTC"))
# pyarrow's default boolean spellings, which pandas' pyarrow engine keeps.
TRUE_VALUES = ("1", "True", "TRUE", "true")
FALSE_VALUES = ("0", "False", "FALSE", "false")
# At most this many distinct non-numbers in a numeric column are taken for stray tokens meaning "missing".
MAX_STRAY_TOKENS = 10
# Rows shown per token in a message.
SHOWN_ROWS = 5
# A text column is a date column when at least this share of its values are dates.
DATE_SHARE = 0.9

# What pyarrow's number parsers accept, to sort values quickly; pyarrow's own cast then confirms every
# candidate, so the pattern only needs to miss nothing. Decimal and exponent forms, inf/nan, and the
# hexadecimal integers pyarrow's int64 parser reads.
_NUMBER = (r"^[ \t]*(?:[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity|nan))"
           r"|0[xX][0-9a-fA-F]+)[ \t]*$")
_CLOCK = r"(?:[ T][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
_MONTH = r"(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-zA-Z]*\.?"
# Dates as people and tools write them: year first (ISO, 2024/01/31) or last (31/01/2024, 1-31-24), or
# with a month name (31 Jan 2024, Jan 31, 2024), optionally with a time of day.
_YEAR_FIRST_DATE = rf"^[ \t]*[0-9]{{4}}[-/.][0-9]{{1,2}}[-/.][0-9]{{1,2}}{_CLOCK}[ \t]*$"
_OTHER_DATE = (rf"^[ \t]*(?:[0-9]{{1,2}}[-/.][0-9]{{1,2}}[-/.][0-9]{{2,4}}|[0-9]{{1,2}}[ -]{_MONTH}[ -]+[0-9]{{2,4}}"
               rf"|{_MONTH} [0-9]{{1,2}},? [0-9]{{4}}){_CLOCK}[ \t]*$")


def shown(value: Any) -> str:
    """A value as the user wrote it: 1, not np.int64(1)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


@dataclass
class _Token:
    count: int
    rows: list[int]


@dataclass
class ColumnScan:
    """What one column's values have been so far, over the batches observed."""

    name: str
    rows: int = 0
    nulls: int = 0
    # Arrow type family ('int', 'float', 'decimal', 'bool', 'text', 'date', 'timestamp', 'null', or the
    # type itself for anything else) -> the parts holding the column in that family, in order.
    families: dict[str, list[Path]] = field(default_factory=dict)
    # CSV kinds that have read every text value so far.
    text_kinds: set[str] = field(default_factory=lambda: set(CSV_KINDS))
    text_values: int = 0
    numbers: int = 0
    number_samples: set[float] = field(default_factory=set)
    tokens: dict[str, _Token] = field(default_factory=dict)
    token_count: int = 0
    many_tokens: bool = False
    dates: int = 0
    year_first_dates: int = 0
    # Timestamp types (of _TIMESTAMP_TYPES) that have read every text value so far.
    timestamp_types: list[pa.DataType] = field(default_factory=lambda: list(_TIMESTAMP_TYPES))
    # Parquet: the pandas dtype the column has in each part (what pd.read_parquet of the part would give).
    part_dtypes: dict[Path, Any] = field(default_factory=dict)
    # Whether every value so far is an integer one more than the one before it, in each part (a row counter).
    counter: bool = True
    counter_start: int | None = None
    _counter_last: tuple[Path, int] | None = None

    def observe(self, table: pa.Table, part: Path, offset: int, from_csv: bool) -> None:
        column = table.column(self.name)
        values = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        self.rows += len(values)
        self.nulls += values.null_count
        family = _family(values.type)
        parts = self.families.setdefault(family, [])
        if not parts or parts[-1] != part:
            parts.append(part)
        if family == "text":
            integers = self._observe_text(values, offset)
        else:
            integers = values if family == "int" else None
            if family in ("int", "float", "decimal", "bool"):
                self.numbers += len(values) - values.null_count
                self._sample_numbers(values)
        self._follow_counter(integers, part)
        if not from_csv:
            dtype = _batch_pandas_dtype(table, self.name, values)
            previous = self.part_dtypes.get(part)
            self.part_dtypes[part] = dtype if previous is None else _within_part_dtype(previous, dtype)

    def _follow_counter(self, integers: pa.Array | None, part: Path) -> None:
        if not self.counter:
            return
        if integers is None or integers.null_count or not len(integers):
            self.counter = bool(integers is not None and not integers.null_count and not len(integers))
            return
        numbers = integers.to_numpy().astype(np.int64, copy=False)
        previous = self._counter_last[1] if self._counter_last and self._counter_last[0] == part else None
        steps = np.diff(numbers) if previous is None else np.diff(numbers, prepend=previous)
        self.counter = bool((steps == 1).all())
        self._counter_last = (part, int(numbers[-1]))
        if self.counter_start is None:
            self.counter_start = int(numbers[0])

    def counts_rows(self, at_least: int = 10) -> bool:
        """Whether the column counts the rows (0, 1, 2, ... in each part), over at least `at_least` rows."""
        return self.counter and self.rows >= at_least and self.counter_start is not None

    def _sample_numbers(self, numbers: pa.Array) -> None:
        if len(self.number_samples) <= MAX_STRAY_TOKENS and len(numbers):
            unique = pc.unique(pc.drop_null(numbers).cast(pa.float64(), safe=False))
            self.number_samples.update(unique.slice(0, MAX_STRAY_TOKENS + 1).to_pylist())

    def _observe_text(self, values: pa.Array, offset: int) -> pa.Array | None:
        """Watch a batch of text; returns it as integers if every value is one (else None)."""
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        present = pc.drop_null(values)
        if not len(present):
            return None
        self.text_values += len(present)
        trimmed = pc.utf8_trim(present, TOKEN_WHITESPACE)
        as_float = _cast_or_none(trimmed, pa.float64())
        as_int = _cast_or_none(trimmed, pa.int64()) if as_float is None or "int64" in self.text_kinds else None
        for kind in list(self.text_kinds):
            if kind == "timestamp":
                self.timestamp_types = [t for t in self.timestamp_types if _cast_or_none(trimmed, t) is not None]
                accepted = bool(self.timestamp_types)
            else:
                known = {"int64": as_int is not None, "float64": as_float is not None}.get(kind)
                accepted = known if known is not None else _reads_as(kind, present, trimmed)
            if not accepted:
                self.text_kinds.discard(kind)
        if as_float is not None or as_int is not None:
            self.numbers += len(present)
            self._sample_numbers(as_float if as_float is not None else as_int)
            return as_int if len(present) == len(values) else None
        is_number = number_mask(trimmed)
        numbers = int(pc.sum(is_number).as_py() or 0)
        self.numbers += numbers
        if numbers and len(self.number_samples) <= MAX_STRAY_TOKENS:
            self._sample_numbers(_hex_aware_float(pc.filter(trimmed, is_number)))
        not_number = pc.invert(is_number)
        tokens = pc.filter(trimmed, not_number)
        year_first = int(pc.sum(pc.match_substring_regex(tokens, _YEAR_FIRST_DATE)).as_py() or 0)
        self.dates += year_first + int(pc.sum(pc.match_substring_regex(tokens, _OTHER_DATE)).as_py() or 0)
        self.year_first_dates += year_first
        self.token_count += len(tokens)
        if len(tokens):
            self._add_tokens(tokens, lambda: pc.filter(pc.indices_nonzero(pc.is_valid(values)), not_number).to_numpy()
                             + offset)
        return None

    def _add_tokens(self, tokens: pa.Array, rows_of: Callable[[], np.ndarray]) -> None:
        """Count the tokens already known; keep the first MAX_STRAY_TOKENS distinct ones with their first rows."""
        counts = pc.value_counts(tokens)
        rows = None
        for value, count in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
            if value in self.tokens:
                self.tokens[value].count += count
                continue
            if len(self.tokens) >= MAX_STRAY_TOKENS:
                self.many_tokens = True
                continue
            rows = rows_of() if rows is None else rows
            first = rows[np.flatnonzero(pc.equal(tokens, value).to_numpy(zero_copy_only=False))[:SHOWN_ROWS]]
            self.tokens[value] = _Token(count, [int(r) for r in first])

    def token_summary(self, limit: int = MAX_STRAY_TOKENS) -> str:
        """'oops' (1 row: 17), '?' (25 rows: 3, 9, ...): the tokens seen, most frequent first."""
        items = sorted(self.tokens.items(), key=lambda kv: (-kv[1].count, kv[1].rows[:1]))[:limit]
        text = []
        for value, token in items:
            rows = ", ".join(map(str, token.rows)) + (", ..." if token.count > len(token.rows) else "")
            text.append(f"{value!r} ({token.count} row{'s' if token.count != 1 else ''}: {rows})")
        more = self.many_tokens or len(self.tokens) > limit
        return ", ".join(text) + (", and more" if more else "")

    def first_token(self) -> tuple[str, int]:
        value, token = min(self.tokens.items(), key=lambda kv: kv[1].rows[0])
        return value, token.rows[0]


def _family(arrow_type: pa.DataType) -> str:
    if pa.types.is_dictionary(arrow_type):
        return "text" if pa.types.is_string(arrow_type.value_type) or pa.types.is_large_string(
            arrow_type.value_type) else str(arrow_type)
    checks = (("int", pa.types.is_integer), ("float", pa.types.is_floating), ("decimal", pa.types.is_decimal),
              ("bool", pa.types.is_boolean), ("text", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)),
              ("date", pa.types.is_date), ("timestamp", pa.types.is_timestamp), ("null", pa.types.is_null))
    return next((name for name, check in checks if check(arrow_type)), str(arrow_type))


def _cast_or_none(values: pa.Array, arrow_type: pa.DataType) -> pa.Array | None:
    """`values` cast to `arrow_type`, or None if any of them does not read as one.

    A cast that fails still costs as much as one that succeeds (pyarrow converts the whole array before
    reporting), and most tried casts fail (text tried as numbers, numbers as dates): a few values first.
    """
    try:
        if len(values) > _SAMPLE:
            pc.cast(values.slice(0, _SAMPLE), arrow_type)
        return pc.cast(values, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


_SAMPLE = 32


def _reads_as(kind: str, present: pa.Array, trimmed: pa.Array) -> bool:
    if kind == "bool":  # exact spellings, not trimmed, as pyarrow's CSV reader
        return bool(pc.all(pc.is_in(present, pa.array(TRUE_VALUES + FALSE_VALUES))).as_py())
    if kind == "date32":
        return _cast_or_none(trimmed, pa.date32()) is not None
    raise AssertionError(kind)


def number_mask(trimmed: pa.Array) -> pa.BooleanArray:
    """Which (trimmed, non-null) text values pyarrow reads as a number (float64, or int64 for hexadecimal)."""
    looks = pc.match_substring_regex(trimmed, _NUMBER)
    if _cast_or_none(pc.filter(trimmed, looks), pa.float64()) is not None:
        return looks
    # Rare: something the pattern let through is not a number (or is hexadecimal). Decide per distinct value.
    distinct = pc.unique(pc.filter(trimmed, looks))
    readable = [v for v in distinct.to_pylist()
                if _cast_or_none(pa.array([v]), pa.float64()) is not None
                or _cast_or_none(pa.array([v]), pa.int64()) is not None]
    return pc.is_in(trimmed, pa.array(readable, pa.string()))


def _batch_pandas_dtype(table: pa.Table, name: str, values: pa.Array) -> Any:
    """The pandas dtype this batch's column gets from pd.read_parquet (nulls make ints float, bools object)."""
    dtype = table.select([name]).slice(0, 0).to_pandas()[name].dtype
    if not values.null_count or not isinstance(dtype, np.dtype):  # extension dtypes (Int64, boolean) hold missing
        return dtype
    if pa.types.is_integer(values.type) and dtype.kind in "iu":
        return np.dtype(np.float64)
    if pa.types.is_boolean(values.type) and dtype == np.dtype(bool):
        return np.dtype(object)
    return dtype


def _within_part_dtype(first: Any, second: Any) -> Any:
    """One part read whole: its categorical batches share one dictionary (their union, in order of appearance)."""
    if isinstance(first, pd.CategoricalDtype) and isinstance(second, pd.CategoricalDtype):
        if list(first.categories) == list(second.categories):
            return first
        union = list(first.categories) + [c for c in second.categories if c not in set(first.categories)]
        return pd.CategoricalDtype(union, ordered=first.ordered)
    return concat_dtype([first, second])


def concat_dtype(dtypes: Iterable[Any]) -> Any:
    """The dtype pd.concat gives columns of these dtypes (as read_table concatenated its parts)."""
    return pd.concat([pd.Series([], dtype=d) for d in dtypes], ignore_index=True).dtype


# --- decisions -------------------------------------------------------------------------------------

ConvertKind = Literal["native", "float", "text", "null", "int64", "bool", "date32", "timestamp", "float64", "number"]


@dataclass(frozen=True)
class ColumnType:
    """How a column's values become a pandas Series: `convert` says how arrow values are read, `dtype` the result.

    native: pyarrow's conversion of typed Parquet data (with the file's pandas metadata); float: typed
    values as float64; text: the text as is; a CSV kind: the text read as that type, as pyarrow's CSV
    reader would; number: text read as float64, with `missing_tokens` as missing.
    """

    name: str
    dtype: Any
    convert: ConvertKind
    missing_tokens: tuple[str, ...] = ()
    timestamp_type: pa.DataType | None = None

    def series(self, values: pa.ChunkedArray, native: pd.Series | None = None) -> pd.Series:
        if self.convert == "native":
            assert native is not None
            return native if native.dtype == self.dtype else native.astype(self.dtype)
        array = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if _family(array.type) != "text":
            converted = array.cast(pa.string() if self.convert == "text" else pa.float64())
        else:
            converted = self._from_text(array)
        out = converted.to_pandas()
        return out if out.dtype == self.dtype else out.astype(self.dtype)

    def _from_text(self, array: pa.Array) -> pa.Array:
        kind = self.convert
        if kind == "text":
            return array.cast(pa.string())
        if kind == "null":
            return pa.nulls(len(array), pa.float64())
        if kind == "bool":
            truth = pc.is_in(array, pa.array(TRUE_VALUES))
            return pc.if_else(pc.is_valid(array), truth, pa.scalar(None, pa.bool_()))
        trimmed = pc.utf8_trim(array, TOKEN_WHITESPACE)
        if self.missing_tokens:
            trimmed = pc.if_else(pc.is_in(trimmed, pa.array(self.missing_tokens, pa.string())),
                                 pa.scalar(None, pa.string()), trimmed)
        if kind == "number":
            readable = pc.if_else(number_mask(pc.fill_null(trimmed, "")), trimmed, pa.scalar(None, pa.string()))
            return _hex_aware_float(readable)
        if kind == "timestamp":
            return pc.cast(trimmed, self.timestamp_type)
        return pc.cast(trimmed, {"int64": pa.int64(), "float64": pa.float64(), "date32": pa.date32()}[kind])


def _hex_aware_float(text: pa.Array) -> pa.Array:
    converted = _cast_or_none(text, pa.float64())
    if converted is not None:
        return converted
    values = [None if v is None else float(pc.cast(pa.array([v]), pa.int64())[0].as_py())
              if _cast_or_none(pa.array([v]), pa.float64()) is None else float(v) for v in text.to_pylist()]
    return pa.array(values, pa.float64())


def csv_kind(scan: ColumnScan) -> str:
    """The type pandas' CSV reader would give the column's text: the first kind that read every value."""
    if not scan.text_values:
        return "null"
    return next((kind for kind in CSV_KINDS if kind in scan.text_kinds), "text")


_TEXT_DTYPE = pa.array([], pa.string()).to_pandas().dtype


def _csv_type(scan: ColumnScan, kind: str) -> ColumnType:
    has_nulls = scan.nulls > 0
    if kind == "timestamp":
        arrow_type = scan.timestamp_types[0]
        return ColumnType(scan.name, pa.array([], arrow_type).to_pandas().dtype, "timestamp", timestamp_type=arrow_type)
    dtype = {"null": np.dtype(np.float64), "int64": np.dtype(np.float64 if has_nulls else np.int64),
             "bool": np.dtype(object if has_nulls else bool), "float64": np.dtype(np.float64),
             "date32": np.dtype(object), "text": _TEXT_DTYPE}[kind]
    return ColumnType(scan.name, dtype, kind)  # type: ignore[arg-type]


@dataclass
class Decision:
    """A resolved column and what the user should hear about it."""

    type: ColumnType
    warnings: list[str] = field(default_factory=list)


def resolve(scan: ColumnScan, role: Role, from_csv: bool, *, categorical_listed: bool = False,
            labels_requested: bool = False) -> Decision:
    """The type of `scan`'s column in its role, or a UserInputError that says why it cannot be used.

    `categorical_listed`: the user named the categorical columns, so any other feature must be numeric.
    `labels_requested`: the task is classification by request, so a target of text is labels as written.
    """
    families = [f for f in scan.families if f != "null"]
    unusable = [f for f in families if f not in ("int", "float", "decimal", "bool", "text", "date", "timestamp")]
    if unusable:
        part = scan.families[unusable[0]][0]
        raise UserInputError(
            f"column {scan.name!r} holds {unusable[0]} values (in {part.name}), which warmcv cannot read as numbers, "
            f"categories or labels; drop it (--drop {shlex.quote(scan.name)}) or convert it"
        )
    if from_csv:
        return _resolve_csv(scan, role, categorical_listed, labels_requested)
    return _resolve_parquet(scan, role, families, categorical_listed, labels_requested)


def _resolve_csv(scan: ColumnScan, role: Role, categorical_listed: bool, labels_requested: bool) -> Decision:
    kind = csv_kind(scan)
    if kind in ("date32", "timestamp"):
        if role == "feature":
            raise _dates_refusal(scan, scan.first_token() if scan.tokens else None)
        if role == "categorical":
            return Decision(ColumnType(scan.name, _TEXT_DTYPE, "text"))
        if role == "target":
            raise UserInputError(f"target column {scan.name!r} holds dates; the target must be numbers or labels")
        return Decision(_csv_type(scan, kind))
    if kind != "text":
        return Decision(_csv_type(scan, kind))
    return _resolve_text(scan, role, categorical_listed, labels_requested, parts_note="")


def _resolve_text(scan: ColumnScan, role: Role, categorical_listed: bool, labels_requested: bool,
                  parts_note: str) -> Decision:
    """A column whose text did not all read as one type: numbers with stray tokens, dates, or categories."""
    text = ColumnType(scan.name, _TEXT_DTYPE, "text")
    if role == "categorical":
        return Decision(text)
    if role in ("group", "id"):  # identifiers: a value that is not a number is a name, not a stray token
        return Decision(text)
    numbers, tokens = scan.numbers, scan.token_count
    few_tokens = not scan.many_tokens and len(scan.tokens) <= MAX_STRAY_TOKENS
    stray = numbers > 0 and tokens > 0 and few_tokens and (
        numbers >= tokens or len(scan.number_samples) > len(scan.tokens))
    if role == "target":
        if numbers and not tokens and not labels_requested:
            return Decision(ColumnType(scan.name, np.dtype(np.float64), "number"))
        if numbers and tokens and not labels_requested:
            raise UserInputError(
                f"target column {scan.name!r} holds text among its {numbers} numbers{parts_note}: "
                f"{scan.token_summary(SHOWN_ROWS)}; fix or drop those rows, or pass --task binary or --task multiclass "
                "to take every value as a class label"
            )
        return Decision(text)
    if role == "time":
        if numbers and tokens:
            raise UserInputError(
                f"time column {scan.name!r} holds text among its numbers{parts_note}: "
                f"{scan.token_summary(SHOWN_ROWS)}; rows cannot be put in time order"
            )
        if scan.dates - scan.year_first_dates >= DATE_SHARE * scan.text_values:
            value, row = scan.first_token()
            raise UserInputError(
                f"time column {scan.name!r} holds dates written day or month first ({value!r}, row {row}), "
                "which do not sort in time order as text; write them as YYYY-MM-DD or as numbers"
            )
        return Decision(text)
    # A feature.
    if numbers and not tokens:  # numbers pandas' reader could not type together (hexadecimal among decimals)
        return Decision(ColumnType(scan.name, np.dtype(np.float64), "number"))
    if stray:
        decision = Decision(ColumnType(scan.name, np.dtype(np.float64), "number", tuple(sorted(scan.tokens))))
        decision.warnings.append(
            f"column {scan.name!r} is numeric, but {tokens} of its {numbers + tokens} values are not numbers"
            f"{parts_note}: {scan.token_summary()}; they are read as missing, here and in predictions. If they "
            "mean something, fix the data or list the column in --categorical"
        )
        return decision
    if scan.dates >= DATE_SHARE * scan.text_values and scan.text_values:
        raise _dates_refusal(scan, scan.first_token() if scan.tokens else None)
    if numbers > tokens:
        raise UserInputError(
            f"column {scan.name!r} mixes numbers ({numbers} values) and text ({tokens} values, more than "
            f"{MAX_STRAY_TOKENS} distinct{parts_note}: {scan.token_summary(5)}): it is neither numeric nor "
            f"categorical; fix the data, drop it (--drop {shlex.quote(scan.name)}), or list it in --categorical"
        )
    if categorical_listed:
        value, row = scan.first_token()
        raise UserInputError(
            f"column {scan.name!r} must be numeric (it is not in --categorical) but holds {value!r} (row {row}); "
            f"{tokens} value(s) are not numbers"
        )
    return Decision(text)


def _dates_refusal(scan: ColumnScan, example: tuple[str, int] | None) -> UserInputError:
    shown_example = f" ({example[0]!r}, row {example[1]})" if example else ""
    name = shlex.quote(scan.name)
    return UserInputError(
        f"column {scan.name!r} holds dates{shown_example}: as a category every future date would be unseen; "
        f"convert it to numbers (e.g. day of week, days since an event), drop it (--drop {name}), or use it to "
        f"order a time-series split (--time-column {name})"
    )


def _resolve_parquet(scan: ColumnScan, role: Role, families: list[str], categorical_listed: bool,
                     labels_requested: bool) -> Decision:
    native = ColumnType(scan.name, concat_dtype(scan.part_dtypes.values()) if scan.part_dtypes else
                        np.dtype(object), "native")
    kinds = set(families)
    if not kinds or len(kinds) == 1 and kinds <= {"int", "float", "bool", "text", "date", "timestamp"}:
        kind = next(iter(kinds), "null")
        if kind in ("date", "timestamp") and role == "feature":
            raise _dates_refusal(scan, None)
        if kind == "date" and role == "categorical":
            return Decision(ColumnType(scan.name, _TEXT_DTYPE, "text"))
        if kind == "text" and role == "feature" and scan.text_values and (
                scan.dates >= DATE_SHARE * scan.text_values):
            raise _dates_refusal(scan, scan.first_token() if scan.tokens else None)
        return Decision(native)
    if kinds <= {"int", "float", "decimal"}:
        if "decimal" not in kinds:
            return Decision(native)
        return Decision(ColumnType(scan.name, np.dtype(np.float64), "float"))
    note = f" (the parts disagree: {_parts_note(scan)})"
    if kinds <= {"int", "float", "decimal", "bool"}:
        decision = Decision(ColumnType(scan.name, np.dtype(np.float64), "float"))
        decision.warnings.append(f"column {scan.name!r}: the parts disagree on its type ({_parts_note(scan)}); "
                                 "read as numbers (true = 1, false = 0)")
        return decision
    if kinds <= {"int", "float", "decimal", "bool", "text"}:
        if role in ("group", "id"):
            return Decision(ColumnType(scan.name, _TEXT_DTYPE, "text"), [
                f"{'ID' if role == 'id' else role} column {scan.name!r}: the parts disagree on its type "
                f"({_parts_note(scan)}); its values are compared as text"])
        if role == "categorical":
            return Decision(ColumnType(scan.name, _TEXT_DTYPE, "text"))
        if scan.token_count == 0:
            integral = "int64" in scan.text_kinds and kinds <= {"int", "text"} and not scan.nulls
            decision = Decision(ColumnType(scan.name, np.dtype(np.int64 if integral else np.float64), "number"))
            decision.warnings.append(f"column {scan.name!r}: the parts disagree on its type ({_parts_note(scan)}); "
                                     "every value reads as a number, so it is numeric")
            return decision
        if role == "target" and labels_requested:
            return Decision(ColumnType(scan.name, _TEXT_DTYPE, "text"))
        decision = _resolve_text(scan, role, categorical_listed, labels_requested, parts_note=note)
        if decision.type.convert == "text":
            raise UserInputError(
                f"column {scan.name!r}: the parts disagree on its type ({_parts_note(scan)}) and its text is not "
                f"numbers: {scan.token_summary(5)}; make the parts agree"
            )
        return decision
    raise UserInputError(f"column {scan.name!r}: the parts disagree on its type ({_parts_note(scan)}); make them agree")


def _parts_note(scan: ColumnScan) -> str:
    names = {"int": "integers", "float": "floats", "decimal": "decimals", "bool": "booleans", "text": "text",
             "date": "dates", "timestamp": "timestamps"}
    described = []
    for family, parts in scan.families.items():
        if family == "null":
            continue
        listed = ", ".join(p.name for p in parts[:3]) + (f" and {len(parts) - 3} more" if len(parts) > 3 else "")
        described.append(f"{names.get(family, family)} in {listed}")
    return "; ".join(described)
