"""The pipeline's search step for the driver strategy: one training job in mode=driver, read back with JsonGet.

Instead of a TuningStep (a coordinator job per trial) and a Lambda that reads the best trial, the driver
strategy puts one TrainingStep in the pipeline: the warmcv image in `mode=driver` on a small instance, with
the prepared data as its channel (its fold jobs copy it), a CheckpointConfig under the execution's own
prefix (a retried execution or step resumes the same study) and the search's settings as
hyperparameters, each pipeline parameter (K, M, M x N, the ranges, the fold instance type, the image)
wired in.

How the pipeline reads the result, and why this way: the driver writes `driver_result.json` (the final
hyperparameters, the CV mean and std, the recommended rounds) as a plain JSON object to
`<root>/evaluation/<execution id>/`, and the steps after it read each value with `JsonGet(s3_uri=...)`
(`Std:JsonGet` with an `S3Uri`), the form the SDK itself uses to read what a training job of a `@step`
function wrote (sagemaker.mlops.workflow.function_step). The alternative, a ProcessingStep with a
PropertyFile, would put a Processing job, which has no warm pool and starts in minutes, between the search
and the final training only to copy a file the driver can write itself; and no Lambda is needed.
"""

from __future__ import annotations

from typing import Any

from warmcv.aws import tags as tag_keys
from warmcv.declarations import COORDINATOR_METRICS, HYPERPARAMETERS, metric_definitions
from warmcv.launcher import handlers
from warmcv.launcher.config import LauncherConfig
from warmcv.launcher.parameters import PipelineParameters
from warmcv.tuning.driver import RESULT_FILE, SEARCH_SEPARATOR, STATISTICS_FILE

ROLE_DRIVER = "driver"  # warmcv:role of the driver job


def search_setting(config: LauncherConfig, params: PipelineParameters) -> Any:
    """The driver's `search` hyperparameter with every numeric range's ends the execution's parameters."""
    from sagemaker.core.workflow.functions import Join

    from warmcv.tuning.space import describe

    values: list[Any] = []
    for name, spec in describe(config.search_space()).items():
        if values:
            values.append(SEARCH_SEPARATOR)
        if "choices" in spec:
            values.append(f"{name}={','.join(spec['choices'])}")
            continue
        hp = HYPERPARAMETERS[name]
        low, high = params.ranges.get(name, (hp.format(spec["low"]), hp.format(spec["high"])))
        scaling = {"Logarithmic": "log", "Linear": "linear", "Auto": "auto",
                   "ReverseLogarithmic": "reverselog"}[spec["scaling"]]
        values += [f"{name}=", low, ":", high, f":{scaling}"]
    return Join(on="", values=values)


def run_name(execution: Any) -> Any:
    """What the run's fold jobs are named and tagged after: `warmcv-<execution id>` (within 40 characters)."""
    from sagemaker.core.workflow.functions import Join

    return Join(on="-", values=["warmcv", execution])


def driver_step(config: LauncherConfig, session: Any, prepared: Any, params: PipelineParameters, execution: Any,
                run_uri: Any) -> tuple[Any, dict[str, Any]]:
    """(the driver's TrainingStep, the pipeline variables the later steps read, by the Lambda's output names)."""
    from sagemaker.core.shapes import Tag
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.mlops.workflow import TrainingStep
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import (
        CheckpointConfig,
        Compute,
        InputData,
        MetricDefinition,
        OutputDataConfig,
        StoppingCondition,
    )

    from warmcv.contract import DATA_CHANNEL

    name = run_name(execution)
    hyperparameters: dict[str, Any] = config.driver_hyperparameters()
    hyperparameters.update({
        "n_folds": params.folds.to_string(), "trials": params.max_trials.to_string(),
        "parallel_trials": params.parallel_trials.to_string(), "fold_instance_type": params.training_instance_type,
        "search": search_setting(config, params), "run_name": name, "result_s3_uri": run_uri("evaluation"),
    })
    trainer = ModelTrainer(
        training_image=params.image_uri, role=config.aws.role_arn, sagemaker_session=session,
        compute=Compute(instance_type=config.tuning.driver_instance_type, instance_count=1,
                        volume_size_in_gb=config.training.volume_size_gb),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=config.tuning.driver_max_runtime_seconds),
        output_data_config=OutputDataConfig(s3_output_path=config.uri("driver")),
        # Under the execution's own prefix: a retried execution (same id) resumes the same study.
        checkpoint_config=CheckpointConfig(s3_uri=run_uri("checkpoints")),
        hyperparameters=hyperparameters, base_job_name="warmcv-driver",
        environment=config.coordinator_environment(),
        tags=[Tag(key=tag_keys.ROLE, value=ROLE_DRIVER)],
    )
    trainer.with_metric_definitions(
        [MetricDefinition(name=d["Name"], regex=d["Regex"]) for d in metric_definitions(COORDINATOR_METRICS)])
    step = TrainingStep(name="Search", step_args=trainer.train(
        input_data_config=[InputData(channel_name=DATA_CHANNEL, data_source=prepared)], wait=False, logs=False))

    result = run_uri("evaluation", RESULT_FILE)

    def read(path: str) -> Any:
        return JsonGet(s3_uri=result, json_path=path, step=step)

    outputs: dict[str, Any] = {n: read(f"final_hyperparameters.{n}") for n in config.final_from_tuning()}
    outputs.update({
        handlers.CV_MEAN: read("cv_mean"), handlers.CV_STD: read("cv_std"), handlers.CV_METRIC: config.metric,
        handlers.BEST_TRAINING_JOB: read("best_fold_jobs"),
        handlers.EVALUATION_URI: run_uri("evaluation", STATISTICS_FILE),
        "run_name": name,
    })
    assert isinstance(result, Join)
    return step, outputs
