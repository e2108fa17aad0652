"""Parsing a whole set of hyperparameters: unknown names, bad values and cross-field rules, all reported at once."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from warmcv.declarations.catalog import DRIVER_ONLY, HYPERPARAMETERS, LIGHTGBM_PARAMETER_NAMES, is_platform_key
from warmcv.declarations.types import HyperparameterValueError
from warmcv.errors import UserInputError


@dataclass(frozen=True)
class HyperparameterValues(Mapping[str, Any]):
    """Typed values for every declared hyperparameter (defaults filled in).

    `explicit` remembers which names the caller actually set: a coordinator forwards only those to its
    fold jobs, so a fold job's hyperparameters read like the trial's, not like a dump of defaults.
    """

    # Not named `values`: that would hide Mapping.values(), so `hps.values()` would call a dict.
    by_name: dict[str, Any]
    explicit: frozenset[str] = field(default_factory=frozenset)

    def __getitem__(self, key: str) -> Any:
        return self.by_name[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)

    def replace(self, **changes: Any) -> HyperparameterValues:
        """A copy with some values changed (each one validated) and marked explicit."""
        return parse_hyperparameters({**self.explicit_values(), **changes})

    def explicit_values(self) -> dict[str, Any]:
        return {k: self.by_name[k] for k in self.explicit}

    def to_strings(self, names: Any = None) -> dict[str, str]:
        """The SageMaker string form of the explicit values (or of `names`), parse-round-trippable."""
        chosen = sorted(self.explicit) if names is None else list(names)
        return {name: HYPERPARAMETERS[name].format(self.by_name[name]) for name in chosen}

    def lightgbm_values(self) -> dict[str, Any]:
        """The values passed to LightGBM under their own names."""
        return {name: self.by_name[name] for name in LIGHTGBM_PARAMETER_NAMES}


def _unknown_message(unknown: list[str]) -> str:
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, HYPERPARAMETERS, n=1)
        parts.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    return "unknown hyperparameter " + ", ".join(parts) + f"; known: {', '.join(sorted(HYPERPARAMETERS))}"


def parse_hyperparameters(raw: Mapping[str, Any]) -> HyperparameterValues:
    """Validate and type a hyperparameter mapping (strings from hyperparameters.json, or typed values).

    Every problem is collected before raising, so a user fixes a bad config in one round trip rather
    than one SageMaker job per typo.
    """
    problems: list[str] = []
    values: dict[str, Any] = {name: hp.default for name, hp in HYPERPARAMETERS.items()}
    explicit: set[str] = set()
    unknown = sorted(k for k in raw if k not in HYPERPARAMETERS and not is_platform_key(k))
    if unknown:
        problems.append(_unknown_message(unknown))
    for name, value in raw.items():
        if name not in HYPERPARAMETERS:
            continue
        try:
            values[name] = HYPERPARAMETERS[name].parse(value)
        except HyperparameterValueError as error:
            problems.append(str(error))
            continue
        explicit.add(name)
    if not problems:
        problems.extend(_cross_field_problems(values, explicit))
    if problems:
        raise UserInputError("; ".join(problems))
    return HyperparameterValues(values, frozenset(explicit))


def _cross_field_problems(values: dict[str, Any], explicit: set[str]) -> list[str]:
    problems = []
    if values["mode"] != "worker" and "fold" in explicit and values["fold"] != "all":
        problems.append(
            f"hyperparameter fold={values['fold']!r} is only for mode=worker; "
            f"a {values['mode']} always runs every fold"
        )
    driver_only = sorted(DRIVER_ONLY & explicit)
    if values["mode"] != "driver" and driver_only:
        problems.append(f"hyperparameter(s) {', '.join(driver_only)} are only for mode=driver, "
                        f"not mode={values['mode']}")
    if values["mode"] == "driver" and values["coordinator_trains_fold"]:
        problems.append("hyperparameter coordinator_trains_fold=true is for mode=coordinator: the driver trains no "
                        "fold itself (every fold is a fold job); remove it")
    return problems
