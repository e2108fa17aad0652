"""The search space and what a tuner needs, emitted from the declarations.

Both tuners consume this: the SageMaker launcher turns `SearchSpace` into `ParameterRanges` (the
CreateHyperParameterTuningJob API shape returned here, which the SDK mirrors), the local tuner turns
it into Optuna distributions. Overrides ("num_leaves=16:128:log", "objective=binary,multiclass") are
validated against the same declarations, so an override can never leave the valid range.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from warmcv.declarations.catalog import HYPERPARAMETERS, TUNABLE
from warmcv.declarations.metrics import COORDINATOR_METRICS, SCORING_METRICS, VALIDATION_SCORE, LogMetric
from warmcv.declarations.types import (
    CategoricalHyperparameter,
    HyperparameterValueError,
    IntegerHyperparameter,
    NumericHyperparameter,
    TuningRange,
)
from warmcv.declarations.values import parse_hyperparameters
from warmcv.errors import UserInputError

_SCALING_WORDS = {"log": "Logarithmic", "linear": "Linear", "auto": "Auto", "reverselog": "ReverseLogarithmic"}


@dataclass(frozen=True)
class SearchDimension:
    """One tuned hyperparameter: a numeric range or a set of categorical choices."""

    name: str
    range: TuningRange | None = None
    choices: tuple[str, ...] | None = None

    @property
    def is_integer(self) -> bool:
        return isinstance(HYPERPARAMETERS[self.name], IntegerHyperparameter)


SearchSpace = dict[str, SearchDimension]


def default_search_space(names: Iterable[str] | None = None) -> SearchSpace:
    """The declared default tuning ranges of `names` (all tunables if None)."""
    space: SearchSpace = {}
    for name in TUNABLE if names is None else names:
        hp = HYPERPARAMETERS.get(name)
        if hp is None or not getattr(hp, "tunable", False):
            raise UserInputError(
                f"{name!r} cannot be tuned by default; tunable hyperparameters: {', '.join(TUNABLE)}"
            )
        if isinstance(hp, NumericHyperparameter) and hp.tuning_choices is not None:
            space[name] = SearchDimension(name, choices=tuple(hp.format(c) for c in hp.tuning_choices))
        elif isinstance(hp, NumericHyperparameter):
            space[name] = SearchDimension(name, range=hp.tuning)
        elif isinstance(hp, CategoricalHyperparameter):
            space[name] = SearchDimension(name, choices=hp.tuning_choices)
    return space


def parse_override(text: str) -> SearchDimension:
    """`name=low:high[:log|linear]` for a range, `name=a,b,c` for choices; checked against the declaration."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not spec.strip():
        raise UserInputError(f"search override {text!r}: expected name=low:high[:log] or name=a,b,c")
    hp = HYPERPARAMETERS.get(name)
    if hp is None:
        raise UserInputError(f"search override {text!r}: unknown hyperparameter {name!r}")
    try:
        if isinstance(hp, NumericHyperparameter) and "," in spec and ":" not in spec:
            # Listed values of a number (what SageMaker's Grid strategy needs): each one must be valid.
            values = tuple(dict.fromkeys(hp.format(hp.parse(v.strip())) for v in spec.split(",") if v.strip()))
            return SearchDimension(name, choices=values)
        if isinstance(hp, NumericHyperparameter):
            parts = [p.strip() for p in spec.split(":")]
            if len(parts) not in (2, 3):
                raise HyperparameterValueError(f"expected low:high[:log|linear], got {spec!r}")
            scaling = "Auto"
            if len(parts) == 3:
                if parts[2].lower() not in _SCALING_WORDS:
                    raise HyperparameterValueError(f"unknown scaling {parts[2]!r}; use log or linear")
                scaling = _SCALING_WORDS[parts[2].lower()]
            tuning = TuningRange(hp.parse(parts[0]), hp.parse(parts[1]), scaling)  # type: ignore[arg-type]
            hp.check_tuning_range(tuning)
            return SearchDimension(name, range=tuning)
        if isinstance(hp, CategoricalHyperparameter):
            choices = tuple(dict.fromkeys(hp.parse(c) for c in spec.split(",")))
            return SearchDimension(name, choices=choices)
    except HyperparameterValueError as error:
        raise UserInputError(f"search override {text!r}: {error}") from None
    raise UserInputError(f"search override {text!r}: {name} is a {type(hp).__name__} and cannot be searched")


def build_search_space(names: Iterable[str] | None = None, overrides: Iterable[str] = ()) -> SearchSpace:
    """Default ranges for `names`, then overrides (which may also add hyperparameters to the space)."""
    space = default_search_space(names)
    for text in overrides:
        dimension = parse_override(text)
        space[dimension.name] = dimension
    return space


def sagemaker_parameter_ranges(space: Mapping[str, SearchDimension]) -> dict[str, list[dict[str, Any]]]:
    """`ParameterRanges` exactly as CreateHyperParameterTuningJob takes it (all values strings)."""
    ranges: dict[str, list[dict[str, Any]]] = {
        "IntegerParameterRanges": [], "ContinuousParameterRanges": [], "CategoricalParameterRanges": [],
    }
    for name in sorted(space):
        dim = space[name]
        hp = HYPERPARAMETERS[name]
        if dim.choices is not None:
            ranges["CategoricalParameterRanges"].append({"Name": name, "Values": list(dim.choices)})
            continue
        assert dim.range is not None
        key = "IntegerParameterRanges" if dim.is_integer else "ContinuousParameterRanges"
        ranges[key].append({
            "Name": name,
            "MinValue": hp.format(dim.range.low),
            "MaxValue": hp.format(dim.range.high),
            "ScalingType": dim.range.scaling,
        })
    return ranges


def static_hyperparameters(values: Mapping[str, Any], space: Mapping[str, SearchDimension] = {}) -> dict[str, str]:
    """Validated string hyperparameters for a job; names that are being tuned may not also be static."""
    clash = sorted(set(values) & set(space))
    if clash:
        raise UserInputError(f"hyperparameters {', '.join(clash)} are both static and tuned; pick one")
    return parse_hyperparameters(values).to_strings()


def metric_definitions(metrics: Iterable[LogMetric] = COORDINATOR_METRICS) -> list[dict[str, str]]:
    return [m.definition() for m in metrics]


def tuning_objective(metric: str) -> dict[str, str]:
    """`HyperParameterTuningJobObjective`: the coordinator's average validation score, in the metric's direction."""
    if metric not in SCORING_METRICS:
        raise UserInputError(
            f"metric {metric!r} is not a scoring metric; choose one of {', '.join(SCORING_METRICS)}"
        )
    return {"Type": SCORING_METRICS[metric].direction, "MetricName": VALIDATION_SCORE.name}
