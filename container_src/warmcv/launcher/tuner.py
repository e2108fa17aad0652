"""The SageMaker tuner whose trials are warmcv coordinators, built from the config and the declarations.

Ranges, static hyperparameters, metric definitions and the objective all come from
`warmcv.declarations`; this module only converts them to the SDK's objects. Each trial is a
coordinator (mode=coordinator, fold_runner=sagemaker) that runs K fold jobs with warm pools; the
tuner's own jobs never keep a warm pool (the service drops KeepAlive for tuning jobs), so the trial
trainer sets none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warmcv.aws import tags as tag_keys
from warmcv.declarations import (
    COORDINATOR_METRICS,
    WORKER_METRICS,
    metric_definitions,
    sagemaker_parameter_ranges,
    tuning_objective,
)
from warmcv.launcher.config import LauncherConfig, check_tuning_job_name
from warmcv.launcher.sdk import pipeline_session

if TYPE_CHECKING:
    from warmcv.launcher.parameters import PipelineParameters


def parameter_ranges(config: LauncherConfig, params: PipelineParameters | None = None) -> dict[str, Any]:
    """The declarations' `ParameterRanges`, as the SDK's range objects (values kept as the declarations format
    them); with pipeline parameters, each numeric range's ends are the execution's parameters."""
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    ranges = sagemaker_parameter_ranges(config.search_space())
    bounds = params.ranges if params is not None else {}

    def ends(item: dict[str, Any]) -> tuple[Any, Any]:
        return bounds.get(item["Name"], (item["MinValue"], item["MaxValue"]))

    sdk: dict[str, Any] = {}
    for item in ranges["IntegerParameterRanges"]:
        sdk[item["Name"]] = IntegerParameter(*ends(item), scaling_type=item["ScalingType"])
    for item in ranges["ContinuousParameterRanges"]:
        sdk[item["Name"]] = ContinuousParameter(*ends(item), scaling_type=item["ScalingType"])
    for item in ranges["CategoricalParameterRanges"]:
        sdk[item["Name"]] = CategoricalParameter(item["Values"])
    return sdk


def _tags(role: str) -> list[dict[str, str]]:
    return [{"Key": tag_keys.ROLE, "Value": role}]


def trainer(config: LauncherConfig, session: Any, hyperparameters: dict[str, Any], keep_alive: int,
            base_job_name: str, output: str, tags: list[dict[str, str]] | None = None,
            worker_metrics: bool = False, params: PipelineParameters | None = None,
            environment: dict[str, str] | None = None) -> Any:
    """A ModelTrainer on the warmcv image (coordinator trials and the final training share the instance setup)."""
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, OutputDataConfig, StoppingCondition

    instance_type = params.training_instance_type if params is not None else config.training.instance_type
    image = params.image_uri if params is not None else config.image_uri
    compute = Compute(instance_type=instance_type, instance_count=config.training.instance_count,
                      volume_size_in_gb=config.training.volume_size_gb,
                      **({"keep_alive_period_in_seconds": keep_alive} if keep_alive else {}))
    model_trainer = ModelTrainer(
        training_image=image, role=config.aws.role_arn, sagemaker_session=session, compute=compute,
        stopping_condition=StoppingCondition(max_runtime_in_seconds=config.training.max_runtime_seconds),
        output_data_config=OutputDataConfig(s3_output_path=output), hyperparameters=hyperparameters,
        base_job_name=base_job_name, tags=tags, environment=dict(environment or {}),
    )
    if worker_metrics:
        from sagemaker.train.configs import MetricDefinition

        model_trainer.with_metric_definitions(
            [MetricDefinition(name=d["Name"], regex=d["Regex"]) for d in metric_definitions(WORKER_METRICS)])
    return model_trainer


def _tuner_class() -> type:
    from sagemaker.train.tuner import HyperparameterTuner

    class Tuner(HyperparameterTuner):
        """Keeps a random seed of 0, which SDK 3.27.0 drops twice (`if self.random_seed:` when building the
        config, and a truthiness test when serializing shapes), though 0 is a valid seed; and puts pipeline
        parameters where the SDK's typed shapes accept only numbers (ResourceLimits), into the request it
        captured."""

        resource_limits: dict[str, Any] = {}
        max_resource: Any = None  # a pipeline parameter for Hyperband's MaxResource

        def _start_tuning_job(self, inputs):  # noqa: ANN001, ANN202 - the SDK's own signature
            result = super()._start_tuning_job(inputs)
            config = self.sagemaker_session.context.args["HyperParameterTuningJobConfig"]
            if self.random_seed == 0 and not isinstance(self.random_seed, bool):
                config["RandomSeed"] = 0
            config.setdefault("ResourceLimits", {}).update(self.resource_limits)
            hyperband = (config.get("StrategyConfig") or {}).get("HyperbandStrategyConfig")
            if hyperband is not None and self.max_resource is not None:
                hyperband["MaxResource"] = self.max_resource
            return result

    return Tuner


def tuner(config: LauncherConfig, session: Any, params: PipelineParameters | None = None) -> Any:
    """The HyperparameterTuner: M parallel coordinator trials for N rounds, objective from the metric's direction.

    With pipeline parameters, K, the trial budget, the ranges, the image and the instance type are the
    execution's."""
    from sagemaker.core.shapes import (
        BestObjectiveNotImproving,
        ConvergenceDetected,
        HyperbandStrategyConfig,
        HyperParameterTuningJobStrategyConfig,
        TuningJobCompletionCriteria,
    )

    tuning = config.tuning
    objective = tuning_objective(config.metric)
    hyperparameters: dict[str, Any] = config.coordinator_hyperparameters()
    if params is not None:
        hyperparameters["n_folds"] = params.folds.to_string()
    trial = trainer(config, session, hyperparameters, keep_alive=0, base_job_name="warmcv-trial",
                    output=config.uri("tuning"), params=params, environment=config.coordinator_environment())
    strategy_config = None
    if tuning.search_strategy == "Hyperband":
        # A trial's resource is one objective line: its running CV mean after each fold, K in all. Hyperband stops
        # a trial that reaches the maximum, so it is K (an execution's Folds parameter, when there is one).
        strategy_config = HyperParameterTuningJobStrategyConfig(hyperband_strategy_config=HyperbandStrategyConfig(
            min_resource=tuning.hyperband_min_resource,
            max_resource=tuning.hyperband_max_resource or config.prepare.folds))
    criteria: dict[str, Any] = {}
    if tuning.target_objective_value is not None:
        criteria["target_objective_metric_value"] = tuning.target_objective_value
    if tuning.max_trials_without_improvement:
        criteria["best_objective_not_improving"] = BestObjectiveNotImproving(
            max_number_of_training_jobs_not_improving=tuning.max_trials_without_improvement)
    if tuning.complete_on_convergence:
        criteria["convergence_detected"] = ConvergenceDetected(complete_on_convergence="Enabled")
    built = _tuner_class()(
        model_trainer=trial,
        objective_metric_name=objective["MetricName"],
        objective_type=objective["Type"],
        hyperparameter_ranges=parameter_ranges(config, params),
        metric_definitions=metric_definitions(COORDINATOR_METRICS),
        strategy=tuning.search_strategy,
        # Grid search runs every combination: SageMaker rejects a job count with it.
        max_jobs=None if tuning.search_strategy == "Grid" else config.max_jobs,
        max_parallel_jobs=tuning.parallel_trials,
        max_runtime_in_seconds=tuning.max_runtime_seconds or None,
        early_stopping_type=tuning.early_stopping,
        random_seed=tuning.seed,
        strategy_config=strategy_config,
        completion_criteria_config=TuningJobCompletionCriteria(**criteria) if criteria else None,
        base_tuning_job_name="warmcv-tune",
    )
    if params is not None:
        limits = {"MaxParallelTrainingJobs": params.parallel_trials}
        if tuning.search_strategy != "Grid":
            limits["MaxNumberOfTrainingJobs"] = params.max_trials
        built.resource_limits = limits
        if tuning.search_strategy == "Hyperband" and not tuning.hyperband_max_resource:
            built.max_resource = params.folds
    return built


