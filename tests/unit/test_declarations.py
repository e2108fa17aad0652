"""The one declaration: parsing the container's strings, ranges, and what the tuners get from it."""

from __future__ import annotations

import re

import boto3
import pytest
from botocore.stub import Stubber

from warmcv.declarations import (
    COORDINATOR_METRICS,
    HYPERPARAMETERS,
    TUNABLE,
    VALIDATION_SCORE,
    build_search_space,
    default_search_space,
    metric_definitions,
    parse_hyperparameters,
    sagemaker_parameter_ranges,
    static_hyperparameters,
    tuning_objective,
)
from warmcv.declarations.types import NumericHyperparameter
from warmcv.errors import UserInputError


def test_required_tunables_are_declared_with_valid_default_ranges():
    required = {"num_leaves", "learning_rate", "min_data_in_leaf", "feature_fraction", "bagging_fraction",
                "bagging_freq", "lambda_l1", "lambda_l2", "max_depth", "min_gain_to_split", "max_bin",
                "num_boost_round"}
    assert required <= set(TUNABLE)
    assert {"early_stopping_rounds", "mode", "fold", "n_folds", "objective", "metric", "seed",
            "fold_runner"} <= set(HYPERPARAMETERS)
    for name in TUNABLE:
        hp = HYPERPARAMETERS[name]
        assert isinstance(hp, NumericHyperparameter)
        if hp.tuning is not None:
            hp.check_tuning_range(hp.tuning)  # raises if a default tuning range leaves the valid range
        for choice in hp.tuning_choices or ():
            assert hp.parse(hp.format(choice)) == choice


def test_every_default_round_trips_through_its_string_form():
    for hp in HYPERPARAMETERS.values():
        assert hp.parse(hp.format(hp.default)) == hp.default, hp.name


@pytest.mark.parametrize(("raw", "expected"), [
    ({"num_leaves": "31"}, {"num_leaves": 31}),
    ({"num_leaves": "31.0"}, {"num_leaves": 31}),
    ({"learning_rate": "0.05"}, {"learning_rate": 0.05}),
    ({"learning_rate": '"0.05"'}, {"learning_rate": 0.05}),  # JSON-quoted, as some SDK paths send
    ({"coordinator_trains_fold": "True"}, {"coordinator_trains_fold": True}),  # str(True) from the SDK
    ({"coordinator_trains_fold": "true"}, {"coordinator_trains_fold": True}),
    ({"coordinator_trains_fold": "FALSE"}, {"coordinator_trains_fold": False}),
    ({"objective": '"binary"'}, {"objective": "binary"}),
    ({"mode": "Coordinator"}, {"mode": "coordinator"}),
    ({"fold": "3"}, {"fold": 3}),
    ({"fold": "all"}, {"fold": "all"}),
])
def test_parses_container_strings(raw, expected):
    values = parse_hyperparameters(raw)
    for name, value in expected.items():
        assert values[name] == value and type(values[name]) is type(value)
    assert values.explicit == frozenset(raw)


def test_platform_keys_are_ignored():
    values = parse_hyperparameters({"sagemaker_program": "x.py", "_tuning_objective_metric": "validation:score",
                                    "sagemaker_estimator_module": '"sagemaker.estimator"'})
    assert values.explicit == frozenset()


def test_unknown_hyperparameter_names_it_and_suggests():
    with pytest.raises(UserInputError, match=r"unknown hyperparameter 'num_leafs' \(did you mean 'num_leaves'\?\)"):
        parse_hyperparameters({"num_leafs": "31"})


def test_out_of_range_value_names_value_and_range():
    with pytest.raises(UserInputError, match=r"learning_rate='1.5': out of range \(allowed: a number in \(0, 1\]\)"):
        parse_hyperparameters({"learning_rate": "1.5"})
    with pytest.raises(UserInputError, match=r"keep_alive_seconds='7200': out of range .*\[0, 3600\]"):
        parse_hyperparameters({"keep_alive_seconds": "7200"})


def test_mistyped_value_names_type():
    expected = r"num_leaves='abc': is not an integer \(allowed: an integer in \[2, 131072\]\)"
    with pytest.raises(UserInputError, match=expected):
        parse_hyperparameters({"num_leaves": "abc"})
    with pytest.raises(UserInputError, match=r"num_leaves='2.5': is not an integer"):
        parse_hyperparameters({"num_leaves": "2.5"})
    with pytest.raises(UserInputError, match=r"learning_rate='nan': is not a finite number"):
        parse_hyperparameters({"learning_rate": "nan"})


