"""Any LightGBM parameter as a hyperparameter (warmcv.declarations.lightgbm_params), checked by LightGBM itself."""

from __future__ import annotations

import pytest

from warmcv.declarations import parse_hyperparameters, static_hyperparameters
from warmcv.errors import UserInputError


def test_an_undeclared_lightgbm_parameter_is_kept_under_lightgbm_s_name():
    hps = parse_hyperparameters({"extra_tree": True, "cat_smooth": 5, "scale_pos_weight": "2.5"})
    assert hps.lightgbm_extra == {"extra_trees": "true", "cat_smooth": "5", "scale_pos_weight": "2.5"}
    assert hps.lightgbm_values()["extra_trees"] == "true"
    # The string form carries them (fold jobs, the tuner's static hyperparameters) and parses back the same.
    strings = hps.to_strings()
    assert strings == {"cat_smooth": "5", "extra_trees": "true", "scale_pos_weight": "2.5"}
    assert parse_hyperparameters(strings) == hps
    assert hps.replace(num_leaves=15).lightgbm_extra == hps.lightgbm_extra


def test_an_alias_of_a_declared_hyperparameter_is_that_hyperparameter():
    hps = parse_hyperparameters({"num_leaf": "15", "n_estimators": "50", "min_child_samples": 7})
    assert (hps["num_leaves"], hps["num_boost_round"], hps["min_data_in_leaf"]) == (15, 50, 7)
    assert hps.lightgbm_extra == {}
    with pytest.raises(UserInputError, match=r"num_leaves='1': out of range \(allowed: an integer in \[2, "):
        parse_hyperparameters({"num_leaf": "1"})  # the declared range still holds under an alias
    with pytest.raises(UserInputError, match="num_leaves is given twice: as num_leaves and as num_leaf"):
        parse_hyperparameters({"num_leaves": 3, "num_leaf": 4})


@pytest.mark.parametrize("given, message", [
    ({"extra_tress": "true"}, r"unknown hyperparameter 'extra_tress' \(did you mean 'extra_trees'\?\)"),
    ({"extra_trees": "maybe"},
     r"hyperparameter extra_trees = 'maybe': LightGBM refuses it \(Parameter extra_trees should be \"true\""),
    ({"scale_pos_weight": "x"}, r"scale_pos_weight = 'x': LightGBM refuses it \(LightGBM could not read 'x' as a number"),
    ({"cat_smooth": "-1"}, r"cat_smooth = '-1': LightGBM refuses it \(.*cat_smooth"),
    ({"max_cat_to_onehot": "1.5"}, r"max_cat_to_onehot = '1.5': LightGBM refuses it \(.*type int"),
    ({"num_class": 3}, "num_class cannot be set: set by warmcv from the prepared data's classes"),
    ({"output_model": "m.txt"}, "output_model cannot be set: LightGBM's command-line file option"),
    ({"num_machine": 2}, r"num_machine \(LightGBM's num_machines\) cannot be set: LightGBM's distributed training"),
])
def test_what_lightgbm_or_warmcv_refuses_is_named_with_its_value_or_reason(given, message):
    with pytest.raises(UserInputError, match=message):
        parse_hyperparameters(given)


def test_every_problem_is_reported_at_once():
    with pytest.raises(UserInputError) as raised:
        parse_hyperparameters({"extra_tress": "true", "extra_trees": "maybe", "num_leaves": "1"})
    text = str(raised.value)
    assert "extra_tress" in text and "extra_trees = 'maybe'" in text and "num_leaves='1'" in text


def test_the_tuner_s_static_hyperparameters_take_them_too():
    assert static_hyperparameters({"is_unbalance": "true", "num_leaves": "31"}) == {
        "is_unbalance": "true", "num_leaves": "31"}


def test_they_reach_lightgbm_the_dataset_cache_key_and_the_trained_model(prepared_census):
    from warmcv.data.manifest import PreparedData
    from warmcv.model.params import training_setup
    from warmcv.model.training import train_fold

    data = PreparedData.load(prepared_census)
    plain = training_setup(parse_hyperparameters({"num_boost_round": "5"}), data.manifest, num_threads=1)
    extra = training_setup(parse_hyperparameters({"num_boost_round": "5", "extra_trees": "true"}), data.manifest,
                           num_threads=1)
    assert extra.params["extra_trees"] == "true" and "extra_trees" not in plain.params
    assert extra.dataset_key != plain.dataset_key  # a Dataset binned for one is not reused for the other
    outcome = train_fold(data, extra, 0)
    assert "[extra_trees: 1]" in outcome.booster.model_to_string()
    assert "[extra_trees: 0]" in train_fold(data, plain, 0).booster.model_to_string()


def test_the_python_api_takes_them_under_any_alias():
    from warmcv.api.tune import _fixed_strings

    assert _fixed_strings({"extra_tree": True, "num_leaf": 7, "learning_rate": 0.1}) == {
        "extra_trees": "true", "num_leaves": "7", "learning_rate": "0.1"}


def test_the_launcher_s_static_hyperparameters_carry_them_to_the_coordinators_and_the_driver():
    from tests.launcher.conftest import example_config

    config = example_config(hyperparameters={"extra_tree": "true", "scale_pos_weight": "3"})
    for hyperparameters in (config.coordinator_hyperparameters(), config.driver_hyperparameters()):
        assert hyperparameters["extra_trees"] == "true" and hyperparameters["scale_pos_weight"] == "3"
    with pytest.raises(UserInputError, match=r"did you mean 'extra_trees'"):
        example_config(hyperparameters={"extra_tress": "true"}).coordinator_hyperparameters()
