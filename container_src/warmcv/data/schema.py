"""The feature schema fixed at preparation time and applied identically by every fold, the final model and serving.

LightGBM maps a pandas category to its integer code, so a category list that differs between training
and prediction silently scrambles a feature. The schema records the categories once (sorted, as
strings) and `apply` rebuilds every categorical column against exactly that list.

It also holds the two things about a column that must stay the same wherever the model is used:
- the name LightGBM trains under. LightGBM refuses names with JSON's special characters
  (`" , : [ ] { }`, so pandas' `Unnamed: 0`), rewrites spaces to `_` (so `a b` beside `a_b` is a
  duplicate) and cuts names at line breaks. Such a column trains under a safe name of its own and is
  called by its own name everywhere else: in the data, the manifest, serving's column checks and
  messages. The mapping lives here because everything that hands LightGBM a frame goes through `apply`.
- the text that a numeric column's preparation read as missing (a stray `oops` or `?` among numbers),
  so that prediction reads the same text the same way instead of refusing it.
"""

from __future__ import annotations

import logging
import re
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
# What LightGBM will not keep as it is in a feature name: JSON's special characters (its CheckAllowedJSON,
# "Do not support special JSON characters in feature name"), whitespace (spaces become "_", line breaks
# split the model file's name list) and NUL (the C API ends the name there).
_LIGHTGBM_UNSAFE = re.compile(r'[",:\[\]{}\s\x00]')
# Around a token that means missing, as pyarrow's CSV reader trims around numbers.
TOKEN_WHITESPACE = " \t"


def lightgbm_safe(name: str) -> bool:
    return bool(name) and not _LIGHTGBM_UNSAFE.search(name)


def lightgbm_names(names: Sequence[str]) -> list[str]:
    """A name LightGBM accepts unchanged for each of `names`: the name itself where it can, else a variant
    with `_` for each refused character, numbered past every other name so no two collide."""
    taken = {name for name in names if lightgbm_safe(name)}
    out = []
    for name in names:
        if lightgbm_safe(name):
            out.append(name)
            continue
        base = _LIGHTGBM_UNSAFE.sub("_", name) or "column"
        candidate, number = base, 2
        while candidate in taken:
            candidate, number = f"{base}_{number}", number + 1
        taken.add(candidate)
        out.append(candidate)
    return out


@dataclass(frozen=True)
class Feature:
    name: str
    kind: FeatureKind
    dtype: str
    categories: tuple[str, ...] = ()
    # Text read as missing in this numeric column (stray tokens among its numbers), without surrounding blanks.
    missing_values: tuple[str, ...] = ()
    # The name LightGBM knows the feature by, where it differs from `name` (see lightgbm_names).
    training_name: str = ""

    @property
    def lightgbm_name(self) -> str:
        return self.training_name or self.name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "dtype": self.dtype}
        if self.kind == "categorical":
            out["categories"] = list(self.categories)
        if self.missing_values:
            out["missing_values"] = list(self.missing_values)
        if self.training_name:
            out["lightgbm_name"] = self.training_name
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Feature:
        return cls(data["name"], data["kind"], data["dtype"], tuple(data.get("categories", ())),
                   tuple(data.get("missing_values", ())), data.get("lightgbm_name", ""))


