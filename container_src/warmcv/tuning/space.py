"""The search space as Optuna sees it, and the samplers `warmcv run` offers.

The space itself comes from the declarations (`build_search_space`); this module only translates it,
so a range can never differ between the local tuner and the SageMaker tuner.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from typing import Any

from warmcv.declarations import HYPERPARAMETERS, TUNING_SEARCHED, SearchSpace, build_search_space
from warmcv.declarations.search_space import parse_override
from warmcv.errors import UserInputError
from warmcv.settings.choices import SAMPLERS


def resolve_space(overrides: Iterable[str] = (), exclude: Iterable[str] = (),
                  fixed: Iterable[str] = ()) -> SearchSpace:
    """The default local space minus `exclude` and anything the user fixed, plus the overrides.

    A hyperparameter given a fixed value (`--set num_leaves=63`) leaves the default space; one that is
    both fixed and explicitly searched is a contradiction and is reported as such.
    """
    overrides = list(overrides)
    exclude, fixed = set(exclude), set(fixed)
    unknown = sorted(n for n in exclude if n not in HYPERPARAMETERS)
    if unknown:
        raise UserInputError(f"cannot exclude unknown hyperparameter(s) {', '.join(unknown)} from the search")
    searched = {parse_override(text).name for text in overrides}
    clash = sorted(searched & fixed)
    if clash:
        raise UserInputError(
            f"hyperparameters {', '.join(clash)} are both fixed (--set) and searched (--search); pick one")
    clash = sorted(searched & exclude)
    if clash:
        raise UserInputError(f"hyperparameters {', '.join(clash)} are both excluded and searched; pick one")
    names = [n for n in TUNING_SEARCHED if n not in exclude and n not in fixed]
    space = build_search_space(names, overrides)
    if not space:
        raise UserInputError("the search space is empty: every hyperparameter is fixed or excluded; "
                             "use `warmcv cv` to cross-validate one fixed combination")
    return space


def distributions(space: SearchSpace) -> dict[str, Any]:
    """Optuna distributions, one per dimension (log scaling where the declaration or override says so)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    result: dict[str, Any] = {}
    for name, dim in sorted(space.items()):
        if dim.choices is not None:
            result[name] = CategoricalDistribution(list(dim.choices))
            continue
        assert dim.range is not None
        if dim.range.scaling == "ReverseLogarithmic":
            raise UserInputError(
                f"search range of {name}: ReverseLogarithmic scaling exists only on SageMaker; "
                "use log or linear locally"
            )
        log = dim.range.scaling == "Logarithmic"
        if dim.is_integer:
            result[name] = IntDistribution(int(dim.range.low), int(dim.range.high), log=log)
        else:
            result[name] = FloatDistribution(float(dim.range.low), float(dim.range.high), log=log)
    return result


def as_hyperparameters(params: Mapping[str, Any]) -> dict[str, str]:
    """A trial's sampled values in the string form every mode takes (the declarations format them)."""
    return {name: HYPERPARAMETERS[name].format(value) for name, value in params.items()}


def describe(space: SearchSpace) -> dict[str, dict[str, Any]]:
    """JSON-ready description of the space, for run.json and report.json."""
    out: dict[str, dict[str, Any]] = {}
    for name, dim in sorted(space.items()):
        if dim.choices is not None:
            out[name] = {"choices": list(dim.choices)}
        else:
            assert dim.range is not None
            out[name] = {"low": dim.range.low, "high": dim.range.high, "scaling": dim.range.scaling}
    return out


def space_from_description(described: Mapping[str, Mapping[str, Any]]) -> SearchSpace:
    """Rebuild a space saved by `describe` (for --resume), validating it against the declarations again."""
    overrides = []
    for name, spec in described.items():
        if "choices" in spec:
            overrides.append(f"{name}={','.join(spec['choices'])}")
        else:
            scaling = {"Logarithmic": "log", "Linear": "linear", "Auto": "auto"}.get(spec["scaling"], spec["scaling"])
            hp = HYPERPARAMETERS[name]
            overrides.append(f"{name}={hp.format(spec['low'])}:{hp.format(spec['high'])}:{scaling}")
    return build_search_space([], overrides)


def check_sampler(name: str) -> str:
    """Fail before any work if the sampler cannot run here. GP needs PyTorch, which warmcv does not install."""
    if name not in SAMPLERS:
        raise UserInputError(f"sampler {name!r} is not one of {', '.join(SAMPLERS)}")
    if name == "gp" and importlib.util.find_spec("torch") is None:
        raise UserInputError(
            "--sampler gp uses Optuna's GPSampler, which needs PyTorch; it is not installed. Install it "
            "into this environment (pip install torch; the CPU build is enough) or use --sampler tpe"
        )
    return name


def make_sampler(name: str, seed: int) -> Any:
    """A seeded Optuna sampler."""
    import optuna

    check_sampler(name)
    if name == "tpe":
        # constant_liar (the default) keeps parallel trials from all proposing the same point.
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.GPSampler(seed=seed)
