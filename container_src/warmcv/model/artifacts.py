"""The model directory: LightGBM's own text format plus a JSON of everything needed to use it safely.

No pickle anywhere: a model.tar.gz from this image can be loaded by any LightGBM 4 (any language),
and `model.json` carries the feature schema, classes and scores so serving can check its input
and a registry can show the CV score without loading the model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

import warmcv
from warmcv.data.schema import FeatureSchema
from warmcv.errors import UserInputError
from warmcv.files import atomic_path

MODEL_FILE = "model.txt"
METADATA_FILE = "model.json"
METADATA_VERSION = 1


@dataclass
class ModelMetadata:
    task: str
    objective: str
    metric: str
    target: str
    classes: list[Any] | None
    features: list[dict[str, Any]]
    params: dict[str, Any]
    hyperparameters: dict[str, str]
    fold: int | str
    best_iteration: int
    train_metrics: dict[str, float]
    validation_metrics: dict[str, float]
    data_sha256: str
    cross_validation: dict[str, Any] | None = None
    # Row identifiers of the training data (--id-column): never features; batch predictions carry them first.
    id_columns: list[str] = field(default_factory=list)
    format_version: int = METADATA_VERSION
    warmcv_version: str = field(default_factory=lambda: warmcv.__version__)

    @property
    def schema(self) -> FeatureSchema:
        return FeatureSchema.from_list(self.features)


def _write_atomically(path: Path, write) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def save_model(directory: Path, booster: lgb.Booster, metadata: ModelMetadata) -> None:
    """Write model.txt then model.json (the marker of a complete model) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / METADATA_FILE).unlink(missing_ok=True)
    _write_atomically(directory / MODEL_FILE,
                      lambda p: booster.save_model(str(p), num_iteration=metadata.best_iteration))
    _write_atomically(directory / METADATA_FILE,
                      lambda p: p.write_text(json.dumps(asdict(metadata), indent=2, sort_keys=True, default=_jsonable)))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_metadata(directory: Path | str) -> ModelMetadata:
    """The model's metadata without loading the booster: cheap, and safe before forking server workers."""
    directory = Path(directory)
    meta_path, model_path = directory / METADATA_FILE, directory / MODEL_FILE
    if not meta_path.is_file() or not model_path.is_file():
        raise UserInputError(
            f"no warmcv model in {directory}: expected {MODEL_FILE} and {METADATA_FILE} (the output of mode=worker)"
        )
    try:
        return ModelMetadata(**json.loads(meta_path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as error:
        raise UserInputError(f"cannot load the model in {directory}: {METADATA_FILE} is not valid: {error}") from None


OutputKind = Literal["probabilities", "labels", "values"]


@dataclass
class TrainedModel:
    booster: lgb.Booster
    metadata: ModelMetadata

    @classmethod
    def load(cls, directory: Path | str) -> TrainedModel:
        directory = Path(directory)
        metadata = load_metadata(directory)
        try:
            booster = lgb.Booster(model_file=str(directory / MODEL_FILE))
        except lgb.basic.LightGBMError as error:
            raise UserInputError(f"cannot load the model in {directory}: {error}") from None
        return cls(booster, metadata)

    def features(self, frame: pd.DataFrame, context: str = "prediction input") -> pd.DataFrame:
        """The input's features checked against and converted to the training schema."""
        return self.metadata.schema.apply(frame, context=context)

    def predict(self, frame: pd.DataFrame, output: OutputKind | None = None,
                num_threads: int | None = None) -> pd.DataFrame:
        """Predictions as a table: one probability column per class, or a label / value column.

        `num_threads` caps LightGBM's threads for this call (a server with several worker processes
        gives each its share of the cores instead of letting every one use all of them).
        """
        extra: dict[str, Any] = {"num_threads": num_threads} if num_threads else {}
        raw = np.asarray(self.booster.predict(self.features(frame), **extra))
        classes = self.metadata.classes
        if classes is None:
            return pd.DataFrame({"prediction": raw}, index=frame.index)
        probabilities = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
        if (output or "probabilities") == "labels":
            # argmax breaks ties towards the first class, as LGBMClassifier.predict does.
            return pd.DataFrame({"prediction": np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)]},
                                index=frame.index)
        return pd.DataFrame(probabilities, columns=[f"probability_{c}" for c in classes], index=frame.index)
