"""warmcv run's search space comes from the declarations; every override is checked against them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from warmcv.declarations import DATASET_LEVEL, HYPERPARAMETERS, TUNABLE, TUNING_FIXED, TUNING_SEARCHED
from warmcv.errors import UserInputError
from warmcv.tuning.pipeline import default_parallel
from warmcv.tuning.run_settings import resolve_fixed
from warmcv.tuning.space import (
    as_hyperparameters,
    check_sampler,
    describe,
    distributions,
    make_sampler,
    resolve_space,
    space_from_description,
)


def test_default_space_is_the_declared_tunables_minus_round_count_and_binning() -> None:
    space = resolve_space()
    assert set(space) == set(TUNING_SEARCHED)
    assert set(space) == set(TUNABLE) - set(TUNING_FIXED) - set(DATASET_LEVEL)
    assert "max_bin" not in space and "num_boost_round" not in space
    for name, dim in space.items():
        assert dim.range == HYPERPARAMETERS[name].tuning  # the declared range, not a copy


def test_overrides_narrow_and_add_dimensions() -> None:
    space = resolve_space(["num_leaves=16:64:log", "max_bin=63:255"])
    assert (space["num_leaves"].range.low, space["num_leaves"].range.high, space["num_leaves"].range.scaling) == (
        16, 64, "Logarithmic")
    assert "max_bin" in space  # opted in


@pytest.mark.parametrize("override, words", [
    ("num_leaves=1:64", "num_leaves='1': out of range"),
    ("learning_rate=0:0.3:log", "learning_rate='0': out of range"),
    ("feature_fraction=0.5:1.5", "out of range"),
    ("lambda_l1=0:1:log", "needs a low end above 0"),
    ("num_leaves=64:16", "must be below high"),
    ("num_levaes=16:64", "unknown hyperparameter"),
    ("num_leaves=16", "expected low:high"),
    ("objective=binary,softmax", "not one of the choices"),
])
def test_bad_overrides_name_the_problem(override: str, words: str) -> None:
    with pytest.raises(UserInputError, match=words):
        resolve_space([override])


def test_fixed_hyperparameters_leave_the_space_and_cannot_also_be_searched() -> None:
    space = resolve_space(fixed=["num_leaves"])
    assert "num_leaves" not in space
    with pytest.raises(UserInputError, match="both fixed .* and searched"):
        resolve_space(["num_leaves=16:64"], fixed=["num_leaves"])
    with pytest.raises(UserInputError, match="both excluded and searched"):
        resolve_space(["num_leaves=16:64"], exclude=["num_leaves"])
    with pytest.raises(UserInputError, match="unknown hyperparameter"):
        resolve_space(exclude=["num_leafs"])
    with pytest.raises(UserInputError, match="search space is empty"):
        resolve_space(exclude=list(TUNING_SEARCHED))


def test_resolve_fixed_keeps_defaults_not_searched_and_validates_user_values() -> None:
    space = resolve_space()
    assert resolve_fixed({}, space) == TUNING_FIXED
    assert resolve_fixed({"metric": "logloss"}, space) == {**TUNING_FIXED, "metric": "logloss"}
    searched_rounds = resolve_space(["num_boost_round=50:500:log"])
    assert "num_boost_round" not in resolve_fixed({}, searched_rounds)
    with pytest.raises(UserInputError, match="num_leaves"):
        resolve_fixed({"num_leaves": "63"}, space)  # searched by default: fixing it goes through resolve_space
    with pytest.raises(UserInputError, match="metric"):
        resolve_fixed({"metric": "f1"}, resolve_space())
    with pytest.raises(UserInputError, match="cannot be set for warmcv run"):
        resolve_fixed({"fold": "1"}, space)


def test_distributions_follow_type_and_scaling() -> None:
    dists = distributions(resolve_space(["objective=binary"]))
    assert dists["num_leaves"] == IntDistribution(8, 256, log=True)
    assert dists["bagging_freq"] == IntDistribution(0, 10, log=False)
    assert dists["learning_rate"] == FloatDistribution(0.005, 0.3, log=True)
    assert dists["feature_fraction"] == FloatDistribution(0.4, 1.0, log=False)
    assert dists["objective"] == CategoricalDistribution(["binary"])
    with pytest.raises(UserInputError, match="ReverseLogarithmic"):
        distributions(resolve_space(["feature_fraction=0.4:0.99:reverselog"]))


def test_sampled_values_become_valid_hyperparameter_strings() -> None:
    strings = as_hyperparameters({"num_leaves": 31, "learning_rate": 0.05, "objective": "binary"})
    assert strings == {"num_leaves": "31", "learning_rate": "0.05", "objective": "binary"}


def test_space_description_round_trips_for_resume() -> None:
    space = resolve_space(["num_leaves=16:64:log", "objective=binary", "max_bin=63:255"])
    described = json.loads(json.dumps(describe(space)))
    assert space_from_description(described) == space


def test_samplers() -> None:
    assert type(make_sampler("tpe", 1)).__name__ == "TPESampler"
    assert type(make_sampler("random", 1)).__name__ == "RandomSampler"
    with pytest.raises(UserInputError, match="not one of"):
        check_sampler("cmaes")


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="PyTorch is installed here")
def test_gp_sampler_without_pytorch_says_what_to_install() -> None:
    with pytest.raises(UserInputError, match=r"needs PyTorch.*pip install torch"):
        check_sampler("gp")


def test_default_parallel_keeps_workers_busy() -> None:
    assert default_parallel(workers=2, folds=5) == 2
    assert default_parallel(workers=8, folds=5) == 4
    assert default_parallel(workers=1, folds=10) == 2


def test_config_file_and_command_line_merge(tmp_path: Path) -> None:
    from warmcv.cli import build_parser
    from warmcv.cli.run import settings_from_args

    config = tmp_path / "run.toml"
    config.write_text('trials = 7\nsampler = "random"\nexclude = ["max_depth"]\n'
                      '[search]\nnum_leaves = "16:64:log"\nlearning_rate = "0.01:0.2:log"\n'
                      '[set]\nearly_stopping_rounds = 20\n')
    args = build_parser().parse_args(["run", "--data", "x.csv", "--target", "y", "--config", str(config),
                                      "--search", "learning_rate=0.02:0.1", "--trials", "9"])
    settings = settings_from_args(args, tmp_path / "out")
    assert settings.trials == 9 and settings.sampler == "random"  # command line over config
    assert settings.space["num_leaves"] == {"low": 16, "high": 64, "scaling": "Logarithmic"}
    assert settings.space["learning_rate"] == {"low": 0.02, "high": 0.1, "scaling": "Auto"}
    assert "max_depth" not in settings.space
    assert settings.fixed == {"early_stopping_rounds": "20", "num_boost_round": "1000"}

    as_json = tmp_path / "run.json"
    as_json.write_text(json.dumps({"search": {"num_leaves": "1:300"}}))
    args = build_parser().parse_args(["run", "--data", "x.csv", "--target", "y", "--config", str(as_json)])
    with pytest.raises(UserInputError, match="num_leaves"):
        settings_from_args(args, tmp_path / "out")

    as_json.write_text(json.dumps({"trails": 5}))
    with pytest.raises(UserInputError, match="unknown key.*trails"):
        settings_from_args(args, tmp_path / "out")