def as_category_strings(values: pd.Series) -> pd.Series:
    """Category labels as strings (missing stays missing); integral floats print without '.0' so 5 and 5.0 agree.

    Each value is converted on its own, never depending on its neighbours, so that a batch of rows, the
    whole column, and the rows sent for prediction give every value the same label.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        # Convert only the (few) categories, then index by code: fast on prepared data, which is already categorical.
        labels = as_category_strings(pd.Series(values.cat.categories)).to_numpy(dtype=object)
        codes = values.cat.codes.to_numpy()
        out = np.where(codes >= 0, labels[np.maximum(codes, 0)] if len(labels) else None, None)
        return pd.Series(out, index=values.index, dtype=object)
    present = values.notna()
    if pd.api.types.is_float_dtype(values):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            integral = present.to_numpy() & (np.mod(numbers, 1) == 0) & (np.abs(numbers) < 2.0**63)
        labels = values.astype(str).to_numpy(dtype=object)
        labels[integral] = numbers[integral].astype(np.int64).astype(str)
        return pd.Series(labels, index=values.index).astype(str).where(present, None)
    return values.astype(str).where(present, None)


def is_numeric_column(values: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)) and not isinstance(
        values.dtype, pd.CategoricalDtype
    )


@dataclass(frozen=True)
class FeatureSchema:
    features: tuple[Feature, ...]

    def __post_init__(self) -> None:
        # Every schema trains under names LightGBM accepts, however it was built.
        safe = lightgbm_names(self.names)
        if any(f.lightgbm_name != n for f, n in zip(self.features, safe, strict=True)):
            features = tuple(Feature(f.name, f.kind, f.dtype, f.categories, f.missing_values,
                                     "" if n == f.name else n) for f, n in zip(self.features, safe, strict=True))
            object.__setattr__(self, "features", features)

    @property
    def names(self) -> list[str]:
        """The features' own names, as in the data: what users see and send."""
        return [f.name for f in self.features]

    @property
    def lightgbm_names(self) -> list[str]:
        """The names LightGBM trains under (the columns `apply` returns), in training order."""
        return [f.lightgbm_name for f in self.features]

    def user_name(self, lightgbm_name: str) -> str:
        """The feature's own name for a name LightGBM reports (a model's feature_name(), importances)."""
        for feature in self.features:
            if feature.lightgbm_name == lightgbm_name:
                return feature.name
        raise KeyError(lightgbm_name)

    @property
    def categorical_names(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @classmethod
    def infer(cls, frame: pd.DataFrame, columns: Sequence[str],
              categorical: Sequence[str] | None = None) -> FeatureSchema:
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
                features.append(categorical_feature(name, str(values.dtype), as_category_strings(values).dropna()))
            else:
                features.append(Feature(name, "numeric", str(values.dtype)))
        return cls(tuple(features))

    def apply(self, frame: pd.DataFrame, context: str = "input",
              names: Literal["lightgbm", "user"] = "lightgbm") -> pd.DataFrame:
        """The features of `frame` in training order and types, named for LightGBM (or as the user's); extra
        columns are dropped.

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
            key = feature.lightgbm_name if names == "lightgbm" else feature.name
            if feature.kind == "categorical":
                if isinstance(values.dtype, pd.CategoricalDtype) and list(values.cat.categories) == list(
                        feature.categories):
                    columns[key] = values.array  # already in the schema's categories (prepared data): no work
                    continue
                labels = as_category_strings(values)
                known = labels.isin(feature.categories)
                unseen = int((labels.notna() & ~known).sum())
                columns[key] = pd.Categorical(labels.where(known), categories=list(feature.categories))
                if unseen:
                    log.info("%s: column %r has %d value(s) not seen in training; treated as missing",
                             context, feature.name, unseen)
            else:
                columns[key] = _numeric(values, feature, context)
        return pd.DataFrame(columns, index=frame.index)

    def to_list(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.features]

    @classmethod
    def from_list(cls, data: list[dict[str, Any]]) -> FeatureSchema:
        return cls(tuple(Feature.from_dict(d) for d in data))


def categorical_feature(name: str, dtype: str, labels: pd.Series) -> Feature:
    """A categorical feature whose categories are the distinct non-missing `labels` (strings), sorted."""
    categories = tuple(sorted(pd.unique(labels.dropna())))
    if len(categories) > HIGH_CARDINALITY:
        log.warning("column %r has %d distinct values; if it is an ID, drop it", name, len(categories))
    return Feature(name, "categorical", dtype, categories)


def _numeric(values: pd.Series, feature: Feature, context: str) -> pd.Series:
    name = feature.name
    if is_numeric_column(values):
        return values.astype(np.float64) if pd.api.types.is_bool_dtype(values) else values
    if feature.missing_values:
        text = values.astype(str).str.strip(TOKEN_WHITESPACE)
        values = values.where(~(values.notna() & text.isin(feature.missing_values)))
    converted = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & converted.isna() & (values.astype(str).str.strip() != "")
    if bad.any():
        first = bad.idxmax()
        raise UserInputError(
            f"{context}: column {name!r} must be numeric but holds {values[first]!r} (row {first}); "
            f"{int(bad.sum())} value(s) are not numbers"
        )
    return converted.astype(np.float64)
