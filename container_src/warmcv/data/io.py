"""Reading what users bring: one CSV or Parquet file, or a folder of parts (as Spark, Glue or S3 exports write).

Every failure names the file and the reason, because "ArrowInvalid" from deep inside pyarrow tells a
user nothing about which of 200 parts is broken.

Two ways in: `read_table` loads everything (prediction input, small by nature), and `iter_batches`
streams the parts in record batches of bounded size, which is what preparation uses so that a data
set larger than memory can be prepared. The streamed CSV columns arrive as text, exactly as written
(with pandas' missing-value markers already missing), and warmcv.data.columns decides their types
over all batches: pyarrow's streaming reader would fix every type from the first block alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pandas._libs.parsers import STR_NA_VALUES
from pandas.io.common import mangle_dupe_names

from warmcv.errors import UserInputError

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
# Files that data tools drop next to their parts and that are not data.
_IGNORED_NAMES = {"_SUCCESS", "manifest.json", "_common_metadata", "_metadata"}


def part_format(path: Path) -> str:
    """"parquet" or "csv": by the name's suffix, else by the first bytes."""
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    with path.open("rb") as handle:
        return "parquet" if handle.read(4) == b"PAR1" else "csv"


def list_parts(source: Path) -> list[Path]:
    """The data files of `source` (a file, or every data file under a folder, in sorted order)."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.exists():
        raise UserInputError(f"input data not found: {source}")
    parts = sorted(
        p for p in source.rglob("*")
        if p.is_file() and p.name not in _IGNORED_NAMES and not p.name.startswith((".", "_"))
        and not p.name.endswith((".crc", ".json"))
    )
    if not parts:
        raise UserInputError(f"input folder {source} holds no data files (CSV or Parquet)")
    formats = {part_format(p) for p in parts}
    if len(formats) > 1:
        raise UserInputError(f"input folder {source} mixes CSV and Parquet files; keep one format per folder")
    return parts


def _read_part(path: Path) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise UserInputError(f"empty data: {path} is an empty file")
    try:
        if part_format(path) == "parquet":
            return pd.read_parquet(path)
        # The pyarrow engine reads a 200k-row CSV several times faster than the C engine.
        return pd.read_csv(path, engine="pyarrow")
    except Exception as error:  # noqa: BLE001 - any reader failure is a bad file from the user's side
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserInputError(f"cannot read {path}: {detail}") from None


def _check_same_columns(parts: list[Path], columns: list[list[str]]) -> None:
    for path, names in zip(parts[1:], columns[1:], strict=True):
        if names != columns[0]:
            raise UserInputError(
                f"{path} has columns {names} but {parts[0]} has {columns[0]}; "
                "all parts of a data set need the same columns"
            )


def read_table(source: Path | str) -> pd.DataFrame:
    """All rows of `source`; parts of a folder must have the same columns in the same order."""
    parts = list_parts(Path(source))
    frames = [_read_part(p) for p in parts]
    _check_same_columns(parts, [list(frame.columns) for frame in frames])
    table = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if len(table.columns) == 0:
        raise UserInputError(f"empty data: {source} has no columns")
    if len(table) == 0:
        raise UserInputError(f"empty data: {source} has a header but no rows")
    return table


def source_fingerprint(source: Path | str) -> str:
    """sha256 over the parts' relative names and bytes: tells whether prepared data still matches its source."""
    source = Path(source)
    digest = hashlib.sha256()
    for part in list_parts(source):
        digest.update(str(part.relative_to(source) if source.is_dir() else part.name).encode())
        with part.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# What pandas' CSV reader (and so `read_table`) takes for a missing value; the streamed reader agrees.
CSV_NULL_VALUES = sorted(STR_NA_VALUES)
# Rows per streamed batch: small against memory, large enough that per-batch overhead stays negligible.
BATCH_ROWS = 65_536
# Bytes of CSV per block that pyarrow's streaming reader parses. It reads up to 32 blocks ahead of the
# parser (its background reader's queue), so the block is small (pyarrow's default, 1 MiB) and blocks
# are joined into batches of BATCH_ROWS rows. Tests lower both to exercise many blocks and batches.
CSV_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class Batch:
    """Rows `offset` .. `offset + len(table)` of the whole data set (parts concatenated in order)."""

    part: Path
    offset: int
    table: pa.Table


