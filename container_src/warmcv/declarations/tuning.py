"""What a tuner searches, and what it holds fixed, when the user says nothing. Derived from the catalog.

Two choices differ from "every tunable hyperparameter":
- num_boost_round is fixed high and early stopping picks each fold's round count: searching the
  round count as well spends trials on what early stopping finds for free, and the final fit takes
  the folds' mean best iteration.
- dataset-level hyperparameters (max_bin) are left out: a new value re-bins every fold, so searching
  one would rebuild each fold's cached LightGBM Dataset on nearly every trial. Add it back with an
  override (`max_bin=63:511:log`) when binning matters more than speed.
"""

from __future__ import annotations

from warmcv.declarations.catalog import DATASET_LEVEL, HYPERPARAMETERS, TUNABLE

# Held fixed unless the user sets or searches them; validated against the catalog at import.
TUNING_FIXED: dict[str, str] = {"num_boost_round": "1000", "early_stopping_rounds": "50"}

TUNING_SEARCHED: tuple[str, ...] = tuple(n for n in TUNABLE if n not in TUNING_FIXED and n not in DATASET_LEVEL)

for _name, _value in TUNING_FIXED.items():
    HYPERPARAMETERS[_name].parse(_value)
