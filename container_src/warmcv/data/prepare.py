"""Preparation: validate the raw data, fix the schema and classes, assign folds, write one Parquet and a manifest.

This is what the Processing step runs (and `warmcv prepare` locally). Everything that could make a
fold job fail later (a missing target, NaN labels, one class, fewer rows than folds) fails here,
once, with a message that says what to fix.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold, TimeSeriesSplit

import warmcv
from warmcv.data.io import list_parts, read_table, source_fingerprint
from warmcv.data.manifest import DATA_FILE, FOLD_COLUMN, MANIFEST_FILE, Manifest, file_sha256
from warmcv.data.schema import FeatureSchema, is_numeric_column
from warmcv.errors import UserInputError
from warmcv.files import atomic_path, write_text_atomic
from warmcv.settings.choices import MAX_FOLDS, SPLITTERS, TASKS
from warmcv.settings.run import PrepareOptions

log = logging.getLogger(__name__)



def _require_column(frame: pd.DataFrame, name: str, role: str) -> None:
    if name not in frame.columns:
        close = difflib.get_close_matches(name, [str(c) for c in frame.columns], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserInputError(
            f"{role} column {name!r} not found{hint}; the data has columns: {', '.join(map(str, frame.columns))}"
        )


def infer_task(target: pd.Series, requested: str) -> str:
    """`auto`: strings, booleans or exactly two distinct numbers are classification; other numbers regression."""
    if requested not in TASKS:
        raise UserInputError(f"task {requested!r} is not one of {', '.join(TASKS)}")
    n_distinct = target.nunique(dropna=True)
    if requested == "auto":
        if not is_numeric_column(target) or pd.api.types.is_bool_dtype(target) or n_distinct == 2:
            task = "binary" if n_distinct <= 2 else "multiclass"
        else:
            task = "regression"
        log.info("task inferred as %s from target %r (%s, %d distinct values); pass --task to override",
                 task, target.name, target.dtype, n_distinct)
        return task
    if requested == "regression" and not is_numeric_column(target):
        example = target.dropna().iloc[0]
        raise UserInputError(
            f"task regression needs a numeric target, but {target.name!r} holds {example!r}; "
            "use task binary or multiclass for class labels"
        )
    if requested == "binary" and n_distinct > 2:
        raise UserInputError(
            f"task binary needs two classes, but target {target.name!r} has {n_distinct}; use task multiclass"
        )
    return requested


def _check_target(frame: pd.DataFrame, target: str) -> None:
    missing = frame[target].isna()
    if missing.any():
        rows = ", ".join(str(i) for i in np.flatnonzero(missing.to_numpy())[:5])
        raise UserInputError(
            f"target column {target!r} has {int(missing.sum())} missing value(s) (NaN), first at row(s) {rows}; "
            "drop or fill those rows before preparing"
        )


def _classes(target: pd.Series, folds: int, stratified: bool) -> list:
    counts = target.value_counts()
    if len(counts) < 2:
        raise UserInputError(
            f"classification needs at least two classes, but target {target.name!r} has only "
            f"{counts.index[0]!r} ({int(counts.iloc[0])} rows)"
        )
    if stratified:
        rare = counts[counts < folds]
        if len(rare):
            raise UserInputError(
                f"class {rare.index[0]!r} of target {target.name!r} has {int(rare.iloc[0])} row(s), fewer than the "
                f"{folds} folds: every fold needs each class; use fewer folds or more data"
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
    groups = frame[options.group_column].to_numpy() if options.group_column else None
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


def prepare_frame(frame: pd.DataFrame, options: PrepareOptions) -> tuple[pd.DataFrame, dict]:
    """Validate and fold a raw table; returns the prepared table and the manifest fields."""
    k = options.folds
    if not 2 <= k <= MAX_FOLDS:
        raise UserInputError(f"folds={k} is out of range: use 2..{MAX_FOLDS}")
    if len(frame) == 0:
        raise UserInputError("empty data: no rows to prepare")
    frame = frame.rename(columns=str)
    if FOLD_COLUMN in frame.columns:
        raise UserInputError(f"column {FOLD_COLUMN!r} is reserved for the fold assignment; rename or drop it")
    duplicated = sorted(set(frame.columns[frame.columns.duplicated()]))
    if duplicated:
        raise UserInputError(f"column name(s) {', '.join(map(repr, duplicated))} appear more than once")
    _require_column(frame, options.target, "target")
    roles = [("group", options.group_column), ("time", options.time_column), *(("drop", d) for d in options.drop)]
    for role, name in roles:
        if name:
            _require_column(frame, name, role)
    _check_target(frame, options.target)
    if len(frame) < k:
        raise UserInputError(f"{k} folds need at least {k} rows, but the data has {len(frame)}")

    task = infer_task(frame[options.target], options.task)
    splitter = _pick_splitter(options, task)
    if splitter == "time":
        if frame[options.time_column].isna().any():
            raise UserInputError(f"time column {options.time_column!r} has missing values; rows cannot be ordered")
        frame = frame.sort_values(options.time_column, kind="stable").reset_index(drop=True)
    stratified = splitter in ("stratified", "stratified_group")
    classes = _classes(frame[options.target], k, stratified) if task != "regression" else None
    if task == "binary" and classes is not None and len(classes) != 2:
        raise UserInputError(f"task binary needs two classes, got {len(classes)}")
    label = (pd.Categorical(frame[options.target], categories=classes).codes if classes is not None
             else frame[options.target].to_numpy(dtype=np.float64))
    if classes is None and not np.isfinite(label).all():
        raise UserInputError(f"target column {options.target!r} holds infinite values")

    excluded = {options.target, options.group_column, options.time_column, *options.drop}
    feature_names = [c for c in frame.columns if c not in excluded]
    if not feature_names:
        raise UserInputError("no feature columns left after removing the target, group, time and dropped columns")
    schema = FeatureSchema.infer(frame, feature_names, options.categorical)
    fold = assign_folds(frame, np.asarray(label), options, splitter)

    prepared = schema.apply(frame, context="input")
    for extra in (options.target, options.group_column, options.time_column):
        if extra:
            prepared[extra] = frame[extra].to_numpy()
    prepared[FOLD_COLUMN] = fold
    fold_kind = "forward" if splitter == "time" else "kfold"
    rows_per_fold = np.bincount(fold, minlength=k + (1 if fold_kind == "forward" else 0)).tolist()
    fields = dict(target=options.target, task=task, classes=classes, schema=schema, n_folds=k, splitter=splitter,
                  fold_kind=fold_kind, seed=options.seed, rows=len(prepared), rows_per_fold=rows_per_fold,
                  group_column=options.group_column, time_column=options.time_column)
    return prepared, fields


def prepare(source: Path | str, output: Path | str, options: PrepareOptions) -> Manifest:
    """Read `source`, prepare it and write data.parquet + manifest.json into `output` atomically.

    The manifest is removed first and written last (each file via a temp name and rename), so a
    crash at any point leaves no manifest next to data it does not describe.
    """
    source, output = Path(source), Path(output)
    frame = read_table(source)
    prepared, fields = prepare_frame(frame, options)
    output.mkdir(parents=True, exist_ok=True)
    manifest_path, data_path = output / MANIFEST_FILE, output / DATA_FILE
    manifest_path.unlink(missing_ok=True)
    with atomic_path(data_path) as tmp_data:
        prepared.to_parquet(tmp_data, index=False)
    manifest = Manifest(
        **fields,
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
