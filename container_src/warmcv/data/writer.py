"""Writing data.parquet in row groups, under a temporary name, with rows in the order the folds need.

The prepared rows arrive batch by batch in input order. Usually that is also the output order; for a
time-series split the output is sorted by time, and an unsorted input then has its rows scattered
over the whole output. Those rows go through spill files on disk, one per slice of the output
(a bucket sort): each batch's rows are appended to the slices they belong to, and each slice is then
read back alone, put in order and written as row groups. Memory holds one slice, never the data set.

Nothing is left behind on failure: the temporary file and the spill files are removed, and the final
name only ever holds a complete file (the rename is the last step).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Rows per Parquet row group: big enough for efficient reads, small against memory.
ROW_GROUP_ROWS = 131_072
# At most this many spill files are open at once; the slices grow instead.
MAX_SPILL_FILES = 256
_POSITION = "__output_position__"


class PreparedDataWriter:
    """Collects prepared batches into `path`; `positions[i]` is the output row of input row i (None: as they come)."""

    def __init__(self, path: Path, schema: pa.Schema, positions: np.ndarray | None = None):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.schema = schema
        self.positions = positions
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._spill_dir = path.with_name(f".{path.name}.spill")
        self._spills: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        self._slice_rows = 0
        if positions is not None:
            self._slice_rows = max(ROW_GROUP_ROWS, math.ceil(len(positions) / MAX_SPILL_FILES))

    def write(self, offset: int, table: pa.Table) -> None:
        if self.positions is None:
            self._append(table)
            return
        positions = self.positions[offset:offset + table.num_rows]
        slices = positions // self._slice_rows
        order = np.argsort(slices, kind="stable")
        table = table.append_column(_POSITION, pa.array(positions, pa.int64()))
        present, starts = np.unique(slices[order], return_index=True)
        for number, start, end in zip(present, starts, [*starts[1:], len(order)], strict=True):
            self._spill(int(number)).write_table(table.take(pa.array(order[start:end])))

    def finish(self) -> None:
        """Write what is pending, then rename the file into place."""
        if self.positions is not None:
            for spill in self._spills.values():
                spill.close()
            for number in sorted(self._spills):
                with pa.OSFile(str(self._spill_path(number))) as source:
                    part = pa.ipc.open_stream(source).read_all()
                part = part.take(pc.sort_indices(part.column(_POSITION))).drop_columns([_POSITION])
                self._append(part)
                self._spill_path(number).unlink()
            self._spills.clear()
        self._flush(final=True)
        writer = self._writer or pq.ParquetWriter(self.tmp, self.schema)
        writer.close()
        self._writer = None
        os.replace(self.tmp, self.path)
        shutil.rmtree(self._spill_dir, ignore_errors=True)

    def abort(self) -> None:
        """Remove everything written so far (the file at `path`, if any, is left as it was)."""
        for spill in self._spills.values():
            try:
                spill.close()
            except (OSError, pa.ArrowException):
                pass
        if self._writer is not None:
            try:
                self._writer.close()
            except (OSError, pa.ArrowException):
                pass
        self.tmp.unlink(missing_ok=True)
        shutil.rmtree(self._spill_dir, ignore_errors=True)

    def _spill_path(self, number: int) -> Path:
        return self._spill_dir / f"{number:06d}.arrow"

    def _spill(self, number: int) -> pa.ipc.RecordBatchStreamWriter:
        if number not in self._spills:
            self._spill_dir.mkdir(exist_ok=True)
            schema = self.schema.append(pa.field(_POSITION, pa.int64()))
            self._spills[number] = pa.ipc.new_stream(str(self._spill_path(number)), schema)
        return self._spills[number]

    def _append(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._pending or (not final and self._pending_rows < ROW_GROUP_ROWS):
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.tmp, self.schema)
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        keep = 0 if final else table.num_rows % ROW_GROUP_ROWS
        self._writer.write_table(table.slice(0, table.num_rows - keep), row_group_size=ROW_GROUP_ROWS)
        if keep:
            self._pending, self._pending_rows = [table.slice(table.num_rows - keep)], keep
