"""Batch prediction of a table file with a saved model: what `warmcv predict` and `warmcv run --predict` write."""

from __future__ import annotations

from pathlib import Path

from warmcv.data.io import read_table
from warmcv.files import atomic_path
from warmcv.model.artifacts import OutputKind, TrainedModel


def predict_file(model: TrainedModel, source: Path | str, destination: Path | str,
                 output: OutputKind | None = None) -> int:
    """Predict every row of `source` (CSV/Parquet file or folder) into the CSV `destination`; returns the row count.

    Written under a temporary name and renamed, so a failed prediction never leaves a partial file that
    looks finished.
    """
    destination = Path(destination)
    predictions = model.predict(read_table(Path(source)), output=output)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(destination) as tmp:
        predictions.to_csv(tmp, index=False)
    return len(predictions)
