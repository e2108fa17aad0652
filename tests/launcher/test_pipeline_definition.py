"""The pipeline definition and the tuning request, built with the real SageMaker SDK v3, offline.

Each definition is generated in a child process that has no AWS credentials and in which every
socket connect and DNS lookup fails (tests/launcher/offline_run.py); the test fails on any attempt.
Then the JSON is checked step by step: what flows between steps, static hyperparameters, keep-alive,
regexes, ranges, the image everywhere. Needs the `launcher` extra (pip install "warmcv[launcher]").
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import subprocess_env
from tests.launcher.conftest import EXAMPLE, example_config
from warmcv.cli import build_parser
from warmcv.declarations import COORDINATOR_METRICS, metric_definitions, sagemaker_parameter_ranges, tuning_objective
from warmcv.launcher import handlers, iam
from warmcv.launcher.config import LauncherConfig

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sagemaker") is None or importlib.util.find_spec("sagemaker.mlops") is None,
    reason='needs the SageMaker Python SDK v3: pip install -e ".[launcher,test]"',
)
OFFLINE = Path(__file__).with_name("offline_run.py")
PREPARED = "Steps.Prepare.ProcessingOutputConfig.Outputs['prepared'].S3Output.S3Uri"


def run_offline(tmp: Path, *argv: str) -> dict[str, Any]:
    report = tmp / "report.json"
    result = subprocess.run([sys.executable, str(OFFLINE), str(report), "--", *argv], capture_output=True,
                            text=True, env=subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(report.read_text())
    assert outcome["attempts"] == [], f"network access attempted: {outcome['attempts']}"
    assert outcome["rc"] == 0, result.stderr[-3000:]
    return outcome


def definition(tmp: Path, *overrides: str) -> dict[str, Any]:
    out = tmp / "definition.json"
    run_offline(tmp, "pipeline", "definition", "--config", str(EXAMPLE), "--out", str(out), *overrides)
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def example_definition(tmp_path_factory) -> dict[str, Any]:
    return definition(tmp_path_factory.mktemp("definition"))


def resolve(node: Any, defaults: dict[str, Any]) -> Any:
    """The definition as an execution with every parameter at its default sees it."""
    if isinstance(node, dict):
        if set(node) == {"Get"} and node["Get"].startswith("Parameters."):
            return defaults[node["Get"].removeprefix("Parameters.")]
        resolved = {k: resolve(v, defaults) for k, v in node.items()}
        join = resolved.get("Std:Join")
        if len(resolved) == 1 and join and all(not isinstance(v, (dict, list)) for v in join["Values"]):
            return join["On"].join(str(v) for v in join["Values"])
        return resolved
    if isinstance(node, list):
        return [resolve(v, defaults) for v in node]
    return node


def steps(document: dict[str, Any], raw: bool = False) -> dict[str, dict[str, Any]]:
    """Every step by name, those inside a condition's branches too, parameters at their defaults unless raw."""
    found: dict[str, dict[str, Any]] = {}

    def visit(step: dict[str, Any]) -> None:
        found[step["Name"]] = step
        for branch in ("IfSteps", "ElseSteps"):
            for inner in step.get("Arguments", {}).get(branch, []):
                visit(inner)

    for step in document["Steps"]:
        visit(step)
    if raw:
        return found
    defaults = {p["Name"]: p.get("DefaultValue") for p in document.get("Parameters", [])}
    return resolve(found, defaults)


def get(step: str, path: str) -> dict[str, str]:
    return {"Get": f"Steps.{step}.{path}"}


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return []