def _detail(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _csv_column_names(raw: list[str]) -> list[str]:
    """pandas' names for a CSV header: an empty name becomes 'Unnamed: i' and repeats get '.1', '.2' (as read_csv)."""
    names = [name if name != "" else f"Unnamed: {i}" for i, name in enumerate(raw)]
    return list(mangle_dupe_names(names, [i for i, name in enumerate(raw) if name == ""], None))


def _open_csv(path: Path, check_utf8: bool = True) -> pa_csv.CSVStreamingReader:
    return pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        convert_options=pa_csv.ConvertOptions(default_column_type=pa.string(), null_values=CSV_NULL_VALUES,
                                              strings_can_be_null=True, check_utf8=check_utf8),
    )


def _parquet_columns(file: pq.ParquetFile) -> list[str]:
    """The data columns of a Parquet file: what pandas reads as columns, without a stored index."""
    metadata = file.schema_arrow.pandas_metadata or {}
    index = {c for c in metadata.get("index_columns", []) if isinstance(c, str)}
    return [name for name in file.schema_arrow.names if name not in index]


def part_columns(path: Path) -> list[str]:
    """The column names of one part, as `read_table` would name them."""
    if path.stat().st_size == 0:
        raise UserInputError(f"empty data: {path} is an empty file")
    try:
        if part_format(path) == "parquet":
            return _parquet_columns(pq.ParquetFile(path))
        # Only the header matters here: text that is not UTF-8 is reported by the read, with its column named.
        with _open_csv(path, check_utf8=False) as reader:
            return _csv_column_names(reader.schema.names)
    except (pa.ArrowException, OSError) as error:
        raise UserInputError(f"cannot read {path}: {_detail(error)}") from None


def check_columns(source: Path | str) -> tuple[list[Path], list[str]]:
    """The parts of `source` and their common column names; parts that disagree are refused."""
    parts = list_parts(Path(source))
    columns = [part_columns(p) for p in parts]
    _check_same_columns(parts, columns)
    if not columns[0]:
        raise UserInputError(f"empty data: {source} has no columns")
    return parts, columns[0]


def iter_batches(parts: list[Path], columns: list[str]) -> Iterator[Batch]:
    """Every row of `parts`, in order, as tables of at most a few MB with `columns` as names (CSV as text)."""
    offset = 0
    for path in parts:
        try:
            for table in _part_tables(path, columns):
                yield Batch(path, offset, table)
                offset += table.num_rows
        except (pa.ArrowException, OSError) as error:
            raise UserInputError(f"cannot read {path}: {_reading_problem(error, columns)}") from None


def _reading_problem(error: Exception, columns: list[str]) -> str:
    """pyarrow's reason, with the column named instead of numbered ("In CSV column #3: ...")."""
    detail = _detail(error)
    match = re.match(r"In CSV column #(\d+): (.*)", detail)
    if not match or int(match.group(1)) >= len(columns):
        return detail
    name, problem = columns[int(match.group(1))], match.group(2)
    if "invalid UTF8" in problem:
        return f"column {name!r} holds text that is not UTF-8; save the file as UTF-8"
    return f"column {name!r}: {problem}"


def _part_tables(path: Path, columns: list[str]) -> Iterator[pa.Table]:
    if part_format(path) == "parquet":
        file = pq.ParquetFile(path)
        # With the file's schema metadata, so pandas restores its own dtypes (categories, nullable ints) per batch.
        schema = file.schema_arrow
        for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_pandas_metadata=False):
            yield pa.Table.from_batches([batch]).replace_schema_metadata(schema.metadata)
        return
    with _open_csv(path) as reader:
        blocks: list[pa.RecordBatch] = []
        rows = 0
        for block in reader:
            blocks.append(block)
            rows += block.num_rows
            if rows >= BATCH_ROWS:
                yield pa.Table.from_batches(blocks).rename_columns(columns)
                blocks, rows = [], 0
        if rows:
            yield pa.Table.from_batches(blocks).rename_columns(columns)
