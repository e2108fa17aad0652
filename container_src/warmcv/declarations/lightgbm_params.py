"""Any LightGBM parameter as a hyperparameter, named and checked by LightGBM itself.

The declared hyperparameters (catalog.py) keep their types, ranges and tuning defaults. Any other name
LightGBM knows (`extra_trees`, `scale_pos_weight`, `cat_smooth`, ... or one of their aliases) is
accepted under LightGBM's own name and passed to every fit as given, the way `LightGBMTunerCV` accepts
any parameter. LightGBM's list of names and aliases comes from the installed LightGBM
(`LGBM_DumpParamAliases`, through `lightgbm.basic._ConfigAliases`), so it is never out of date. A value
is checked by letting LightGBM parse it: LightGBM's config parser refuses a wrong type or a value out
of range when a Dataset is built with it, and that message is passed on with the name and the value.

A few LightGBM parameters are warmcv's to set (the objective's class count, the categorical columns,
the cached Datasets' pre-filter) or have no meaning here (files, distributed training); those are
refused with the reason. lightgbm is imported only when a name is not a declared one.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from typing import Any

# LightGBM parameters a user may not set, and why (canonical LightGBM names).
_FILES = "LightGBM's command-line file option; warmcv reads and writes its own files"
_NETWORK = "LightGBM's distributed training; warmcv parallelises over folds and trials instead"
OWNED_BY_WARMCV: dict[str, str] = {
    **{name: _FILES for name in (
        "task", "data", "valid", "input_model", "output_model", "output_result", "config", "save_binary",
        "initscore_filename", "valid_data_initscores", "forcedsplits_filename", "forcedbins_filename",
        "parser_config_file", "convert_model", "convert_model_language", "snapshot_freq", "output_freq",
        "header", "label_column", "weight_column", "group_column", "ignore_column", "two_round",
        "precise_float_parser", "predict_raw_score", "predict_leaf_index", "predict_contrib",
        "predict_disable_shape_check", "pred_early_stop", "pred_early_stop_freq", "pred_early_stop_margin",
        "start_iteration_predict", "num_iteration_predict")},
    **{name: _NETWORK for name in (
        "machines", "machine_list_filename", "local_listen_port", "num_machines", "time_out", "pre_partition")},
    "num_class": "set by warmcv from the prepared data's classes",
    "categorical_feature": "set by warmcv from the prepared data's schema (warmcv prepare --categorical)",
    "feature_pre_filter": "warmcv keeps it false so a cached binned Dataset stays valid when min_data_in_leaf "
                          "changes between trials",
    "deterministic": "warmcv keeps it true so a fold's score is reproducible",
    "verbosity": "warmcv keeps LightGBM quiet and reports itself",
    "is_provide_training_metric": "warmcv scores the training rows itself, once, after boosting",
    "first_metric_only": "warmcv's early stopping watches the one metric it passes",
    "metric_freq": "warmcv evaluates no metric while boosting, or only the one early stopping watches",
}


@functools.cache
def _aliases() -> dict[str, str]:
    """Every LightGBM parameter name and alias -> the parameter's LightGBM name."""
    from lightgbm.basic import _ConfigAliases

    return {alias: name for name, aliases in _ConfigAliases._get_all_param_aliases().items()
            for alias in (name, *aliases)}


def lightgbm_name(name: str) -> str | None:
    """LightGBM's own name for a parameter or one of its aliases; None if LightGBM does not know it."""
    return _aliases().get(name)


def declared_alias(name: str, declared: Iterable[str]) -> str | None:
    """The declared hyperparameter that `name` is a LightGBM alias of (num_leaf -> num_leaves), if any."""
    canonical = lightgbm_name(name)
    if canonical is None:
        return None
    for known in declared:
        if lightgbm_name(known) == canonical:
            return known
    return None


def nearest(name: str, declared: Iterable[str]) -> str | None:
    """The closest declared hyperparameter or LightGBM parameter, for "did you mean ...?": the name matched
    may be an alias, the one suggested is what it stands for (num_leafs -> num_leaf -> num_leaves)."""
    declared = list(declared)
    close = difflib.get_close_matches(name, [*declared, *_aliases()], n=1, cutoff=0.75)
    if not close:
        return None
    if close[0] in declared:
        return close[0]
    return declared_alias(close[0], declared) or lightgbm_name(close[0])


def as_text(value: Any) -> str:
    """How a value from a config file or the API reaches LightGBM (bools as LightGBM writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


# One value per feature: a one-column probe Dataset cannot judge their length, so LightGBM checks them when
# the first fold trains (a failure there names the fold and LightGBM's reason).
PER_FEATURE = frozenset({"monotone_constraints", "max_bin_by_feature", "feature_contri", "interaction_constraints",
                         "cegb_penalty_feature_lazy", "cegb_penalty_feature_coupled", "forcedsplits_filename"})


@functools.lru_cache(maxsize=256)
def _refusal(name: str, value: str) -> str | None:
    """LightGBM's own objection to one parameter's value, or None."""
    import lightgbm as lgb
    import numpy as np

    try:
        lgb.Dataset(np.zeros((4, 1)), label=[0.0, 1.0, 0.0, 1.0],
                    params={name: value, "verbosity": -1}).construct()
    except lgb.basic.LightGBMError as error:
        text = str(error).strip()
        if text.startswith("Unknown token"):  # its number parser's words for "not a number"
            text = f"LightGBM could not read {value!r} as a number"
        return text
    return None


def value_problems(params: Mapping[str, str]) -> list[str]:
    """What LightGBM refuses among these parameters, each naming the hyperparameter and its value."""
    problems = []
    for name, value in sorted(params.items()):
        refusal = None if name in PER_FEATURE else _refusal(name, value)
        if refusal is not None:
            problems.append(f"hyperparameter {name} = {value!r}: LightGBM refuses it ({refusal})")
    return problems
