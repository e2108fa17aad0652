"""A new run's settings from what a user asked for, the same for `warmcv run` and `warmcv.tune`.

The CLI reads flags and a config file, the API takes Python values; both end here, so a run folder
made by either can be resumed by the other, and `resume_settings` decides in one place what a resume
may change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from warmcv.declarations import TUNING_FIXED, static_hyperparameters
from warmcv.declarations.search_space import parse_override
from warmcv.declarations.values import declared_names
from warmcv.errors import UserInputError
from warmcv.settings.choices import PRUNE_BY_DEFAULT
from warmcv.settings.run import PrepareOptions, RunSettings
from warmcv.tracking.mlflow import normalise_uri
from warmcv.tuning.space import FITTED_TO_DATA, check_sampler, describe, ordered_sampler, resolve_space

# Hyperparameters a run sets itself.
_NOT_SETTABLE = {"mode", "fold"}
# What a resume may change; everything else is the run folder's.
RESUMABLE = ("trials", "parallel", "workers", "timeout", "predict", "predict_output", "approval", "force_register",
             "prune")  # pruning changes which folds later trials run, not the trials already run


def resolve_fixed(user_fixed: Mapping[str, str], space: Mapping[str, Any]) -> dict[str, str]:
    """The run's fixed hyperparameters: the tuning defaults not being searched, then the user's values (checked)."""
    bad = sorted(set(user_fixed) & _NOT_SETTABLE)
    if bad:
        raise UserInputError(
            f"{', '.join(bad)} cannot be set for warmcv run: it runs every fold, then fits on all data")
    defaults = {k: v for k, v in TUNING_FIXED.items() if k not in space}
    values = {**defaults, **user_fixed}
    return static_hyperparameters(values, space)


def new_run_settings(data: Path | str, target: str, prepare: PrepareOptions, *, search: Iterable[str] = (),
                     exclude: Iterable[str] = (), fixed: Mapping[str, str] | None = None,
                     **options: Any) -> RunSettings:
    """Settings of a new run. `search` holds overrides like "num_leaves=16:128:log"; `fixed` string values;
    `options` the other RunSettings fields (trials, sampler, seed, prune, ...), each validated; `prune`
    left out (or None) is PRUNE_BY_DEFAULT."""
    user_fixed = declared_names(fixed or {})
    search = list(search)
    if options.get("prune") is None:
        options["prune"] = PRUNE_BY_DEFAULT
    space = resolve_space(search, exclude=exclude, fixed=user_fixed)
    ordered_sampler(space)  # ranges that cannot meet (num_leaves above 2^max_depth) fail before anything runs
    paths: dict[str, Any] = {k: str(Path(v).resolve()) for k, v in options.items()
                             if k in ("predict", "registry") and v is not None}
    given = {parse_override(text).name for text in search}
    fitted = tuple(name for name in FITTED_TO_DATA if name in space and name not in given)
    if options.get("mlflow_tracking_uri"):
        options["mlflow_tracking_uri"] = normalise_uri(options["mlflow_tracking_uri"])
    settings = RunSettings(data=str(Path(data).resolve()), target=target, prepare=prepare, space=describe(space),
                           fixed=resolve_fixed(user_fixed, space), fit_to_data=fitted, **{**options, **paths})
    check_sampler(settings.sampler)
    return settings


def resume_settings(saved: RunSettings, **changes: Any) -> RunSettings:
    """The saved settings with the few things a resume may change (budget, parallelism, timeout, predictions)."""
    unknown = set(changes) - set(RESUMABLE)
    if unknown:
        raise UserInputError(f"--resume cannot change {', '.join(sorted(unknown))}")
    if changes.get("predict") is not None:
        changes["predict"] = str(Path(changes["predict"]).resolve())
    return saved.replaced(**{k: v for k, v in changes.items() if v is not None})


def differences(saved: RunSettings, given: RunSettings) -> list[str]:
    """Settings a resume was given that differ from the run folder's (and that a resume cannot change)."""
    old, new = saved.model_dump(mode="json"), given.model_dump(mode="json")
    return [f"{key} (the run has {old[key]!r}, given {new[key]!r})" for key in old
            if key not in RESUMABLE and key != "format_version" and old[key] != new[key]]