def test_steps_and_order(example_definition):
    s = steps(example_definition)
    assert list(s) == ["Prepare", "Tune", "BestHyperparameters", "TrainFinal", "CreateModel", "BeatsBaseline",
                       "RegisterModel", "Predict", "BelowBaseline", "ReleaseWarmPools"]
    assert [x["Type"] for x in s.values()] == ["Processing", "Tuning", "Lambda", "Training", "Model", "Condition",
                                              "RegisterModel", "Transform", "Fail", "Lambda"]
    # Registration and predictions only for a model that beats the baseline; the release does not wait for them.
    gate = s["BeatsBaseline"]["Arguments"]
    assert [x["Name"] for x in gate["IfSteps"]] == ["RegisterModel", "Predict"]
    assert [x["Name"] for x in gate["ElseSteps"]] == ["BelowBaseline"]
    assert s["ReleaseWarmPools"]["DependsOn"] == ["TrainFinal"]


def test_prepare_runs_the_images_prepare_entry(example_definition, config: LauncherConfig):
    step = steps(example_definition)["Prepare"]["Arguments"]
    arguments = step["AppSpecification"]["ContainerArguments"]
    assert "ContainerEntrypoint" not in step["AppSpecification"]  # the image's ENTRYPOINT hands them to warmcv
    assert arguments[:3] == ["--failure-file", "/opt/ml/output/message", "prepare"]
    parsed = build_parser().parse_args(arguments)  # the real CLI accepts them
    inputs = {i["InputName"]: i["S3Input"] for i in step["ProcessingInputs"]}
    outputs = {o["OutputName"]: o["S3Output"] for o in step["ProcessingOutputConfig"]["Outputs"]}
    assert str(parsed.data) == inputs["raw"]["LocalPath"] and inputs["raw"]["S3Uri"] == config.s3.input
    assert str(parsed.out) == outputs["prepared"]["LocalPath"]
    assert (parsed.target, parsed.folds, parsed.task) == ("income", 5, "binary")
    assert outputs["prepared"]["S3Uri"]["Std:Join"]["Values"][:2] == ["s3://my-bucket/warmcv/census", "prepared"]


