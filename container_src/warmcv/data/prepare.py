"""Preparation: validate the raw data, fix the schema and classes, assign folds, write one Parquet and a manifest.

This is what the Processing step runs (and `warmcv prepare` locally). Everything that could make a
fold job fail later (a missing target, NaN labels, one class, fewer rows than folds) fails here,
once, with a message that says what to fix.

It streams: the input is read in batches three times, and never held whole.
1. Scan: each column's values are observed batch by batch (warmcv.data.columns) and its type is
   decided from all of them; columns that cannot be used are refused here.
2. Collect: the target, the group and time columns and the categories of categorical features. The
   target and groups are one column each, and scikit-learn's splitters need all of them at once.
3. Write: each batch gets the schema and its folds and goes to data.parquet as it comes, in row
   groups (warmcv.data.writer; sorted by time through spill files for a time-series split).
The output is the same as when the whole table was read at once: the same folds, schema, categories
and values (tests/unit/test_prepare_streaming.py compares them with that implementation).
"""

from __future__ import annotations

import difflib
import logging
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold, TimeSeriesSplit

import warmcv
from warmcv.data.columns import ColumnScan, ColumnType, Role, resolve, shown
from warmcv.data.io import Batch, check_columns, iter_batches, list_parts, part_format, source_fingerprint
from warmcv.data.manifest import DATA_FILE, FOLD_COLUMN, MANIFEST_FILE, Manifest, file_sha256
from warmcv.data.schema import Feature, FeatureSchema, as_category_strings, categorical_feature, is_numeric_column
from warmcv.data.writer import PreparedDataWriter
from warmcv.errors import UserInputError
from warmcv.files import storage_fault, write_text_atomic
from warmcv.settings.choices import MAX_FOLDS, SPLITTERS, TASKS
from warmcv.settings.run import PrepareOptions

log = logging.getLogger(__name__)

# An integer target with at most this many distinct values might be classes: --task auto says so.
MAX_INTEGER_CLASSES = 10


