"""`warmcv.load_model`: a trained model from its folder or its model.tar.gz, ready to predict."""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warmcv.errors import UserInputError

if TYPE_CHECKING:
    import pandas as pd

    from warmcv.model.artifacts import ModelMetadata, TrainedModel


class Model:
    """A LightGBM model trained by warmcv, with the schema and classes it was trained with.

    Input columns are checked and converted exactly as serving does (the same categories as in
    training), so a prediction here equals one from `warmcv predict`, batch transform or an endpoint.
    """

    def __init__(self, trained: TrainedModel):
        self._trained = trained

    @property
    def metadata(self) -> ModelMetadata:
        """Task, objective, metric, target, classes, features, parameters and CV result."""
        return self._trained.metadata

    @property
    def booster(self) -> Any:
        """The LightGBM Booster (for SHAP values, tree dumps, importances)."""
        return self._trained.booster

    @property
    def classes(self) -> list[Any] | None:
        """The class labels in probability column order, or None for a regression."""
        return self.metadata.classes

    @property
    def features(self) -> list[str]:
        """The feature columns the model needs, in training order (extra input columns are ignored)."""
        return [f["name"] for f in self.metadata.features]

    def predict(self, data: pd.DataFrame) -> pd.DataFrame:
        """One probability column per class (`probability_<class>`), or a `prediction` column of values."""
        return self._trained.predict(data, output=None)

    def predict_labels(self, data: pd.DataFrame) -> pd.Series:
        """The most probable class of each row (ties go to the first class, as LGBMClassifier does)."""
        if self.classes is None:
            raise UserInputError("predict_labels needs a classification model; this one predicts values: use predict")
        return self._trained.predict(data, output="labels")["prediction"]

    def __repr__(self) -> str:
        m = self.metadata
        return (f"Model(task={m.task!r}, target={m.target!r}, features={len(m.features)}, "
                f"rounds={m.best_iteration}, metric={m.metric!r})")


def load_model(path: str | Path) -> Model:
    """A model from a model folder (model.txt + model.json) or a model.tar.gz in SageMaker's layout."""
    from warmcv.model.artifacts import TrainedModel

    path = Path(path)
    if path.is_dir():
        return Model(TrainedModel.load(path))
    if not path.is_file():
        raise UserInputError(f"{path}: no such model folder or model.tar.gz")
    with tempfile.TemporaryDirectory(prefix="warmcv-model-") as folder:
        try:
            with tarfile.open(path, mode="r:*") as archive:
                archive.extractall(folder, filter="data")
        except (tarfile.TarError, OSError) as error:
            raise UserInputError(f"cannot read {path} as a model archive: {error}") from None
        # The booster is read into memory, so the temporary folder can go.
        return Model(TrainedModel.load(folder))
