"""Out-of-fold predictions: each training row predicted by the fold model that did not train on it.

They come from the folds themselves: a fold is scored from LightGBM's running predictions on its validation
rows (warmcv.model.training), and those predictions travel back with the fold's result (`FoldResult.extras`)
instead of being thrown away, so nothing is predicted twice. Here they are put back in the prepared data's
row order, with the fold that predicted each row, and with the row's IDs and target from data.parquet.

Rows no fold validates (the first block of a forward-in-time split, which only ever trains) have no fold and
no prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from warmcv.cv.folds import FoldResult
from warmcv.data.manifest import DATA_FILE, FOLD_COLUMN, Manifest, find_prepared_dir
from warmcv.files import atomic_path

OOF_FILE = "oof_predictions.parquet"
FOLD = "fold"


def prediction_columns(manifest: Manifest) -> list[str]:
    """The names `predict` uses: one probability column per class, or `prediction` for a regression."""
    if manifest.classes is None:
        return ["prediction"]
    return [f"probability_{c}" for c in manifest.classes]


def _as_columns(prediction: np.ndarray, n_classes: int) -> np.ndarray:
    values = np.asarray(prediction, dtype=np.float64)
    if n_classes == 0:
        return values.reshape(-1, 1)
    if values.ndim == 1:  # binary: LightGBM keeps the second class's probability
        return np.column_stack([1.0 - values, values])
    return values


def read_prepared_columns(prepared_dir: Path, columns: Sequence[str]) -> pd.DataFrame:
    """Some columns of data.parquet (the fold, IDs, the target), without loading the features."""
    path = find_prepared_dir(Path(prepared_dir)) / DATA_FILE
    return pq.read_table(path, columns=list(dict.fromkeys(columns))).to_pandas()


def fold_predictions(results: Sequence[FoldResult], manifest: Manifest, fold_column: np.ndarray) -> pd.DataFrame | None:
    """`fold` and the prediction columns, one row per prepared row; None if a fold sent no predictions."""
    names = prediction_columns(manifest)
    values = np.full((len(fold_column), len(names)), np.nan)
    fold_of_row = np.full(len(fold_column), -1, dtype=np.int64)
    for result in results:
        predictions = result.extras.validation_predictions if result.extras is not None else None
        if predictions is None:
            return None
        _, valid = manifest.fold_masks(fold_column, result.fold)
        block = _as_columns(predictions, manifest.n_classes)
        if block.shape != (int(valid.sum()), len(names)):
            raise ValueError(f"fold {result.fold} sent predictions of shape {block.shape} for {int(valid.sum())} "
                             f"validation rows and {len(names)} prediction column(s)")
        values[valid] = block
        fold_of_row[valid] = result.fold
    frame = pd.DataFrame(values, columns=names)
    never = fold_of_row < 0
    # A missing fold only where a row was never validated (nullable integers there, plain ones otherwise).
    frame.insert(0, FOLD, pd.arrays.IntegerArray(fold_of_row, never) if never.any() else fold_of_row)
    return frame


def with_row_columns(predictions: pd.DataFrame, manifest: Manifest, prepared_dir: Path) -> pd.DataFrame:
    """The rows' ID columns first, then the target as given, then the fold and the predictions."""
    rows = read_prepared_columns(prepared_dir, [*manifest.id_columns, manifest.target])
    if len(rows) != len(predictions):
        raise ValueError(f"{len(predictions)} out-of-fold predictions for {len(rows)} prepared rows")
    return pd.concat([rows.reset_index(drop=True), predictions.reset_index(drop=True)], axis=1)


def oof_frame(results: Sequence[FoldResult], manifest: Manifest, prepared_dir: Path) -> pd.DataFrame | None:
    """The whole out-of-fold table of one cross-validation, or None if a fold sent no predictions."""
    folds = read_prepared_columns(prepared_dir, [FOLD_COLUMN])[FOLD_COLUMN].to_numpy()
    predictions = fold_predictions(results, manifest, folds)
    return None if predictions is None else with_row_columns(predictions, manifest, prepared_dir)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Under a temporary name, then renamed: a reader never sees half a file, a full disk leaves none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
