"""The feature schema fixed at preparation time and applied identically by every fold, the final model and serving.

LightGBM maps a pandas category to its integer code, so a category list that differs between training
and prediction silently scrambles a feature. The schema records the categories once (sorted, as
strings) and `apply` rebuilds every categorical column against exactly that list.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from warmcv.errors import UserInputError

log = logging.getLogger(__name__)

FeatureKind = Literal["numeric", "categorical"]
# More distinct values than this in a string column usually means an ID or free text, not a category.
HIGH_CARDINALITY = 10_000


@dataclass(frozen=True)
class Feature:
    name: str
    kind: FeatureKind
    dtype: str
    categories: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "dtype": self.dtype}
        if self.kind == "categorical":
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Feature:
        return cls(data["name"], data["kind"], data["dtype"], tuple(data.get("categories", ())))


def _as_category_strings(values: pd.Series) -> pd.Series:
    """Category labels as strings (missing stays missing); integral floats print without '.0' so 5 and 5.0 agree."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        # Convert only the (few) categories, then index by code: fast on prepared data, which is already categorical.
        labels = _as_category_strings(pd.Series(values.cat.categories)).to_numpy(dtype=object)
        codes = values.cat.codes.to_numpy()
        out = np.where(codes >= 0, labels[np.maximum(codes, 0)] if len(labels) else None, None)
        return pd.Series(out, index=values.index, dtype=object)
    present = values.notna()
    if pd.api.types.is_float_dtype(values) and bool(np.all(np.mod(values[present], 1) == 0)):
        values = values.astype("Int64")
    return values.astype(str).where(present, None)


def is_numeric_column(values: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)) and not isinstance(
        values.dtype, pd.CategoricalDtype
    )


@dataclass(frozen=True)
class FeatureSchema:
    features: tuple[Feature, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def categorical_names(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @classmethod
    def infer(cls, frame: pd.DataFrame, columns: Sequence[str], categorical: Sequence[str] | None = None) -> FeatureSchema:
        """Numeric columns stay numeric; string, object and category columns (or `categorical`) become categories."""
        if categorical is not None:
            unknown = [c for c in categorical if c not in columns]
            if unknown:
                raise UserInputError(f"categorical columns not among the features: {', '.join(unknown)}")
        features = []
        for name in columns:
            values = frame[name]
            if pd.api.types.is_datetime64_any_dtype(values) or isinstance(values.dtype, pd.PeriodDtype):
                raise UserInputError(
                    f"column {name!r} holds dates ({values.dtype}); convert it to numbers (e.g. day of week) "
                    "or drop it, or name it as the ordering column for a time-series split"
                )
            as_categorical = name in categorical if categorical is not None else not is_numeric_column(values)
            if as_categorical:
                labels = _as_category_strings(values).dropna()
                categories = tuple(sorted(labels.unique()))
                if len(categories) > HIGH_CARDINALITY:
                    log.warning("column %r has %d distinct values; if it is an ID, drop it", name, len(categories))
                features.append(Feature(name, "categorical", str(values.dtype), categories))
            else:
                features.append(Feature(name, "numeric", str(values.dtype)))
        return cls(tuple(features))

    def apply(self, frame: pd.DataFrame, context: str = "input") -> pd.DataFrame:
        """The features of `frame` in training order and types; extra columns are dropped.

        Raises a UserInputError naming each missing column, or a numeric column with non-numbers.
        Categories never seen in training become missing values (LightGBM's 'other' branch).
        """
        missing = [name for name in self.names if name not in frame.columns]
        if missing:
            raise UserInputError(
                f"{context}: missing column(s) {', '.join(map(repr, missing))} that the model was trained on; "
                f"expected columns: {', '.join(self.names)}"
            )
        columns: dict[str, Any] = {}
        for feature in self.features:
            values = frame[feature.name]
            if feature.kind == "categorical":
                labels = _as_category_strings(values)
                # Unseen values become missing explicitly: pandas deprecates passing them to Categorical.
                known = labels.isin(feature.categories)
                columns[feature.name] = pd.Categorical(labels.where(known, None), categories=list(feature.categories))
                unseen = int((labels.notna() & ~known).sum())
                if unseen:
                    log.info("%s: column %r has %d value(s) not seen in training; treated as missing",
                             context, feature.name, unseen)
            else:
                columns[feature.name] = _numeric(values, feature.name, context)
        return pd.DataFrame(columns, index=frame.index)

    def to_list(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.features]

    @classmethod
    def from_list(cls, data: list[dict[str, Any]]) -> FeatureSchema:
        return cls(tuple(Feature.from_dict(d) for d in data))


def _numeric(values: pd.Series, name: str, context: str) -> pd.Series:
    if is_numeric_column(values):
        return values.astype(np.float64) if pd.api.types.is_bool_dtype(values) else values
    converted = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & converted.isna() & (values.astype(str).str.strip() != "")
    if bad.any():
        first = bad.idxmax()
        raise UserInputError(
            f"{context}: column {name!r} must be numeric but holds {values[first]!r} (row {first}); "
            f"{int(bad.sum())} value(s) are not numbers"
        )
    return converted.astype(np.float64)
