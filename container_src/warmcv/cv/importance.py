"""Feature importance of one cross-validation: each fold model's gain and split count, and their mean and
spread across folds (a feature that matters in one fold only shows as a large std).

The folds report importance under the features' own names (the schema's user names, not the safe names
LightGBM may have trained under), so this is what the user reads in report.json, the plot and the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from warmcv.cv.folds import FoldResult

IMPORTANCE_TYPES = ("gain", "split")


def importance_summary(results: Sequence[FoldResult]) -> dict[str, Any] | None:
    """{"folds": [fold numbers], "features": [{"feature", "gain": {mean, std, folds}, "split": {...}}, ...]},
    features by mean gain (largest first, ties by name); None if a fold did not report its importances."""
    ordered = sorted(results, key=lambda r: r.fold)
    tables = [r.extras.feature_importance if r.extras is not None else {} for r in ordered]
    if not ordered or any(not all(kind in table for kind in IMPORTANCE_TYPES) for table in tables):
        return None
    names = list(dict.fromkeys(name for table in tables for name in table["gain"]))
    features = []
    for name in names:
        entry: dict[str, Any] = {"feature": name}
        for kind in IMPORTANCE_TYPES:
            values = np.array([float(table[kind].get(name, 0.0)) for table in tables])
            # Population std (ddof=0), as for the CV scores.
            entry[kind] = {"mean": float(values.mean()), "std": float(values.std()), "folds": values.tolist()}
        features.append(entry)
    features.sort(key=lambda f: (-f["gain"]["mean"], f["feature"]))
    return {"folds": [r.fold for r in ordered], "features": features}
