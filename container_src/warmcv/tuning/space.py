"""The search space as Optuna sees it, and the samplers `warmcv run` offers.

The space itself comes from the declarations (`build_search_space`); this module only translates it,
so a range can never differ between the local tuner and the SageMaker tuner.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from warmcv.declarations import HYPERPARAMETERS, TUNING_SEARCHED, SearchSpace, TuningRange, build_search_space
from warmcv.declarations.search_space import SearchDimension, parse_override
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


# Default ranges that are fitted to the training rows per fold (when the user did not give a range).
FITTED_TO_DATA = ("min_data_in_leaf", "num_leaves")
# The share of a fold's training rows the largest min_data_in_leaf may ask of a leaf (1/20: a tree can still have
# 20 leaves, or 8 when bagging keeps 40 % of the rows), and the fewest rows per leaf the largest num_leaves implies.
MIN_DATA_SHARE = 20
ROWS_PER_LEAF = 8


def fit_to_data(space: SearchSpace, names: Iterable[str], train_rows: int) -> tuple[SearchSpace, dict[str, Any]]:
    """The space with the default ranges of `names` shrunk to what `train_rows` rows (the smallest fold's
    training set) can use; returns it and what changed, for the report.

    The declared defaults suit tens of thousands of rows. On 142 training rows (wine, 5 folds) a
    min_data_in_leaf of 133 leaves no split at all (a split needs twice that), and most of 8..256 leaves
    cannot exist. So the largest min_data_in_leaf is 1/20 of the rows and the largest num_leaves rows/8,
    each lower bound shrinking with it; from about 4,000 training rows on, the declared ranges stand.
    """
    fitted = dict(space)
    changes: dict[str, Any] = {}
    rules = {"min_data_in_leaf": (lambda: max(2, train_rows // MIN_DATA_SHARE), lambda high: max(1, high // 4)),
             "num_leaves": (lambda: max(4, train_rows // ROWS_PER_LEAF), lambda high: max(2, high // 4))}
    for name in names:
        dimension = space.get(name)
        if name not in rules or dimension is None or dimension.range is None:
            continue
        declared = dimension.range
        high_rule, low_rule = rules[name]
        high = int(min(declared.high, high_rule()))
        low = int(min(declared.low, low_rule(high)))
        if (low, high) == (declared.low, declared.high):
            continue
        fitted[name] = SearchDimension(name, range=TuningRange(low, high, declared.scaling))
        changes[name] = {"declared": [declared.low, declared.high], "fitted": [low, high], "train_rows": train_rows}
    return fitted, changes


def depth_bounds_leaves(space: SearchSpace) -> bool:
    """Both max_depth and num_leaves are searched as ranges: a tree of depth d has at most 2^d leaves."""
    return all(space.get(name) is not None and space[name].range is not None for name in ("max_depth", "num_leaves"))


def ordered_sampler(space: SearchSpace) -> Callable[[Any], dict[str, Any]] | None:
    """A sampler for Optuna's define-by-run trials when num_leaves depends on max_depth, else None.

    max_depth is drawn first (from no lower than the depth num_leaves' own lower bound needs), then num_leaves
    within [low, min(high, 2^max_depth)]: LightGBM grows at most 2^max_depth leaves anyway, so a larger
    num_leaves would be a second name for the same model and waste the trial. A max_depth of 0 or less
    (no limit) leaves num_leaves' range as it is.
    """
    if not depth_bounds_leaves(space):
        return None
    from optuna.distributions import IntDistribution

    dists = distributions(space)
    depth, leaves = dists["max_depth"], dists["num_leaves"]
    needed = math.ceil(math.log2(leaves.low)) if leaves.low > 1 else 1
    if depth.high > 0 and depth.high < needed:
        raise_range_conflict(depth.high, leaves.low)
    if depth.low <= 0 < needed - 1 and depth.high >= 1:  # "no limit" and too shallow depths in one range
        raise UserInputError(
            f"search ranges conflict: max_depth {depth.low}..{depth.high} includes depths 1..{needed - 1}, which allow "
            f"fewer than num_leaves' lowest value {leaves.low}; start max_depth at {needed} (or at 0 or below only "
            "for no limit), or lower num_leaves' range")
    depth = IntDistribution(max(depth.low, needed) if depth.low > 0 else depth.low, depth.high, log=depth.log,
                            step=depth.step)

    def sample(trial: Any) -> dict[str, Any]:
        values = {"max_depth": suggest(trial, "max_depth", depth)}
        cap = leaves.high if values["max_depth"] <= 0 else min(leaves.high, 2 ** values["max_depth"])
        values["num_leaves"] = suggest(trial, "num_leaves", IntDistribution(leaves.low, max(leaves.low, cap),
                                                                            log=leaves.log))
        for name, distribution in dists.items():
            if name not in values:
                values[name] = suggest(trial, name, distribution)
        return values

    return sample


def raise_range_conflict(depth_high: int, leaves_low: int) -> None:
    raise UserInputError(
        f"search ranges conflict: num_leaves starts at {leaves_low}, but max_depth at most {depth_high} allows "
        f"at most {2 ** depth_high} leaves; raise max_depth's upper end or lower num_leaves'")


def suggest(trial: Any, name: str, distribution: Any) -> Any:
    """One value from an Optuna distribution, through the trial's public suggest API."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, log=distribution.log)
    return trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)


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
