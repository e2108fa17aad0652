"""The in-memory preparation as it was before it streamed (commit 86d1600), frozen as the oracle for the streamed one.

Issue 16 asked for a `warmcv prepare` that streams its input but keeps the output exactly as it was:
the same fold assignment, schema and categories. This module is that earlier implementation, reduced
to its success path (the checks that refuse bad data are tested elsewhere) and made self-contained,
so that later changes to warmcv.data cannot move the oracle along with the code under test.
`tests/unit/test_prepare_streaming.py` compares the two on data sets of every kind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold, TimeSeriesSplit

from warmcv.data.io import list_parts

FOLD_COLUMN = "__fold__"


def read_table(source: Path) -> pd.DataFrame:
    frames = []
    for path in list_parts(source):
        parquet = path.name.lower().endswith((".parquet", ".pq", ".parq"))
        frames.append(pd.read_parquet(path) if parquet else pd.read_csv(path, engine="pyarrow"))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _is_numeric(values: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)) and not isinstance(
        values.dtype, pd.CategoricalDtype)


def _as_category_strings(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.CategoricalDtype):
        labels = _as_category_strings(pd.Series(values.cat.categories)).to_numpy(dtype=object)
        codes = values.cat.codes.to_numpy()
        out = np.where(codes >= 0, labels[np.maximum(codes, 0)] if len(labels) else None, None)
        return pd.Series(out, index=values.index, dtype=object)
    present = values.notna()
    if pd.api.types.is_float_dtype(values) and bool(np.all(np.mod(values[present], 1) == 0)):
        values = values.astype("Int64")
    return values.astype(str).where(present, None)


def infer_schema(frame: pd.DataFrame, columns: list[str], categorical) -> list[dict]:
    features = []
    for name in columns:
        values = frame[name]
        as_categorical = name in categorical if categorical is not None else not _is_numeric(values)
        if as_categorical:
            categories = sorted(_as_category_strings(values).dropna().unique())
            features.append({"name": name, "kind": "categorical", "dtype": str(values.dtype),
                             "categories": categories})
        else:
            features.append({"name": name, "kind": "numeric", "dtype": str(values.dtype)})
    return features


def apply_schema(schema: list[dict], frame: pd.DataFrame) -> pd.DataFrame:
    columns = {}
    for feature in schema:
        values = frame[feature["name"]]
        if feature["kind"] == "categorical":
            labels = _as_category_strings(values)
            known = labels.isin(feature["categories"])
            columns[feature["name"]] = pd.Categorical(labels.where(known), categories=list(feature["categories"]))
        elif _is_numeric(values):
            columns[feature["name"]] = values.astype(np.float64) if pd.api.types.is_bool_dtype(values) else values
        else:
            columns[feature["name"]] = pd.to_numeric(values, errors="coerce").astype(np.float64)
    return pd.DataFrame(columns, index=frame.index)


def _task(target: pd.Series, requested: str) -> str:
    if requested != "auto":
        return requested
    n_distinct = target.nunique(dropna=True)
    if not _is_numeric(target) or pd.api.types.is_bool_dtype(target) or n_distinct == 2:
        return "binary" if n_distinct <= 2 else "multiclass"
    return "regression"


def _splitter(options, task: str) -> str:
    if options.splitter != "auto":
        return options.splitter
    if options.time_column:
        return "time"
    if options.group_column:
        return "stratified_group" if task != "regression" else "group"
    return "stratified" if task != "regression" else "kfold"


def _folds(frame: pd.DataFrame, label: np.ndarray, options, splitter: str) -> np.ndarray:
    k, n = options.folds, len(frame)
    fold = np.full(n, -1, dtype=np.int16)
    if splitter == "time":
        fold[:] = 0
        for i, (_, valid) in enumerate(TimeSeriesSplit(n_splits=k).split(np.zeros(n))):
            fold[valid] = i + 1
        return fold
    groups = frame[options.group_column].to_numpy() if options.group_column else None
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


def reference_prepare(source: Path, output: Path, options) -> dict:
    """Write `output`/data.parquet as the old code did; returns the manifest fields it would have written."""
    frame = read_table(Path(source)).rename(columns=str)
    k, target = options.folds, options.target
    task = _task(frame[target], options.task)
    splitter = _splitter(options, task)
    if splitter == "time":
        frame = frame.sort_values(options.time_column, kind="stable").reset_index(drop=True)
    classes = None
    if task != "regression":
        counts = frame[target].value_counts()
        classes = [c.item() if isinstance(c, np.generic) else c
                   for c in sorted(counts.index.tolist(), key=lambda v: (str(type(v)), v))]
    label = (pd.Categorical(frame[target], categories=classes).codes if classes is not None
             else frame[target].to_numpy(dtype=np.float64))
    excluded = {target, options.group_column, options.time_column, *options.drop}
    names = [c for c in frame.columns if c not in excluded]
    schema = infer_schema(frame, names, options.categorical)
    fold = _folds(frame, np.asarray(label), options, splitter)
    prepared = apply_schema(schema, frame)
    for extra in (target, options.group_column, options.time_column):
        if extra:
            prepared[extra] = frame[extra].to_numpy()
    prepared[FOLD_COLUMN] = fold
    output.mkdir(parents=True, exist_ok=True)
    prepared.to_parquet(output / "data.parquet", index=False)
    fold_kind = "forward" if splitter == "time" else "kfold"
    return dict(target=target, task=task, classes=classes, schema=schema, n_folds=k, splitter=splitter,
                fold_kind=fold_kind, seed=options.seed, rows=len(prepared),
                rows_per_fold=np.bincount(fold, minlength=k + (1 if fold_kind == "forward" else 0)).tolist(),
                group_column=options.group_column, time_column=options.time_column)
