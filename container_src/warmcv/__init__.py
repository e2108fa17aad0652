"""warmcv: k-fold cross-validated hyperparameter tuning for LightGBM, warm on SageMaker and on one machine.

The Python API, for notebooks and scripts (the same engine and run folder as `warmcv run`)::

    import warmcv
    result = warmcv.tune(df, target="churn", folds=5, trials=40, out="runs/churn")
    result.best_params, result.best_score, result.cv_results      # a DataFrame, one row per trial
    cv = warmcv.cross_validate(df, target="churn", params={"num_leaves": 63})
    model = warmcv.load_model("runs/churn/model.tar.gz")
    model.predict(new_rows)

Bad input raises `warmcv.UserInputError` (or a subclass) with the message the CLI prints. Everything is
imported lazily: `import warmcv` loads neither LightGBM nor pandas.

Layers, lowest first. A module imports only from its own layer or a lower one; tests/unit/test_layers.py
checks every import, those inside functions included:

    foundation  errors interrupts files clock logs openmp contract declarations settings training_service
    data        data model examples
    cv          cv
    runners     aws runners tracking
    modes       modes tuning serving
    simulation  simulation
    api         launcher api
    cli         cli
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "tune": "warmcv.api.tune", "TuneResult": "warmcv.api.tune",
    "cross_validate": "warmcv.api.crossval", "CrossValidationResult": "warmcv.api.crossval",
    "load_model": "warmcv.api.models", "Model": "warmcv.api.models", "load_example": "warmcv.examples",
    "WarmcvError": "warmcv.errors", "UserInputError": "warmcv.errors", "FoldFailed": "warmcv.errors",
    "StopRequested": "warmcv.errors",
}
__all__ = [
    "CrossValidationResult", "FoldFailed", "Model", "StopRequested", "TuneResult", "UserInputError", "WarmcvError",
    "cross_validate", "load_example", "load_model", "tune",
]

if TYPE_CHECKING:
    from warmcv.api.crossval import CrossValidationResult, cross_validate
    from warmcv.api.models import Model, load_model
    from warmcv.api.tune import TuneResult, tune
    from warmcv.errors import FoldFailed, StopRequested, UserInputError, WarmcvError
    from warmcv.examples import load_example


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'warmcv' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