def _require_column(columns: list[str], name: str, role: str) -> None:
    if name not in columns:
        close = difflib.get_close_matches(name, columns, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserInputError(
            f"{role} column {name!r} not found{hint}; the data has columns: {', '.join(columns)}"
        )


def infer_task(target: pd.Series, requested: str) -> str:
    """`auto`: strings, booleans or exactly two distinct numbers are classification; other numbers regression."""
    if requested not in TASKS:
        raise UserInputError(f"task {requested!r} is not one of {', '.join(TASKS)}")
    n_distinct = target.nunique(dropna=True)
    if n_distinct == 1 and (requested == "regression" or requested == "auto" and is_numeric_column(target)
                            and not pd.api.types.is_bool_dtype(target)):
        raise UserInputError(
            f"target column {target.name!r} holds the same value, {shown(target.iloc[0])}, in all {len(target)} rows: "
            "there is nothing to predict"
        )
    if requested == "auto":
        if not is_numeric_column(target) or pd.api.types.is_bool_dtype(target) or n_distinct == 2:
            task = "binary" if n_distinct <= 2 else "multiclass"
        else:
            task = "regression"
            if pd.api.types.is_integer_dtype(target) and n_distinct <= MAX_INTEGER_CLASSES:
                shown_values = ", ".join(shown(v) for v in sorted(target.unique())[:MAX_INTEGER_CLASSES])
                log.warning("target %r holds %d distinct integers (%s): prepared as a regression; if they are "
                            "classes, pass --task multiclass", target.name, n_distinct, shown_values)
        log.info("task inferred as %s from target %r (%s, %d distinct values); pass --task to override",
                 task, target.name, target.dtype, n_distinct)
        return task
    if requested == "regression" and not is_numeric_column(target):
        example = target.dropna().iloc[0]
        raise UserInputError(
            f"task regression needs a numeric target, but {target.name!r} holds {shown(example)}; "
            "use task binary or multiclass for class labels"
        )
    if requested == "binary" and n_distinct > 2:
        raise UserInputError(
            f"task binary needs two classes, but target {target.name!r} has {n_distinct}; use task multiclass"
        )
    return requested


def _check_target(values: pd.Series) -> None:
    missing = values.isna()
    if missing.any():
        rows = ", ".join(str(i) for i in np.flatnonzero(missing.to_numpy())[:5])
        raise UserInputError(
            f"target column {values.name!r} has {int(missing.sum())} missing value(s) (NaN), first at row(s) {rows}; "
            "drop or fill those rows before preparing"
        )


def _classes(target: pd.Series, folds: int, stratified: bool) -> list:
    counts = target.value_counts()
    if len(counts) < 2:
        raise UserInputError(
            f"classification needs at least two classes, but target {target.name!r} has only "
            f"{shown(counts.index[0])} ({int(counts.iloc[0])} rows)"
        )
    if stratified:
        rare = counts[counts < folds]
        if len(rare):
            raise UserInputError(
                f"class {shown(rare.index[0])} of target {target.name!r} has {int(rare.iloc[0])} row(s), fewer than "
                f"the {folds} folds: every fold needs each class; use fewer folds or more data"
            )
    classes = sorted(counts.index.tolist(), key=lambda v: (str(type(v)), v))
    return [c.item() if isinstance(c, np.generic) else c for c in classes]


def _pick_splitter(options: PrepareOptions, task: str) -> str:
    splitter = options.splitter
    if splitter not in SPLITTERS:
        raise UserInputError(f"splitter {splitter!r} is not one of {', '.join(SPLITTERS)}")
    if splitter == "auto":
        if options.time_column:
            return "time"
        if options.group_column:
            return "stratified_group" if task != "regression" else "group"
        return "stratified" if task != "regression" else "kfold"
    if splitter in ("group", "stratified_group") and not options.group_column:
        raise UserInputError(f"splitter {splitter} needs a group column (--group-column)")
    if splitter == "time" and not options.time_column:
        raise UserInputError("splitter time needs an ordering column (--time-column)")
    if splitter in ("stratified", "stratified_group") and task == "regression":
        raise UserInputError(f"splitter {splitter} stratifies classes and cannot split a regression target")
    return splitter


def assign_folds(frame: pd.DataFrame, label: np.ndarray, options: PrepareOptions, splitter: str) -> np.ndarray:
    """Fold id per row, from scikit-learn's splitters (seeded where they shuffle)."""
    k, n = options.folds, len(frame)
    fold = np.full(n, -1, dtype=np.int16)
    if splitter == "time":
        # TimeSeriesSplit on time-ordered rows: block 0 only ever trains; fold i validates block i+1.
        fold[:] = 0
        for i, (_, valid) in enumerate(TimeSeriesSplit(n_splits=k).split(np.zeros(n))):
            fold[valid] = i + 1
        return fold
    groups = _groups_without_gaps(frame[options.group_column]) if options.group_column else None
    if groups is not None:
        n_groups = pd.Series(groups).nunique(dropna=False)
        if n_groups < k:
            raise UserInputError(
                f"group column {options.group_column!r} has {n_groups} distinct group(s), fewer than the {k} folds"
            )
    split = {
        "stratified": lambda: StratifiedKFold(k, shuffle=True, random_state=options.seed).split(np.zeros(n), label),
        "kfold": lambda: KFold(k, shuffle=True, random_state=options.seed).split(np.zeros(n)),
        "group": lambda: GroupKFold(k, shuffle=True, random_state=options.seed).split(np.zeros(n), groups=groups),
        "stratified_group": lambda: StratifiedGroupKFold(k, shuffle=True, random_state=options.seed).split(
            np.zeros(n), label, groups=groups),
    }[splitter]
    for i, (_, valid) in enumerate(split()):
        fold[valid] = i
    return fold


def _groups_without_gaps(groups: pd.Series) -> np.ndarray:
    """The group of each row; rows without one form one group of their own (scikit-learn refuses NaN groups)."""
    missing = groups.isna()
    if not missing.any():
        return groups.to_numpy()
    present = groups[~missing]
    if is_numeric_column(groups):
        filler: object = float(present.max()) + 1 if len(present) else 0.0
        return groups.astype(np.float64).fillna(filler).to_numpy()
    labels = set(present.astype(str))
    filler = next(f"<missing {i}>" for i in range(len(labels) + 1) if f"<missing {i}>" not in labels)
    return groups.astype(str).where(~missing, filler).to_numpy()


def _check_options(options: PrepareOptions, columns: list[str]) -> None:
    """Everything about the options and column names that can be checked before reading any row."""
    k = options.folds
    if not 2 <= k <= MAX_FOLDS:
        raise UserInputError(f"folds={k} is out of range: use 2..{MAX_FOLDS}")
    if options.task not in TASKS:
        raise UserInputError(f"task {options.task!r} is not one of {', '.join(TASKS)}")
    if FOLD_COLUMN in columns:
        raise UserInputError(f"column {FOLD_COLUMN!r} is reserved for the fold assignment; rename or drop it")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise UserInputError(f"column name(s) {', '.join(map(repr, duplicated))} appear more than once")
    _require_column(columns, options.target, "target")
    roles = [("group", options.group_column), ("time", options.time_column), *(("drop", d) for d in options.drop),
             *(("ID", i) for i in options.id_columns)]
    for role, name in roles:
        if name:
            _require_column(columns, name, role)
    _check_id_columns(options)
    features = _feature_names(columns, options)
    if not features:
        raise UserInputError("no feature columns left after removing the target, group, time and dropped columns")
    if options.categorical is not None:
        unknown = [c for c in options.categorical if c not in features]
        if unknown:
            raise UserInputError(f"categorical columns not among the features: {', '.join(unknown)}")


def _check_id_columns(options: PrepareOptions) -> None:
    """An ID column identifies rows and does nothing else: it cannot also be the target or another role."""
    ids = options.id_columns
    repeated = sorted({c for c in ids if ids.count(c) > 1})
    if repeated:
        raise UserInputError(f"ID column(s) {', '.join(map(repr, repeated))} given more than once")
    for role, names in (("target", [options.target]), ("group", [options.group_column]),
                        ("time", [options.time_column]), ("dropped", list(options.drop))):
        both = [c for c in ids if c in names]
        if both:
            raise UserInputError(f"column {both[0]!r} cannot be both an ID column and the {role} column"
                                 if role != "dropped" else
                                 f"column {both[0]!r} is both an ID column and dropped (--drop); an ID column is "
                                 "already left out of the features: give it once, as --id-column")


def _check_ids_unique(ids: pd.DataFrame) -> None:
    """Every row has an ID (all of its ID columns) and no two rows share one: predictions are joined back by it."""
    for name in ids.columns:
        missing = ids[name].isna().to_numpy()
        if missing.any():
            first_rows = ", ".join(str(i) for i in np.flatnonzero(missing)[:5])
            raise UserInputError(f"ID column {name!r} has {int(missing.sum())} missing value(s), first at row(s) "
                                 f"{first_rows}; every row needs an ID")
    duplicated = ids.duplicated(keep=False).to_numpy()
    if duplicated.any():
        rows = np.flatnonzero(duplicated)
        first = ids.iloc[rows[0]]
        same = np.flatnonzero((ids == first).all(axis=1).to_numpy())
        value = ", ".join(f"{name}={shown(first[name])}" for name in ids.columns)
        what = "ID column" + ("s " if len(ids.columns) > 1 else " ") + ", ".join(map(repr, ids.columns))
        raise UserInputError(
            f"{what} must identify each row, but {len(rows)} rows share their ID with another row ({value} at rows "
            f"{', '.join(str(r) for r in same[:5])}{', ...' if len(same) > 5 else ''}); fix the IDs, add the column "
            "that tells those rows apart as another --id-column, or use --group-column for rows that belong together")


def _feature_names(columns: list[str], options: PrepareOptions) -> list[str]:
    excluded = {options.target, options.group_column, options.time_column, *options.drop, *options.id_columns}
    return [c for c in columns if c not in excluded]


def _roles(columns: list[str], options: PrepareOptions) -> dict[str, Role]:
    """The role of every column that is read (dropped columns are not)."""
    roles: dict[str, Role] = {}
    for name in _feature_names(columns, options):
        listed = options.categorical is not None and name in options.categorical
        roles[name] = "categorical" if listed else "feature"
    if options.time_column:
        roles[options.time_column] = "time"
    if options.group_column:
        roles[options.group_column] = "group"
    for name in options.id_columns:
        roles[name] = "id"
    roles[options.target] = "target"
    return {name: roles[name] for name in columns if name in roles}


@dataclass
class _Plan:
    """The columns read and how each one becomes a pandas column."""

    types: dict[str, ColumnType]

    def frames(self, parts: list[Path], columns: list[str], names: list[str]) -> Iterator[tuple[Batch, pd.DataFrame]]:
        """Each batch of the input as a frame of `names`, typed as decided, indexed by global row number."""
        for batch in iter_batches(parts, columns):
            table = batch.table
            native = [n for n in names if self.types[n].convert == "native"]
            native_frame = table.select(native).to_pandas() if native else None
            data = {n: self.types[n].series(table.column(n), native_frame[n] if native_frame is not None and n in native
                                            else None).array for n in names}
            yield batch, pd.DataFrame(data, index=pd.RangeIndex(batch.offset, batch.offset + table.num_rows))


def _scan(parts: list[Path], columns: list[str], roles: dict[str, Role], from_csv: bool) -> dict[str, ColumnScan]:
    scans = {name: ColumnScan(name) for name in roles}
    for batch in iter_batches(parts, columns):
        for scan in scans.values():
            scan.observe(batch.table, batch.part, batch.offset, from_csv)
    return scans


def _plan(scans: dict[str, ColumnScan], roles: dict[str, Role], options: PrepareOptions, from_csv: bool) -> _Plan:
    types = {}
    for name, role in roles.items():
        decision = resolve(scans[name], role, from_csv, categorical_listed=options.categorical is not None,
                           labels_requested=options.task in ("binary", "multiclass"))
        for warning in decision.warnings:
            log.warning(warning)
        types[name] = decision.type
    return _Plan(types)


@dataclass
class _Collected:
    target: pd.Series
    groups: pd.Series | None
    times: pd.Series | None
    distinct: dict[str, pd.Series]  # the distinct values of each categorical feature
    ids: pd.DataFrame | None = None


def _extra_columns(options: PrepareOptions) -> list[str]:
    """The columns data.parquet keeps beside the features: target, group, time and IDs."""
    return list(dict.fromkeys(c for c in (options.target, options.group_column, options.time_column,
                                          *options.id_columns) if c))


def _collect(parts: list[Path], columns: list[str], plan: _Plan, options: PrepareOptions,
             categorical: list[str]) -> _Collected:
    extras = _extra_columns(options)
    names = list(dict.fromkeys([*extras, *categorical]))
    pieces: dict[str, list[pd.Series]] = {name: [] for name in extras}
    distinct: dict[str, pd.Series] = {name: pd.Series([], dtype=plan.types[name].dtype) for name in categorical}
    for _, frame in plan.frames(parts, columns, names):
        for name in extras:
            pieces[name].append(frame[name])
        for name in categorical:
            distinct[name] = pd.concat([distinct[name], frame[name].drop_duplicates()],
                                       ignore_index=True).drop_duplicates()

    def whole(name: str | None) -> pd.Series | None:
        return pd.concat(pieces[name]).rename(name) if name else None

    ids = (pd.DataFrame({name: pd.concat(pieces[name]).to_numpy() for name in options.id_columns})
           if options.id_columns else None)
    return _Collected(whole(options.target), whole(options.group_column), whole(options.time_column), distinct, ids)


def _build_schema(features: list[str], plan: _Plan, categorical: list[str], collected: _Collected) -> FeatureSchema:
    built = []
    for name in features:
        column = plan.types[name]
        if name in categorical:
            built.append(categorical_feature(name, str(column.dtype), as_category_strings(collected.distinct[name])))
        else:
            built.append(Feature(name, "numeric", str(column.dtype), missing_values=column.missing_tokens))
    return FeatureSchema(tuple(built))


def prepare(source: Path | str, output: Path | str, options: PrepareOptions) -> Manifest:
    """Read `source`, prepare it and write data.parquet + manifest.json into `output` atomically.

    The manifest is removed first and written last (each file via a temp name and rename), so a
    crash at any point leaves no manifest next to data it does not describe. Bad data is refused
    before anything in `output` is touched.
    """
    source, output = Path(source), Path(output)
    k = options.folds
    parts, columns = check_columns(source)
    _check_options(options, columns)
    from_csv = part_format(parts[0]) == "csv"
    roles = _roles(columns, options)

    scans = _scan(parts, columns, roles, from_csv)
    rows = scans[options.target].rows
    if rows == 0:
        raise UserInputError(f"empty data: {source} has a header but no rows")
    plan = _plan(scans, roles, options, from_csv)
    features = _feature_names(columns, options)
    if options.categorical is not None:
        categorical = [c for c in features if c in options.categorical]
    else:
        categorical = [c for c in features if not is_numeric_column(pd.Series([], dtype=plan.types[c].dtype))]

    collected = _collect(parts, columns, plan, options, categorical)
    target = collected.target
    _check_target(target)
    if collected.ids is not None:
        _check_ids_unique(collected.ids)
    if rows < k:
        raise UserInputError(f"{k} folds need at least {k} rows, but the data has {rows}")
    task = infer_task(target, options.task)
    splitter = _pick_splitter(options, task)
    positions = (_time_positions(collected.times, options.time_column)
                 if splitter == "time" and options.time_column else None)
    stratified = splitter in ("stratified", "stratified_group")
    classes = _classes(target, k, stratified) if task != "regression" else None
    if task == "binary" and classes is not None and len(classes) != 2:
        raise UserInputError(f"task binary needs two classes, got {len(classes)}")
    label = (pd.Categorical(target, categories=classes).codes if classes is not None
             else target.to_numpy(dtype=np.float64))
    if classes is None and not np.isfinite(label).all():
        raise UserInputError(f"target column {options.target!r} holds infinite values")
    schema = _build_schema(features, plan, categorical, collected)
    _warn_about_rows_order(features, scans)
    fold = _folds_in_input_order(collected.groups, np.asarray(label), positions, options, splitter)
    del collected, label

    fold_kind = "forward" if splitter == "time" else "kfold"
    rows_per_fold = np.bincount(fold, minlength=k + (1 if fold_kind == "forward" else 0)).tolist()
    output.mkdir(parents=True, exist_ok=True)
    manifest_path, data_path = output / MANIFEST_FILE, output / DATA_FILE
    manifest_path.unlink(missing_ok=True)
    try:
        _write(parts, columns, plan, schema, options, fold, positions, data_path)
    except Exception as error:  # a refused write (full disk, read-only) is named in one line
        fault = storage_fault(error, data_path)
        if fault is not None and fault is not error:
            raise fault from error
        raise
    manifest = Manifest(
        target=options.target, task=task, classes=classes, schema=schema, n_folds=k, splitter=splitter,
        fold_kind=fold_kind, seed=options.seed, rows=rows, rows_per_fold=rows_per_fold,
        group_column=options.group_column, time_column=options.time_column, id_columns=list(options.id_columns),
        source={"parts": [str(p.relative_to(source)) if source.is_dir() else p.name for p in list_parts(source)],
                "sha256": source_fingerprint(source)},
        data_sha256=file_sha256(data_path),
        warmcv_version=warmcv.__version__,
    )
    write_text_atomic(manifest_path, manifest.to_json())
    log.info("prepared %d rows, %d features (%d categorical), task %s, %d folds (%s) into %s",
             manifest.rows, len(manifest.schema.features), len(manifest.schema.categorical_names),
             manifest.task, manifest.n_folds, manifest.splitter, output)
    return manifest


def _time_positions(times: pd.Series, name: str) -> np.ndarray | None:
    """The place of each input row in time order (stable for ties), or None if the rows are in order already."""
    if times.isna().any():
        raise UserInputError(f"time column {name!r} has missing values; rows cannot be ordered")
    order = times.reset_index(drop=True).sort_values(kind="stable").index.to_numpy()
    if (order == np.arange(len(order))).all():
        return None
    positions = np.empty(len(order), dtype=np.int64)
    positions[order] = np.arange(len(order))
    return positions


def _folds_in_input_order(groups: pd.Series | None, label: np.ndarray, positions: np.ndarray | None,
                          options: PrepareOptions, splitter: str) -> np.ndarray:
    """The fold of each input row. With `positions` (time order), the splitter sees the rows in time order
    and each input row takes the fold of its place in that order."""
    if groups is not None and groups.isna().any():
        missing = np.flatnonzero(groups.isna().to_numpy())
        log.warning("group column %r has %d missing value(s), first at row(s) %s; those rows are kept together "
                    "as one group", options.group_column, len(missing), ", ".join(map(str, missing[:5])))
    frame = (pd.DataFrame({options.group_column: groups.to_numpy()}) if groups is not None
             else pd.DataFrame(index=pd.RangeIndex(len(label))))
    if positions is None:
        return assign_folds(frame, label, options, splitter)
    order = np.argsort(positions)
    return assign_folds(frame.iloc[order].reset_index(drop=True), label[order], options, splitter)[positions]


def _warn_about_rows_order(features: list[str], scans: dict[str, ColumnScan]) -> None:
    """A feature that counts the rows (a saved index such as pandas' 'Unnamed: 0', a running id) teaches
    the model the order of the rows, which new data does not share."""
    for name in features:
        scan = scans[name]
        if scan.counts_rows():
            log.warning("column %r counts the rows (%s, ...): as a feature it teaches the model the row order; "
                        "if it is an index or an id, drop it (--drop %s)", name, scan.counter_start, shlex.quote(name))


def _write(parts: list[Path], columns: list[str], plan: _Plan, schema: FeatureSchema, options: PrepareOptions,
           fold: np.ndarray, positions: np.ndarray | None, data_path: Path) -> None:
    """Pass 3: every batch with the schema applied, its extra columns and folds, into data.parquet."""
    extras = _extra_columns(options)
    names = list(dict.fromkeys([*schema.names, *extras]))
    writer: PreparedDataWriter | None = None
    try:
        for batch, frame in plan.frames(parts, columns, names):
            prepared = schema.apply(frame, context="input", names="user")
            for extra in extras:
                prepared[extra] = frame[extra].to_numpy()
            prepared[FOLD_COLUMN] = fold[batch.offset:batch.offset + len(frame)]
            if writer is None:
                writer = PreparedDataWriter(data_path, pa.Schema.from_pandas(prepared, preserve_index=False),
                                            positions)
            writer.write(batch.offset, pa.Table.from_pandas(prepared, schema=writer.schema, preserve_index=False))
        assert writer is not None
        writer.finish()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