def test_all_problems_reported_at_once():
    with pytest.raises(UserInputError) as caught:
        parse_hyperparameters({"num_leaves": "abc", "learning_rate": "0", "bogus": "1"})
    message = str(caught.value)
    assert "bogus" in message and "num_leaves" in message and "learning_rate" in message


def test_fold_is_only_for_workers():
    with pytest.raises(UserInputError, match="only for mode=worker"):
        parse_hyperparameters({"mode": "coordinator", "fold": "2"})


def test_to_strings_round_trips_explicit_values():
    values = parse_hyperparameters({"learning_rate": "0.05", "num_leaves": 63, "coordinator_trains_fold": True})
    assert values.to_strings() == {"coordinator_trains_fold": "true", "learning_rate": "0.05", "num_leaves": "63"}
    assert parse_hyperparameters(values.to_strings()) == values


def test_parameter_ranges_are_valid_for_the_real_tuning_api():
    """botocore validates the shape and types against SageMaker's service model."""
    ranges = sagemaker_parameter_ranges(default_search_space())
    assert {r["Name"] for r in ranges["IntegerParameterRanges"]} >= {"num_leaves", "num_boost_round"}
    # max_bin is searched over a few values, so warm workers can keep each variant's binned Datasets.
    assert {"Name": "max_bin", "Values": ["63", "127", "255", "511"]} in ranges["CategoricalParameterRanges"]
    lr = next(r for r in ranges["ContinuousParameterRanges"] if r["Name"] == "learning_rate")
    assert lr == {"Name": "learning_rate", "MinValue": "0.005", "MaxValue": "0.3", "ScalingType": "Logarithmic"}
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    request = {
        "HyperParameterTuningJobName": "t",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": tuning_objective("auc"),
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": ranges,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": static_hyperparameters({"mode": "coordinator", "early_stopping_rounds": 20}),
            "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File",
                                       "MetricDefinitions": metric_definitions()},
            "RoleArn": "arn:aws:iam::123456789012:role/r",
            "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
    }
    with Stubber(client) as stub:
        stub.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": "arn:x"}, request)
        client.create_hyper_parameter_tuning_job(**request)


def test_metric_regexes_match_the_printed_lines_as_the_tuner_applies_them():
    assert VALIDATION_SCORE.regex == "average model validation score:(.*?);"
    for metric in COORDINATOR_METRICS:
        for value in (0.8123456789012345, 1e-12, -3.5, 0.0):
            log = f"2026-01-01 INFO x\n{metric.line(value)}\nmore"
            found = re.findall(metric.regex, log)
            assert [float(v) for v in found] == [value]
    # The std line must not be taken for the average by the tuner's regex.
    spreads = COORDINATOR_METRICS[2].line(0.1) + "\n" + COORDINATOR_METRICS[3].line(0.2)
    assert re.findall(VALIDATION_SCORE.regex, spreads) == []


def test_objective_direction_follows_the_metric():
    assert tuning_objective("auc") == {"Type": "Maximize", "MetricName": "validation:score"}
    assert tuning_objective("rmse")["Type"] == "Minimize"
    with pytest.raises(UserInputError, match="not a scoring metric"):
        tuning_objective("f1")


def test_search_overrides_are_checked_against_the_declarations():
    space = build_search_space(["num_leaves", "learning_rate"], ["num_leaves=16:64:log", "lambda_l1=0.001:1:log"])
    assert space["num_leaves"].range.low == 16 and space["num_leaves"].range.scaling == "Logarithmic"
    assert "lambda_l1" in space
    with pytest.raises(UserInputError, match=r"learning_rate=.2.: out of range \(allowed: a number in \(0, 1\]\)"):
        build_search_space([], ["learning_rate=0.01:2"])
    with pytest.raises(UserInputError, match="unknown hyperparameter 'num_leafs'"):
        build_search_space([], ["num_leafs=2:8"])
    with pytest.raises(UserInputError, match="Logarithmic scaling needs a low end above 0"):
        build_search_space([], ["bagging_freq=0:5:log"])
    assert build_search_space([], ["max_bin=63,255"])["max_bin"].choices == ("63", "255")
    with pytest.raises(UserInputError, match=r"max_bin='1': out of range"):
        build_search_space([], ["max_bin=1,255"])
    with pytest.raises(UserInputError, match="both static and tuned"):
        static_hyperparameters({"num_leaves": 31}, space)