def test_tuner_from_the_declarations(example_definition, config: LauncherConfig):
    tune = steps(example_definition)["Tune"]["Arguments"]
    job = tune["TrainingJobDefinition"]
    tuning = tune["HyperParameterTuningJobConfig"]
    assert job["InputDataConfig"] == [{"ChannelName": "train", "DataSource": {"S3DataSource": {
        "S3DataDistributionType": "FullyReplicated", "S3DataType": "S3Prefix", "S3Uri": {"Get": PREPARED}}}}]
    assert job["StaticHyperParameters"] == config.coordinator_hyperparameters()
    assert job["StaticHyperParameters"]["mode"] == "coordinator"
    assert job["StaticHyperParameters"]["fold_runner"] == "sagemaker"
    assert job["StaticHyperParameters"]["keep_alive_seconds"] == "900"
    assert job["StaticHyperParameters"]["n_folds"] == "5"
    assert job["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions(COORDINATOR_METRICS)
    assert tuning["HyperParameterTuningJobObjective"] == tuning_objective("auc")
    expected = sagemaker_parameter_ranges(config.search_space())
    for kind, ranges in expected.items():
        assert sorted(tuning["ParameterRanges"].get(kind, []), key=lambda r: r["Name"]) == ranges
    assert tuning["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 40, "MaxParallelTrainingJobs": 4}
    assert (tuning["Strategy"], tuning["RandomSeed"], tuning["TrainingJobEarlyStoppingType"]) == ("Bayesian", 42, "Off")
    assert tuning["TuningJobCompletionCriteria"] == {
        "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 20},
        "ConvergenceDetected": {"CompleteOnConvergence": "Enabled"}}
    # Trials keep no pool of their own (the service drops it for tuning jobs); their fold jobs do.
    assert "KeepAlivePeriodInSeconds" not in job["ResourceConfig"]
    assert job["OutputDataConfig"]["S3OutputPath"] == "s3://my-bucket/warmcv/census/tuning"


def test_best_hyperparameters_feed_the_final_training(example_definition, config: LauncherConfig):
    s = steps(example_definition)
    best = s["BestHyperparameters"]
    from_tuning = config.final_from_tuning()
    assert best["FunctionArn"] == "arn:aws:lambda:us-east-1:111122223333:function:warmcv-best-hyperparameters"
    assert best["Arguments"]["tuning_job_name"] == get("Tune", "HyperParameterTuningJobName")
    assert best["Arguments"]["names"].split(",") == from_tuning
    assert best["Arguments"]["rounds_from_cv"] == "true"  # early stopping is on in the example
    outputs = {o["OutputName"] for o in best["OutputParameters"]}
    assert outputs == {*from_tuning, handlers.BEST_TRAINING_JOB, handlers.CV_METRIC, handlers.CV_MEAN,
                       handlers.CV_STD, handlers.EVALUATION_URI}
    train = s["TrainFinal"]["Arguments"]
    hyperparameters = train["HyperParameters"]
    for name in from_tuning:
        assert hyperparameters[name] == get("BestHyperparameters", f"OutputParameters['{name}']")
    static = {k: v for k, v in hyperparameters.items() if isinstance(v, str)}
    assert static == {k: v for k, v in config.worker_hyperparameters().items() if k not in from_tuning}
    assert static["mode"] == "worker" and static["fold"] == "all" and "fold_runner" not in static
    assert train["InputDataConfig"][0]["ChannelName"] == "train"
    assert train["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == {"Get": PREPARED}
    # The release step ends the run's pools right after: a keep-alive here would be billed for nothing.
    assert "KeepAlivePeriodInSeconds" not in train["ResourceConfig"]
    assert train["Tags"] == [{"Key": "warmcv:role", "Value": "final"}]


def test_model_registration_and_transform_wiring(example_definition, config: LauncherConfig):
    s = steps(example_definition)
    artifacts = get("TrainFinal", "ModelArtifacts.S3ModelArtifacts")
    assert s["CreateModel"]["Arguments"]["PrimaryContainer"]["ModelDataUrl"] == artifacts
    register = s["RegisterModel"]["Arguments"]
    assert register["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == artifacts
    assert register["ModelPackageGroupName"] == "warmcv-census"
    assert register["ModelApprovalStatus"] == "PendingManualApproval"
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics == {"ContentType": "application/json",
                          "S3Uri": get("BestHyperparameters", f"OutputParameters['{handlers.EVALUATION_URI}']")}
    metadata = register["CustomerMetadataProperties"]
    # The Lambda returns the CV numbers as Float outputs (the baseline condition compares them); the metadata
    # map takes strings, so they are joined into one.
    for key, output in (("warmcv:cv_validation_mean", handlers.CV_MEAN), ("warmcv:cv_validation_std", handlers.CV_STD)):
        assert metadata[key] == {"Std:Join": {"On": "", "Values": [get("BestHyperparameters",
                                                                       f"OutputParameters['{output}']")]}}
    outputs = {o["OutputName"]: o["OutputType"] for o in s["BestHyperparameters"]["OutputParameters"]}
    assert outputs[handlers.CV_MEAN] == outputs[handlers.CV_STD] == "Float" and outputs[handlers.CV_METRIC] == "String"
    transform = s["Predict"]["Arguments"]
    assert transform["ModelName"] == get("CreateModel", "ModelName")
    assert transform["TransformInput"]["SplitType"] == "Line" and transform["BatchStrategy"] == "MultiRecord"
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == config.s3.batch_input
    release = s["ReleaseWarmPools"]
    assert release["FunctionArn"].endswith(":function:warmcv-release-warm-pools")
    assert release["Arguments"] == {"tuning_job_name": get("Tune", "HyperParameterTuningJobName")}


def test_image_and_role_everywhere(example_definition, config: LauncherConfig):
    s = steps(example_definition)
    images = [s["Prepare"]["Arguments"]["AppSpecification"]["ImageUri"],
              s["Tune"]["Arguments"]["TrainingJobDefinition"]["AlgorithmSpecification"]["TrainingImage"],
              s["TrainFinal"]["Arguments"]["AlgorithmSpecification"]["TrainingImage"],
              s["CreateModel"]["Arguments"]["PrimaryContainer"]["Image"],
              s["RegisterModel"]["Arguments"]["InferenceSpecification"]["Containers"][0]["Image"]]
    assert images == [config.image_uri] * 5
    assert {x for x in strings(example_definition) if ".dkr.ecr." in x} == {config.image_uri}
    assert {x for x in strings(example_definition) if ":iam::" in x} == {config.aws.role_arn}


def test_pipeline_role_allows_every_step(example_definition, config: LauncherConfig):
    policy = iam.pipeline_role_policy(config)
    allowed = iam.allowed_actions(policy)
    for step in steps(example_definition).values():
        assert set(iam.STEP_ACTIONS[step["Type"]]) <= allowed, step["Type"]
    lambda_resources = next(st["Resource"] for st in policy["Statement"] if st["Sid"] == "LambdaStep")
    assert {st["FunctionArn"] for st in example_definition["Steps"] if st["Type"] == "Lambda"} == set(lambda_resources)


def test_definition_is_deterministic(tmp_path, example_definition):
    assert definition(tmp_path) == example_definition


def test_variants(tmp_path):
    """Seed 0 (the SDK drops it), Grid (no job count), no early stopping, no release step, Hyperband."""
    grid = steps(definition(tmp_path, "--strategy", "Grid", "--seed", "0", "--tune", "num_leaves,max_depth",
                            "--range", "num_leaves=31,63", "--range", "max_depth=4,8", "--set",
                            "early_stopping_rounds=0", "--no-release-warm-pools", "--keep-alive", "0"))
    tuning = grid["Tune"]["Arguments"]["HyperParameterTuningJobConfig"]
    assert tuning["RandomSeed"] == 0 and tuning["Strategy"] == "Grid"
    assert tuning["ResourceLimits"] == {"MaxParallelTrainingJobs": 4}
    assert sorted(r["Name"] for r in tuning["ParameterRanges"]["CategoricalParameterRanges"]) == ["max_depth", "num_leaves"]
    assert "ReleaseWarmPools" not in grid
    assert grid["BestHyperparameters"]["Arguments"]["rounds_from_cv"] == "false"
    assert grid["BestHyperparameters"]["Arguments"]["names"] == "max_depth,num_leaves"
    assert grid["TrainFinal"]["Arguments"]["HyperParameters"]["num_boost_round"] == "2000"
    assert "KeepAlivePeriodInSeconds" not in grid["TrainFinal"]["Arguments"]["ResourceConfig"]
    hyperband = steps(definition(tmp_path, "--strategy", "Hyperband", "--rounds", "3"), raw=True)
    config = hyperband["Tune"]["Arguments"]["HyperParameterTuningJobConfig"]
    # A trial's resource is one running-CV-mean line, K in all: the maximum is the execution's K.
    assert config["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1,
                                                                    "MaxResource": {"Get": "Parameters.Folds"}}}


def test_tune_dry_run_prints_the_request_offline(tmp_path):
    out = tmp_path / "stdout.txt"
    script = (f"import sys, runpy; sys.argv = [{str(OFFLINE)!r}, {str(tmp_path / 'r.json')!r}, '--', 'tune', "
              f"'--sagemaker', '--config', {str(EXAMPLE)!r}, '--prepared', 's3://my-bucket/prepared/x/', "
              f"'--dry-run']; runpy.run_path({str(OFFLINE)!r}, run_name='__main__')")
    with out.open("w") as handle:
        subprocess.run([sys.executable, "-c", script], stdout=handle, text=True, env=subprocess_env(), timeout=300,
                       check=True)
    outcome = json.loads((tmp_path / "r.json").read_text())
    assert outcome == {"rc": 0, "attempts": []}
    request = json.loads(out.read_text())
    channel = request["TrainingJobDefinition"]["InputDataConfig"][0]
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == "s3://my-bucket/prepared/x/"
    assert request["TrainingJobDefinition"]["StaticHyperParameters"] == example_config().coordinator_hyperparameters()


def test_publish_sends_exactly_create_and_start(monkeypatch, config: LauncherConfig):
    """UpsertPipeline and StartPipelineExecution requests, field by field (botocore Stubber, no network)."""
    import socket

    from botocore.stub import ANY, Stubber

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    from warmcv.launcher import pipeline, sdk

    session = sdk.pipeline_session(config)
    arn = "arn:aws:sagemaker:us-east-1:111122223333:pipeline/warmcv-census"
    with Stubber(session.sagemaker_client) as stub:
        stub.add_response("create_pipeline", {"PipelineArn": arn}, {
            "PipelineName": "warmcv-census", "RoleArn": config.aws.pipeline_role_arn, "PipelineDefinition": ANY,
            "PipelineDescription": ANY})
        stub.add_response("start_pipeline_execution", {"PipelineExecutionArn": arn + "/execution/abc"},
                          {"PipelineName": "warmcv-census"})
        result = pipeline.publish(config, upsert=True, start=True, session=session)
        stub.assert_no_pending_responses()
    assert result == {"pipeline_arn": arn, "execution_arn": arn + "/execution/abc"}


def test_tune_sends_the_dry_run_request(monkeypatch):
    """`tune --sagemaker` sends exactly the offline-built request (Stubber), seed 0 included."""
    import boto3
    from botocore.stub import Stubber

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from warmcv.launcher import tuner

    config = example_config(s3={"prepared": "s3://my-bucket/prepared/x/"}, tuning={"seed": 0})
    request = tuner.tuning_request(config)
    assert request["HyperParameterTuningJobConfig"]["RandomSeed"] == 0
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response("create_hyper_parameter_tuning_job",
                          {"HyperParameterTuningJobArn": "arn:aws:sagemaker:us-east-1:111122223333:"
                                                         "hyper-parameter-tuning-job/warmcv-t1"},
                          {"HyperParameterTuningJobName": "warmcv-t1", **request})
        assert tuner.start_tuning(config, job_name="warmcv-t1", client=client) == "warmcv-t1"
        stub.assert_no_pending_responses()


def test_no_classic_experiment_per_execution(example_definition):
    """Switched off on purpose (see build_pipeline): it needs IAM grants for records warmcv never reads."""
    assert example_definition.get("PipelineExperimentConfig") is None


def test_the_final_job_keeps_its_pool_only_when_nothing_releases_it(tmp_path: Path):
    kept = steps(definition(tmp_path, "--no-release-warm-pools"))
    assert kept["TrainFinal"]["Arguments"]["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 900
    assert "ReleaseWarmPools" not in kept


def test_users_change_the_run_in_studio_through_pipeline_parameters(example_definition, config: LauncherConfig):
    """Image, instance types, K, the trial budget, the numeric ranges, approval and baseline are parameters,
    each one wired to every place that uses it."""
    params = {p["Name"]: p for p in example_definition["Parameters"]}
    raw = steps(example_definition, raw=True)

    def ref(name: str) -> dict[str, str]:
        return {"Get": f"Parameters.{name}"}

    def as_string(name: str) -> dict[str, Any]:
        return {"Std:Join": {"On": "", "Values": [ref(name)]}}

    tune = raw["Tune"]["Arguments"]
    job = tune["TrainingJobDefinition"]
    final = raw["TrainFinal"]["Arguments"]
    prepare = raw["Prepare"]["Arguments"]
    register = raw["RegisterModel"]["Arguments"]
    assert prepare["AppSpecification"]["ImageUri"] == job["AlgorithmSpecification"]["TrainingImage"] == \
        final["AlgorithmSpecification"]["TrainingImage"] == raw["CreateModel"]["Arguments"]["PrimaryContainer"][
            "Image"] == register["InferenceSpecification"]["Containers"][0]["Image"] == ref("ImageUri")
    assert prepare["ProcessingResources"]["ClusterConfig"]["InstanceType"] == ref("ProcessingInstanceType")
    assert job["ResourceConfig"]["InstanceType"] == final["ResourceConfig"]["InstanceType"] == \
        ref("TrainingInstanceType")
    assert raw["Predict"]["Arguments"]["TransformResources"]["InstanceType"] == ref("TransformInstanceType")
    arguments = prepare["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--folds") + 1] == as_string("Folds")
    assert job["StaticHyperParameters"]["n_folds"] == final["HyperParameters"]["n_folds"] == as_string("Folds")
    assert tune["HyperParameterTuningJobConfig"]["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": ref("MaxTrials"), "MaxParallelTrainingJobs": ref("ParallelTrials")}
    assert (params["Folds"]["DefaultValue"], params["ParallelTrials"]["DefaultValue"],
            params["MaxTrials"]["DefaultValue"]) == (5, 4, 40)
    ranges = tune["HyperParameterTuningJobConfig"]["ParameterRanges"]
    numeric = ranges["IntegerParameterRanges"] + ranges["ContinuousParameterRanges"]
    assert {r["Name"] for r in numeric} == {n for n, d in config.search_space().items() if d.range is not None}
    num_leaves = next(r for r in numeric if r["Name"] == "num_leaves")
    assert (num_leaves["MinValue"], num_leaves["MaxValue"]) == (ref("NumLeavesMin"), ref("NumLeavesMax"))
    assert (params["NumLeavesMin"]["DefaultValue"], params["NumLeavesMax"]["DefaultValue"]) == ("16", "128")
    assert register["ModelApprovalStatus"] == ref("ModelApprovalStatus")
    assert params["ModelApprovalStatus"]["EnumValues"] == ["PendingManualApproval", "Approved", "Rejected"]
    condition = raw["BeatsBaseline"]["Arguments"]["Conditions"]
    assert condition == [{"Type": "GreaterThan", "LeftValue": get("BestHyperparameters",
                                                                  f"OutputParameters['{handlers.CV_MEAN}']"),
                          "RightValue": ref("BaselineObjective")}]
    assert params["BaselineObjective"] == {"Name": "BaselineObjective", "Type": "Float", "DefaultValue": 0.5}
    used = json.dumps(raw)
    assert all(json.dumps(ref(name)) in used for name in params), "a parameter nothing uses"


def test_a_minimised_metric_registers_only_below_its_baseline(tmp_path: Path):
    s = steps(definition(tmp_path, "--set", "metric=rmse", "--task", "regression", "--set", "objective=regression"),
              raw=True)
    assert s["BeatsBaseline"]["Arguments"]["Conditions"][0]["Type"] == "LessThan"


# -- botocore's validation, both strategies -------------------------------------------------------------------------
def test_every_step_passes_botocores_validation_offline(example_definition, driver_definition):
    from tests.launcher.botocore_check import problems, validated_steps

    for document, expected in ((example_definition, {"Prepare", "Tune", "TrainFinal", "CreateModel", "RegisterModel",
                                                      "Predict"}),
                               (driver_definition, {"Prepare", "Search", "TrainFinal", "CreateModel", "RegisterModel",
                                                    "Predict"})):
        assert set(validated_steps(document)) == expected
        assert problems(document) == {}
    # The check itself catches what SageMaker would refuse.
    broken = json.loads(json.dumps(driver_definition))
    search = next(s for s in broken["Steps"] if s["Name"] == "Search")
    search["Arguments"]["CheckpointConfig"]["S3Path"] = "s3://x"  # not a member of CheckpointConfig
    del search["Arguments"]["RoleArn"]
    report = problems(broken)["Search"]
    assert "Unknown parameter in CheckpointConfig" in report and 'Missing required parameter in input: "RoleArn"' in report


# -- the driver strategy -------------------------------------------------------------------------------------------
DRIVER_ARGS = ("--strategy", "driver", "--max-trials-without-improvement", "0", "--no-complete-on-convergence")
RESULT = "driver_result.json"


@pytest.fixture(scope="module")
def driver_definition(tmp_path_factory) -> dict[str, Any]:
    return definition(tmp_path_factory.mktemp("driver-definition"), *DRIVER_ARGS)


def json_get(path: str) -> dict[str, Any]:
    return {"Std:JsonGet": {"Path": path, "S3Uri": {"Std:Join": {"On": "/", "Values": [
        "s3://my-bucket/warmcv/census", "evaluation", {"Get": "Execution.PipelineExecutionId"}, RESULT]}}}}


def test_driver_steps_and_order(driver_definition):
    s = steps(driver_definition, raw=True)
    assert list(s) == ["Prepare", "Search", "TrainFinal", "CreateModel", "BeatsBaseline", "RegisterModel", "Predict",
                       "BelowBaseline", "ReleaseWarmPools"]
    assert s["Search"]["Type"] == "Training" and "Tune" not in s and "BestHyperparameters" not in s  # no Lambda
    assert s["TrainFinal"]["DependsOn"] == ["Search"]


def test_the_driver_job_runs_the_search_the_tuner_would(driver_definition):
    from warmcv.declarations import parse_hyperparameters
    from warmcv.tuning.driver import DriverPlan

    config = example_config(tuning={"strategy": "driver", "max_trials_without_improvement": 0,
                                    "complete_on_convergence": False})
    raw = steps(driver_definition, raw=True)["Search"]["Arguments"]
    job = steps(driver_definition)["Search"]["Arguments"]  # parameters at their defaults
    assert job["ResourceConfig"] == {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
    assert "KeepAlivePeriodInSeconds" not in job["ResourceConfig"]  # the driver keeps no pool; its folds do
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 5 * 86400}
    assert raw["CheckpointConfig"]["S3Uri"] == {"Std:Join": {"On": "/", "Values": [
        "s3://my-bucket/warmcv/census", "checkpoints", {"Get": "Execution.PipelineExecutionId"}]}}
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == {"Get": PREPARED}
    assert job["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions(COORDINATOR_METRICS)
    assert job["Tags"] == [{"Key": "warmcv:role", "Value": "driver"}]
    hps = raw["HyperParameters"]
    assert hps["fold_instance_type"] == {"Get": "Parameters.TrainingInstanceType"}
    for name, parameter in (("n_folds", "Folds"), ("trials", "MaxTrials"), ("parallel_trials", "ParallelTrials")):
        assert hps[name] == {"Std:Join": {"On": "", "Values": [{"Get": f"Parameters.{parameter}"}]}}
    search = hps["search"]["Std:Join"]["Values"]
    assert {"Get": "Parameters.NumLeavesMin"} in search and {"Get": "Parameters.LearningRateMax"} in search
    # With every parameter at its default, the job's hyperparameters are exactly what the config makes, and they
    # make the tuner's trials: the same space, the same static values.
    resolved = dict(job["HyperParameters"])
    assert resolved.pop("run_name") == {"Std:Join": {"On": "-", "Values": [
        "warmcv", {"Get": "Execution.PipelineExecutionId"}]}}
    assert resolved.pop("result_s3_uri")["Std:Join"]["Values"][:2] == ["s3://my-bucket/warmcv/census", "evaluation"]
    assert resolved == config.driver_hyperparameters()
    plan = DriverPlan.from_hyperparameters(parse_hyperparameters({**resolved, "run_name": "warmcv-x"}))
    assert plan.space == config.search_space() and (plan.trials, plan.parallel) == (40, 4)


def test_the_pipeline_reads_the_drivers_result_with_jsonget(driver_definition):
    config = example_config()
    raw = steps(driver_definition, raw=True)
    final = raw["TrainFinal"]["Arguments"]["HyperParameters"]
    for name in config.final_from_tuning():  # the tuned values, and the CV's rounds (early stopping is on)
        assert final[name] == json_get(f"final_hyperparameters.{name}")
    assert raw["BeatsBaseline"]["Arguments"]["Conditions"] == [
        {"Type": "GreaterThan", "LeftValue": json_get("cv_mean"), "RightValue": {"Get": "Parameters.BaselineObjective"}}]
    register = raw["RegisterModel"]["Arguments"]
    assert register["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == {"Std:Join": {"On": "/", "Values": [
        "s3://my-bucket/warmcv/census", "evaluation", {"Get": "Execution.PipelineExecutionId"}, "cv_statistics.json"]}}
    metadata = register["CustomerMetadataProperties"]
    assert metadata["warmcv:cv_validation_mean"] == {"Std:Join": {"On": "", "Values": [json_get("cv_mean")]}}
    assert metadata["warmcv:best_trial"] == json_get("best_fold_jobs") and metadata["warmcv:cv_metric"] == "auc"
    # The release step finds the run's fold jobs by the run name they are tagged with.
    assert raw["ReleaseWarmPools"]["Arguments"] == {"tuning_job_name": raw["Search"]["Arguments"]["HyperParameters"][
        "run_name"]}


def test_the_driver_result_carries_what_the_jsonget_paths_read(tmp_path):
    """The paths the pipeline reads exist in what `driver_result` writes, with the types the steps need."""
    import optuna

    from warmcv.cv import CrossValidationSummary, FoldResult
    from warmcv.tuning.driver import driver_result
    from warmcv.tuning.search import CV_ATTR, HYPERPARAMETERS_ATTR

    config = example_config()
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.suggest_int("num_leaves", 8, 64)
    folds = [FoldResult(fold=f, train_score=0.9, validation_score=0.8 + f / 100, best_iteration=40 + f, n_train=10,
                        n_valid=5, seconds=1.0) for f in range(3)]
    summary = CrossValidationSummary.from_results(folds, "auc", "Maximize", "sagemaker", 3.0, {})
    trial.set_user_attr(CV_ATTR, summary.to_dict())
    trial.set_user_attr(HYPERPARAMETERS_ATTR, {**config.static_hyperparameters(), "num_leaves": str(trial.params[
        "num_leaves"])})
    study.tell(trial, summary.validation_mean)
    result, statistics = driver_result(study, "warmcv-x", "binary")
    paths = [f"final_hyperparameters.{n}" for n in ("num_leaves", "num_boost_round")] + ["cv_mean", "cv_std",
                                                                                        "best_fold_jobs"]
    for path in paths:
        value: Any = result
        for part in path.split("."):
            value = value[part]
        assert isinstance(value, float if path.startswith("cv_") else str), path
    assert result["final_hyperparameters"]["num_boost_round"] == "41"  # the folds' mean best iteration
    assert statistics["binary_classification_metrics"]["auc"]["value"] == result["cv_mean"]


def test_the_roles_allow_what_the_driver_does(driver_definition):
    config = example_config(tuning={"strategy": "driver", "max_trials_without_improvement": 0,
                                    "complete_on_convergence": False})
    pipeline = iam.pipeline_role_policy(config)
    allowed = iam.allowed_actions(pipeline)
    for step in steps(driver_definition).values():
        assert set(iam.STEP_ACTIONS[step["Type"]]) <= allowed, step["Type"]
    read = next(st for st in pipeline["Statement"] if st["Sid"] == "ReadDriverResult")
    assert read["Action"] == ["s3:GetObject"] and read["Resource"] == "arn:aws:s3:::my-bucket/warmcv/census/evaluation/*"
    lambdas = next(st["Resource"] for st in pipeline["Statement"] if st["Sid"] == "LambdaStep")
    assert lambdas == ["arn:aws:lambda:us-east-1:111122223333:function:warmcv-release-warm-pools"]  # no best-trial one
    job = iam.job_role_policy(config)
    prune = next(st for st in job["Statement"] if st["Sid"] == "DriverPrunesCheckpoints")
    assert prune["Action"] == ["s3:DeleteObject"] and prune["Resource"].endswith("/warmcv/census/checkpoints/*")
    launcher = iam.allowed_actions(iam.launcher_policy(config))
    assert {"sagemaker:CreateTrainingJob", "sagemaker:StopTrainingJob", "sagemaker:ListTrainingJobs"} <= launcher
