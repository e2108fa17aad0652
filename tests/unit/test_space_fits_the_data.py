"""A search space that fits the data: default ranges shrink with the training rows per fold, and num_leaves
stays within 2^max_depth when both are searched (max_depth sampled first, in a real Optuna study)."""

from __future__ import annotations

import math
import warnings

import optuna
import pytest

from warmcv.declarations import TuningRange
from warmcv.errors import UserInputError
from warmcv.settings.run import PrepareOptions
from warmcv.tuning.run_settings import new_run_settings
from warmcv.tuning.space import depth_bounds_leaves, fit_to_data, ordered_sampler, resolve_space


@pytest.mark.parametrize("rows, min_data, leaves", [
    (142, (1, 7), (4, 17)),  # wine, 5 folds
    (960, (5, 48), (8, 120)),
    (4000, (5, 200), (8, 256)),  # the declared ranges stand from here on
    (40_000, (5, 200), (8, 256)),
    (10, (1, 2), (2, 4)),
])
def test_default_ranges_scale_with_the_training_rows(rows: int, min_data: tuple, leaves: tuple) -> None:
    space, changes = fit_to_data(resolve_space(), ["min_data_in_leaf", "num_leaves"], rows)
    for name, (low, high) in (("min_data_in_leaf", min_data), ("num_leaves", leaves)):
        assert (space[name].range.low, space[name].range.high) == (low, high)
        assert space[name].range.scaling == "Logarithmic"
        assert (name in changes) == ((low, high) != {"min_data_in_leaf": (5, 200), "num_leaves": (8, 256)}[name])
    # a leaf may ask at most 1/20 of the rows: a tree can still split
    assert space["min_data_in_leaf"].range.high * 2 <= max(rows // 10, 4)


def test_ranges_the_user_gave_are_kept(tmp_path) -> None:
    settings = new_run_settings(tmp_path / "d.csv", "y", PrepareOptions(target="y"),
                                search=["num_leaves=16:64:log"])
    assert settings.fit_to_data == ("min_data_in_leaf",)
    space, changes = fit_to_data(resolve_space(["num_leaves=16:64:log"]), settings.fit_to_data, 142)
    assert (space["num_leaves"].range.low, space["num_leaves"].range.high) == (16, 64) and set(changes) == {
        "min_data_in_leaf"}
    fixed = new_run_settings(tmp_path / "d.csv", "y", PrepareOptions(target="y"), fixed={"min_data_in_leaf": "3"})
    assert fixed.fit_to_data == ("num_leaves",)


def sampled(space, sampler, trials: int = 80) -> list[dict]:
    sample = ordered_sampler(space)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(trials):
            trial = study.ask()
            drawn = sample(trial)
            assert drawn == trial.params
            values.append(drawn)
            study.tell(trial, -abs(math.log2(drawn["num_leaves"]) - 5) - abs(drawn["max_depth"] - 6))
    return values


@pytest.mark.parametrize("sampler", [optuna.samplers.RandomSampler(seed=1), optuna.samplers.TPESampler(seed=1)])
def test_num_leaves_never_exceeds_two_to_the_max_depth(sampler) -> None:
    space = resolve_space()
    assert depth_bounds_leaves(space)
    values = sampled(space, sampler)
    for drawn in values:
        assert 8 <= drawn["num_leaves"] <= min(256, 2 ** drawn["max_depth"])
        assert 3 <= drawn["max_depth"] <= 12 and set(drawn) == set(space)
    assert len({v["max_depth"] for v in values}) > 4 and max(v["num_leaves"] for v in values) > 64


def test_max_depth_starts_where_num_leaves_lowest_value_fits() -> None:
    space = resolve_space(["num_leaves=40:200:log", "max_depth=2:9"])
    values = sampled(space, optuna.samplers.RandomSampler(seed=0), trials=40)
    assert min(v["max_depth"] for v in values) == 6  # 2^6 = 64 >= 40; depths 2..5 would leave no room
    assert all(40 <= v["num_leaves"] <= 2 ** v["max_depth"] for v in values)


def test_unlimited_depth_leaves_num_leaves_alone() -> None:
    space = resolve_space(["max_depth=-1:4", "num_leaves=2:64:log"])
    values = sampled(space, optuna.samplers.RandomSampler(seed=3), trials=60)
    assert any(v["max_depth"] <= 0 and v["num_leaves"] > 16 for v in values)
    assert all(v["num_leaves"] <= 2 ** v["max_depth"] for v in values if v["max_depth"] > 0)


@pytest.mark.parametrize("overrides, message", [
    (["num_leaves=64:256:log", "max_depth=3:5"], "num_leaves starts at 64, but max_depth at most 5 allows at most 32"),
    (["max_depth=-1:4"], r"max_depth -1..4 includes depths 1..2, which allow fewer than num_leaves' lowest value 8"),
])
def test_ranges_that_cannot_meet_are_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        ordered_sampler(resolve_space(overrides))


def test_without_both_ranges_there_is_no_order() -> None:
    assert ordered_sampler(resolve_space(exclude=["max_depth"])) is None
    space = resolve_space()
    space["max_depth"] = space["max_depth"].__class__("max_depth", range=None, choices=("4", "6"))
    assert ordered_sampler(space) is None
    assert isinstance(resolve_space()["num_leaves"].range, TuningRange)
