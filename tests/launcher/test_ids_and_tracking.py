"""The launcher's share of IDs and tracking: prepare's --id-column, the batch transform's DataProcessing that
joins the IDs to the predictions, the coordinators' MLflow environment and the IAM grant it needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.launcher.conftest import example_config
from tests.launcher.test_pipeline_definition import definition, steps
from warmcv.errors import UserInputError
from warmcv.launcher import iam
from warmcv.launcher.pipeline import prepare_arguments

ARN = "arn:aws:sagemaker:us-east-1:111122223333:mlflow-tracking-server/warmcv"


def with_ids(**sections) -> object:
    return example_config(prepare={"id_columns": ["patient_id", "visit"]}, **sections)


@pytest.mark.parametrize("sections, expected", [
    # binary probabilities: the IDs (0, 1) and the two probability columns (the last two)
    ({}, {"InputFilter": "$[2:]", "JoinSource": "Input", "OutputFilter": "$[0,1,-2,-1]"}),
    ({"transform": {"accept": "text/csv;output=labels"}},
     {"InputFilter": "$[2:]", "JoinSource": "Input", "OutputFilter": "$[0,1,-1]"}),
    ({"prepare": {"id_columns": ["patient_id", "visit"], "task": "regression"},
      "hyperparameters": {"metric": "rmse", "objective": "regression"}},
     {"InputFilter": "$[2:]", "JoinSource": "Input", "OutputFilter": "$[0,1,-1]"}),
    # multiclass probabilities: as many columns as classes, unknown before the data is seen: the whole row
    ({"prepare": {"id_columns": ["patient_id", "visit"], "task": "multiclass"},
      "hyperparameters": {"metric": "logloss", "objective": "multiclass"}},
     {"InputFilter": "$[2:]", "JoinSource": "Input", "OutputFilter": "$"}),
    ({"transform": {"content_type": "application/jsonlines", "accept": "application/jsonlines"}},
     {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$['patient_id','visit','SageMakerOutput']"}),
])
def test_transform_keeps_the_ids_out_of_the_model_and_joins_them_back(sections, expected) -> None:
    merged = {"prepare": {"id_columns": ["patient_id", "visit"]}, **sections}
    assert example_config(**merged).transform_data_processing() == expected


def test_no_ids_no_data_processing() -> None:
    assert example_config().transform_data_processing() is None


@pytest.mark.parametrize("sections, message", [
    ({"prepare": {"id_columns": ["patient_id"]},
      "transform": {"content_type": "text/csv", "accept": "application/jsonlines"}},
     "both text/csv or both application/jsonlines"),
    ({"prepare": {"id_columns": [f"identifier_{i}" for i in range(25)]}}, "over SageMaker's 63 characters"),
    ({"mlflow": {"tracking_server_arn": "arn:aws:sagemaker:us-east-1:111122223333:model/x"}},
     "is not a SageMaker MLflow tracking server ARN"),
])
def test_bad_settings_are_refused_before_any_sdk_call(sections, message) -> None:
    with pytest.raises(UserInputError, match=message):
        example_config(**sections)


def test_prepare_passes_each_id_column() -> None:
    args = prepare_arguments(with_ids())
    assert args[args.index("--id-column") + 1] == "patient_id" and args.count("--id-column") == 2
    assert args[len(args) - 1] == "visit"


def test_coordinators_get_mlflows_environment_and_their_role_the_grant() -> None:
    config = example_config(mlflow={"tracking_server_arn": ARN, "experiment": "census"})
    assert config.coordinator_environment() == {"MLFLOW_TRACKING_URI": ARN, "MLFLOW_EXPERIMENT_NAME": "census"}
    assert example_config(mlflow={"tracking_server_arn": ARN}).coordinator_environment()[
        "MLFLOW_EXPERIMENT_NAME"] == config.pipeline.name
    [statement] = [s for s in iam.job_role_policy(config)["Statement"] if s["Sid"] == "CoordinatorLogsToMlflow"]
    assert statement["Action"] == ["sagemaker-mlflow:*"] and statement["Resource"] == ARN
    assert example_config().coordinator_environment() == {}
    assert "CoordinatorLogsToMlflow" not in {s["Sid"] for s in iam.job_role_policy(example_config())["Statement"]}


def test_pipeline_definition_carries_ids_and_tracking(tmp_path: Path) -> None:
    s = steps(definition(tmp_path, "--id-columns", "patient_id", "--mlflow-tracking-server-arn", ARN,
                         "--mlflow-experiment", "census"))
    args = s["Prepare"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert args[args.index("--id-column") + 1] == "patient_id"
    assert s["Predict"]["Arguments"]["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input",
                                                           "OutputFilter": "$[0,-2,-1]"}
    trial = s["Tune"]["Arguments"]["TrainingJobDefinition"]
    assert trial["Environment"] == {"MLFLOW_TRACKING_URI": ARN, "MLFLOW_EXPERIMENT_NAME": "census"}
    assert "Environment" not in s["TrainFinal"]["Arguments"] or not s["TrainFinal"]["Arguments"]["Environment"]