# --- issue 15: integers LightGBM keeps, and only what a user means -----------------------------------------

INT32_MAX = 2**31 - 1


@pytest.mark.parametrize(("raw", "problem"), [
    ({"num_leaves": "31_0"}, "num_leaves='31_0': is not an integer"),  # int() reads 310
    ({"num_leaves": "\u0663\u0661"}, "is not an integer"),  # Arabic-Indic digits: int() reads 31
    ({"num_leaves": "0x1f"}, "is not an integer"),
    ({"num_leaves": "1,000"}, "is not an integer"),
    ({"num_leaves": "inf"}, "is not an integer"),
    ({"learning_rate": "1_0.5"}, "learning_rate='1_0.5': is not a number"),  # float() reads 10.5
    ({"learning_rate": "Infinity"}, "is not a finite number"),
    ({"min_data_in_leaf": "1e300"}, "min_data_in_leaf='1e300': out of range (allowed: an integer in [0, 2147483647])"),
    ({"bagging_freq": "3000000000"}, "bagging_freq='3000000000': out of range (allowed: an integer in [0, 2147483647])"),
    ({"max_depth": "2147483648"}, "max_depth='2147483648': out of range"),
    ({"num_leaves": "1e999999999"}, "out of range"),  # refused at once, not converted to a billion-digit int
    ({"fold": "1_0"}, "fold='1_0': is neither 'all' nor a fold index"),
    ({"fold": "100"}, "fold='100': out of range"),
])
def test_only_plainly_written_numbers_in_range_are_accepted(raw, problem):
    with pytest.raises(UserInputError) as error:
        parse_hyperparameters(raw)
    assert problem in str(error.value)


@pytest.mark.parametrize(("raw", "expected"), [
    ("31", 31), ("+31", 31), (" 31 ", 31), ("31.0", 31), ("31.", 31), ("1e3", 1000), ("2.5e1", 25), ('"63"', 63),
])
def test_integers_written_as_people_write_them(raw, expected):
    assert parse_hyperparameters({"num_leaves": raw})["num_leaves"] == expected


def test_every_integer_has_an_upper_bound_a_32_bit_int_holds():
    from warmcv.declarations.types import IntegerHyperparameter

    for hp in HYPERPARAMETERS.values():
        if isinstance(hp, IntegerHyperparameter):
            assert hp.valid.high is not None and hp.valid.high <= INT32_MAX, hp.name


def test_lightgbm_keeps_every_integer_at_its_declared_maximum():
    """Train with each LightGBM integer at its upper bound and read it back from the model: no wrap, no refusal."""
    import lightgbm as lgb
    import numpy as np

    from warmcv.declarations.types import IntegerHyperparameter

    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 2))
    labels = (features[:, 0] > 0).astype(int)
    integers = [hp for hp in HYPERPARAMETERS.values() if isinstance(hp, IntegerHyperparameter) and hp.lightgbm]
    assert {hp.name for hp in integers} >= {"num_leaves", "min_data_in_leaf", "bagging_freq", "max_depth", "max_bin"}
    for hp in integers:
        value = int(hp.valid.high)
        booster = lgb.train({"objective": "binary", "verbose": -1, "bagging_fraction": 0.5, hp.name: value},
                            lgb.Dataset(features, labels), num_boost_round=1)
        assert f"[{hp.name}: {value}]" in booster.model_to_string(), hp.name


def test_messages_show_values_as_the_user_wrote_them():
    import numpy as np

    with pytest.raises(UserInputError) as error:
        parse_hyperparameters({"num_leaves": np.int64(1), "learning_rate": np.float64(1.5)})
    message = str(error.value)
    assert "num_leaves=1: out of range" in message and "learning_rate=1.5: out of range" in message
    assert "np." not in message


def test_parsed_hyperparameters_are_a_full_mapping():
    """keys(), values() and items() work like a dict's (a field named `values` once hid values())."""
    hps = parse_hyperparameters({"num_leaves": "31"})
    assert dict(hps.items())["num_leaves"] == 31
    assert list(hps.values()) == [hps[name] for name in hps.keys()]