def _inputs(data_uri: Any) -> list[Any]:
    from sagemaker.train.configs import InputData

    from warmcv.contract import DATA_CHANNEL

    return [InputData(channel_name=DATA_CHANNEL, data_source=data_uri)]


def tuning_step_args(config: LauncherConfig, session: Any, data_uri: Any,
                     params: PipelineParameters | None = None) -> Any:
    """`tuner.tune(...)` under a PipelineSession: the TuningStep's arguments, nothing is called."""
    return tuner(config, session, params).tune(inputs=_inputs(data_uri), wait=False)


def tuning_request(config: LauncherConfig) -> dict[str, Any]:
    """The CreateHyperParameterTuningJob request `warmcv tune --sagemaker` would send (built offline)."""
    from warmcv.launcher.config import require

    require(config, "s3.prepared")
    session = pipeline_session(config)  # first: it prepares the environment the SDK imports need
    from sagemaker.mlops.workflow import TuningStep

    step = TuningStep(name="Tune", step_args=tuning_step_args(config, session, config.s3.prepared))
    return step.arguments


def start_tuning(config: LauncherConfig, job_name: str | None = None, client: Any | None = None) -> str:
    """Start the tuning job on data already prepared on S3, with exactly the request `--dry-run` prints.

    The request is built offline by the SDK (so the two cannot differ) and sent with boto3, which also
    keeps a seed of 0 that the SDK's own create path would drop.
    """
    import time

    name = job_name or f"warmcv-{time.strftime('%y%m%d-%H%M%S', time.gmtime())}"
    check_tuning_job_name(name)
    request = tuning_request(config)
    if client is None:
        import boto3

        client = boto3.client("sagemaker", region_name=config.aws.region)
    client.create_hyper_parameter_tuning_job(HyperParameterTuningJobName=name, **request)
    return name
