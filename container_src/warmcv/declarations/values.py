"""Parsing a whole set of hyperparameters: unknown names, bad values and cross-field rules, all reported at once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from warmcv.declarations import lightgbm_params
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
    # Undeclared LightGBM parameters, under LightGBM's own names, as the text LightGBM parses (checked by it).
    lightgbm_extra: dict[str, str] = field(default_factory=dict)

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
        return {**{k: self.by_name[k] for k in self.explicit}, **self.lightgbm_extra}

    def to_strings(self, names: Any = None) -> dict[str, str]:
        """The SageMaker string form of the explicit values and LightGBM extras (or of `names`),
        parse-round-trippable."""
        chosen = [*sorted(self.explicit), *sorted(self.lightgbm_extra)] if names is None else list(names)
        return {name: self.lightgbm_extra[name] if name in self.lightgbm_extra
                else HYPERPARAMETERS[name].format(self.by_name[name]) for name in chosen}

    def lightgbm_values(self) -> dict[str, Any]:
        """The values passed to LightGBM under their own names, the extras included."""
        return {**{name: self.by_name[name] for name in LIGHTGBM_PARAMETER_NAMES}, **self.lightgbm_extra}


def _unknown_message(unknown: list[str]) -> str:
    parts = []
    for name in unknown:
        close = lightgbm_params.nearest(name, HYPERPARAMETERS)
        parts.append(f"{name!r} (did you mean {close!r}?)" if close else repr(name))
    return ("unknown hyperparameter " + ", ".join(parts) + "; known: the declared ones (warmcv hyperparameters: "
            f"{', '.join(sorted(HYPERPARAMETERS))}) and any LightGBM parameter or alias")


def declared_names(raw: Mapping[str, Any]) -> dict[str, Any]:
    """`raw` with LightGBM aliases of declared hyperparameters under the declared name (num_leaf ->
    num_leaves), so `--set num_leaf=15` leaves the search like `--set num_leaves=15`; other names unchanged
    (parse_hyperparameters judges them)."""
    renamed: dict[str, Any] = {}
    for name, value in raw.items():
        known = name in HYPERPARAMETERS or is_platform_key(name)
        target = name if known else (lightgbm_params.declared_alias(name, HYPERPARAMETERS) or name)
        if target in renamed:
            raise UserInputError(f"hyperparameter {target} is given twice, once under a LightGBM alias ({name})")
        renamed[target] = value
    return renamed


def parse_hyperparameters(raw: Mapping[str, Any]) -> HyperparameterValues:
    """Validate and type a hyperparameter mapping (strings from hyperparameters.json, or typed values).

    Every problem is collected before raising, so a user fixes a bad config in one round trip rather
    than one SageMaker job per typo. A name that is not declared may be any LightGBM parameter or alias
    (warmcv.declarations.lightgbm_params): an alias of a declared one means that one, any other is kept
    under LightGBM's name with its value checked by LightGBM.
    """
    problems: list[str] = []
    values: dict[str, Any] = {name: hp.default for name, hp in HYPERPARAMETERS.items()}
    explicit: set[str] = set()
    extra: dict[str, str] = {}
    unknown: list[str] = []
    given: dict[str, tuple[str, Any]] = {}  # declared name -> (the name it was given under, value)
    for name, value in raw.items():
        if name in HYPERPARAMETERS:
            target = name
        elif is_platform_key(name):
            continue
        elif (alias_of := lightgbm_params.declared_alias(name, HYPERPARAMETERS)) is not None:
            target = alias_of
        elif (canonical := lightgbm_params.lightgbm_name(name)) is None:
            unknown.append(name)
            continue
        elif canonical in lightgbm_params.OWNED_BY_WARMCV:
            problems.append(f"hyperparameter {name}"
                            + (f" (LightGBM's {canonical})" if canonical != name else "")
                            + f" cannot be set: {lightgbm_params.OWNED_BY_WARMCV[canonical]}")
            continue
        else:
            if canonical in extra:
                problems.append(f"hyperparameter {canonical} is given twice (as {name} and another alias)")
            extra[canonical] = lightgbm_params.as_text(value)
            continue
        if target in given and given[target][0] != name:
            problems.append(f"hyperparameter {target} is given twice: as {given[target][0]} and as {name}")
            continue
        given[target] = (name, value)
    if unknown:
        problems.append(_unknown_message(sorted(unknown)))
    for target, (_name, value) in given.items():
        try:
            values[target] = HYPERPARAMETERS[target].parse(value)
        except HyperparameterValueError as error:
            problems.append(str(error))
            continue
        explicit.add(target)
    problems.extend(lightgbm_params.value_problems(extra))
    if not problems:
        problems.extend(_cross_field_problems(values, explicit))
    if problems:
        raise UserInputError("; ".join(problems))
    return HyperparameterValues(values, frozenset(explicit), extra)


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
