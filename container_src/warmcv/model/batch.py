"""Batch prediction of a table file with a saved model: what `warmcv predict` and `warmcv run --predict` write."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from warmcv.data.io import read_table
from warmcv.errors import UserInputError
from warmcv.files import atomic_path
from warmcv.model.artifacts import OutputKind, TrainedModel


def with_id_columns(predictions: pd.DataFrame, rows: pd.DataFrame, id_columns: list[str], source: str) -> pd.DataFrame:
    """The rows' ID columns first, then the predictions: what a prediction is joined back by.

    A model trained with ID columns needs them in what it predicts: without them the predictions could be
    matched to their rows only by position, which is what the IDs were declared to avoid."""
    if not id_columns:
        return predictions
    missing = [name for name in id_columns if name not in rows.columns]
    if missing:
        raise UserInputError(
            f"{source}: missing ID column(s) {', '.join(map(repr, missing))}; the model was trained with them as "
            "--id-column and writes them first in its predictions, so each prediction can be joined back to its row")
    clash = [name for name in id_columns if name in predictions.columns]
    if clash:
        raise UserInputError(f"ID column {clash[0]!r} has the name of a prediction column; rename it")
    return pd.concat([rows[id_columns], predictions], axis=1)


def predict_file(model: TrainedModel, source: Path | str, destination: Path | str,
                 output: OutputKind | None = None) -> int:
    """Predict every row of `source` (CSV/Parquet file or folder) into the CSV `destination`; returns the row count.

    The model's ID columns (if it has any) come first, in the input's order. Written under a temporary name and
    renamed, so a failed prediction never leaves a partial file that looks finished.
    """
    destination = Path(destination)
    rows = read_table(Path(source))
    predictions = with_id_columns(model.predict(rows, output=output), rows, model.metadata.id_columns, str(source))
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(destination) as tmp:
        predictions.to_csv(tmp, index=False)
    return len(predictions)
