"""The SageMaker Pipeline: prepare -> tune -> best hyperparameters -> final training -> model, registration
-> batch transform -> release warm pools. Built with the SageMaker Python SDK v3, offline.

Every step runs the one warmcv image; values flow between steps as pipeline properties, never as
values known when the definition is built:
- Prepare (ProcessingStep) runs the image's `warmcv prepare`; its output prefix is the `train` channel
  of the tuner and of the final training.
- Tune (TuningStep): M x N coordinator trials, each cross-validating over K fold jobs with warm pools.
- BestHyperparameters (LambdaStep, `warmcv.launcher.handlers.best_hyperparameters`): the best trial's
  tuned values (and the rounds the CV found when early stopping is on), its CV mean and std, and the
  URI of the model-quality statistics JSON it writes for the registry.
- With `tuning.strategy = "driver"` those two are one step instead, Search (TrainingStep, mode=driver,
  `warmcv.launcher.driver`): the whole search in one job that creates every trial's fold jobs itself and
  writes the same values as JSON, which the later steps read with JsonGet.
- TrainFinal (TrainingStep): worker mode, fold=all, those values; keeps its instance warm.
- CreateModel + RegisterModel (ModelSteps): the model on the final artifacts, registered in the model
  package group with the CV statistics as model metrics and the mean/std as metadata.
- Predict (TransformStep): the image's serve mode over the batch input.
- ReleaseWarmPools (LambdaStep, optional): sets keep-alive 0 on the run's pools still available.
"""

from __future__ import annotations

import json
from typing import Any

from warmcv.aws import tags as tag_keys
from warmcv.launcher import handlers
from warmcv.launcher.config import LauncherConfig, require
from warmcv.launcher.lambda_deploy import functions
from warmcv.launcher.parameters import PipelineParameters
from warmcv.launcher.sdk import pipeline_session
from warmcv.launcher.tuner import trainer, tuning_step_args

PROCESSING_INPUT = "/opt/ml/processing/input"
PROCESSING_OUTPUT = "/opt/ml/processing/output"
# A Processing job shows this file's text as its ExitMessage; `--failure-file` is a top-level warmcv option.
PROCESSING_FAILURE_FILE = "/opt/ml/output/message"
PREPARED_OUTPUT = "prepared"
STATISTICS_FILE = "cv_statistics.json"

STEP_PREPARE = "Prepare"
STEP_TUNE = "Tune"
STEP_BEST = "BestHyperparameters"
STEP_TRAIN = "TrainFinal"
STEP_MODEL = "CreateModel"
STEP_REGISTER = "RegisterModel"
STEP_PREDICT = "Predict"
STEP_RELEASE = "ReleaseWarmPools"
STEP_GATE = "BeatsBaseline"
STEP_BELOW_BASELINE = "BelowBaseline"


def prepare_arguments(config: LauncherConfig, folds: Any = None) -> list[Any]:
    """The container arguments of the Prepare step: the image's ENTRYPOINT hands them to `warmcv`.
    `folds` is the pipeline parameter K as a string (the config's K when building without parameters)."""
    p = config.prepare
    args = ["--failure-file", PROCESSING_FAILURE_FILE, "prepare", "--data", PROCESSING_INPUT,
            "--target", p.target, "--out", PROCESSING_OUTPUT, "--folds", folds if folds is not None else str(p.folds),
            "--task", p.task,
            "--splitter", p.splitter, "--split-seed", str(p.seed)]
    for option, value in (("--group-column", p.group_column), ("--time-column", p.time_column),
                          ("--categorical", ",".join(p.categorical or ())), ("--drop", ",".join(p.drop))):
        if value:
            args += [option, value]
    for name in p.id_columns:
        args += ["--id-column", name]
    return args


def _function_arn(config: LauncherConfig, name: str) -> str:
    partition = config.aws.role_arn.split(":")[1]
    return f"arn:{partition}:lambda:{config.aws.region}:{config.account}:function:{name}"


def build_pipeline(config: LauncherConfig, session: Any | None = None) -> Any:
    """The Pipeline object; building it makes no AWS call."""
    require(config, "s3.input", "prepare.target", *(["s3.batch_input"] if config.transform.enabled else []))
    session = session or pipeline_session(config)

    from sagemaker.core.lambda_helper import Lambda
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import (
        MetricsSource,
        ModelMetrics,
        ModelQuality,
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
    )
    from sagemaker.core.transformer import Transformer
    from sagemaker.core.workflow.conditions import ConditionGreaterThan, ConditionLessThan
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow import (
        ConditionStep,
        FailStep,
        LambdaOutput,
        LambdaStep,
        ModelStep,
        Pipeline,
        ProcessingStep,
        TrainingStep,
        TransformStep,
        TuningStep,
    )
    from sagemaker.mlops.workflow.lambda_step import LambdaOutputTypeEnum
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train.configs import InputData

    from warmcv.contract import DATA_CHANNEL

    execution = ExecutionVariables.PIPELINE_EXECUTION_ID
    params = PipelineParameters.from_config(config)
    folds = params.folds.to_string()

    def run_uri(*parts: str) -> Any:
        return Join(on="/", values=[config.s3.root.rstrip("/"), parts[0], execution, *parts[1:]])

    # 1. Prepare: raw data -> folds, in the image.
    processor = Processor(
        role=config.aws.role_arn, image_uri=params.image_uri, instance_count=1,
        instance_type=params.processing_instance_type, volume_size_in_gb=config.prepare.volume_size_gb,
        base_job_name="warmcv-prepare", sagemaker_session=session,
    )
    prepare_args = processor.run(
        inputs=[ProcessingInput(input_name="raw", s3_input=ProcessingS3Input(
            s3_uri=config.s3.input, local_path=PROCESSING_INPUT, s3_data_type="S3Prefix", s3_input_mode="File"))],
        outputs=[ProcessingOutput(output_name=PREPARED_OUTPUT, s3_output=ProcessingS3Output(
            s3_uri=run_uri("prepared"), local_path=PROCESSING_OUTPUT, s3_upload_mode="EndOfJob"))],
        arguments=prepare_arguments(config, folds), wait=False, logs=False,
    )
    step_prepare = ProcessingStep(name=STEP_PREPARE, step_args=prepare_args)
    prepared = step_prepare.properties.ProcessingOutputConfig.Outputs[PREPARED_OUTPUT].S3Output.S3Uri

    best_function, release_function = functions(config.pipeline.best_hyperparameters_lambda,
                                                config.pipeline.release_warm_pools_lambda)
    from_tuning = config.final_from_tuning()
    search_steps: list[Any]
    if config.tuning.strategy == "driver":
        # 2-3. One driver job runs the whole search and writes the result, which the next steps read (JsonGet).
        from warmcv.launcher.driver import driver_step

        step_search, best = driver_step(config, session, prepared, params, execution, run_uri)
        search_steps = [step_search]
        release_run = best["run_name"]
        final_after: list[Any] = [step_search]
    else:
        # 2. Tune: coordinator trials.
        step_tune = TuningStep(name=STEP_TUNE, step_args=tuning_step_args(config, session, prepared, params))

        # 3. The best trial's hyperparameters and CV statistics.
        outputs = [*from_tuning, handlers.BEST_TRAINING_JOB, handlers.CV_METRIC, handlers.CV_MEAN, handlers.CV_STD,
                   handlers.EVALUATION_URI]
        step_best = LambdaStep(
            name=STEP_BEST,
            lambda_func=Lambda(function_arn=_function_arn(config, best_function.name), session=session),
            inputs={
                "tuning_job_name": step_tune.properties.HyperParameterTuningJobName,
                "names": ",".join(from_tuning),
                "rounds_from_cv": "true" if config.early_stopping_rounds else "false",
                "evaluation_s3_uri": run_uri("evaluation", STATISTICS_FILE),
                "task": config.prepare.task,
            },
            outputs=[LambdaOutput(output_name=name, output_type=LambdaOutputTypeEnum.Float
                                  if name in handlers.NUMBERS else LambdaOutputTypeEnum.String) for name in outputs],
        )
        best = step_best.properties.Outputs
        search_steps = [step_tune, step_best]
        release_run = step_tune.properties.HyperParameterTuningJobName
        final_after = []

    # 4. The final training on all data with the best values. Its instance stays warm for a re-run only when
    # the release step is off: with it on, the pool would be killed by that very step (billed for nothing).
    from sagemaker.core.shapes import Tag

    final_hyperparameters: dict[str, Any] = {
        name: value for name, value in config.worker_hyperparameters().items() if name not in from_tuning}
    final_hyperparameters.update({name: best[name] for name in from_tuning})
    final_hyperparameters["n_folds"] = folds
    final_keep_alive = 0 if config.pipeline.release_warm_pools else config.training.keep_alive_seconds
    final = trainer(config, session, final_hyperparameters, keep_alive=final_keep_alive,
                    base_job_name="warmcv-final", output=config.uri("final"),
                    tags=[Tag(key=tag_keys.ROLE, value=tag_keys.ROLE_FINAL)], worker_metrics=True, params=params)
    step_train = TrainingStep(name=STEP_TRAIN, step_args=final.train(
        input_data_config=[InputData(channel_name=DATA_CHANNEL, data_source=prepared)], wait=False, logs=False),
        depends_on=final_after or None)

    # 5. Model and registration with the CV mean and std.
    def builder() -> Any:
        return ModelBuilder(image_uri=params.image_uri,
                            s3_model_data_url=step_train.properties.ModelArtifacts.S3ModelArtifacts,
                            role_arn=config.aws.role_arn, sagemaker_session=session,
                            # the image serves the model itself: no script-mode code to upload (that would
                            # call S3 for a default bucket while building the definition)
                            dependencies=None)

    step_model = ModelStep(name=STEP_MODEL, step_args=builder().build())
    group = config.pipeline.model_package_group or config.pipeline.name
    step_register = ModelStep(name=STEP_REGISTER, step_args=builder().register(
        model_package_group_name=group,
        content_types=[config.transform.content_type, "application/jsonlines"],
        response_types=[config.transform.accept, "application/jsonlines"],
        inference_instances=[config.transform.instance_type],
        transform_instances=[config.transform.instance_type],
        model_metrics=ModelMetrics(model_quality=ModelQuality(statistics=MetricsSource(
            content_type="application/json", s3_uri=best[handlers.EVALUATION_URI]))),
        customer_metadata_properties={
            "warmcv:cv_metric": best[handlers.CV_METRIC],
            "warmcv:cv_validation_mean": Join(on="", values=[best[handlers.CV_MEAN]]),
            "warmcv:cv_validation_std": Join(on="", values=[best[handlers.CV_STD]]),
            "warmcv:best_trial": best[handlers.BEST_TRAINING_JOB], "warmcv:n_folds": folds},
        approval_status=params.approval_status,
        description=f"warmcv LightGBM, tuned by {config.tuning.search_strategy} search over "
                    f"{config.prepare.folds}-fold CV ({config.tuning.strategy} strategy)",
    ))
    registered: list[Any] = [step_register]

    # 6. Batch predictions with the image's serve mode.
    if config.transform.enabled:
        transformer = Transformer(
            model_name=step_model.properties.ModelName, instance_count=config.transform.instance_count,
            instance_type=params.transform_instance_type, strategy="MultiRecord", assemble_with="Line",
            accept=config.transform.accept, output_path=run_uri("predictions"), sagemaker_session=session,
            base_transform_job_name="warmcv-predict",
        )
        # With ID columns, SageMaker keeps them out of the model's input and joins them to its output.
        processing = config.transform_data_processing() or {}
        step_predict = TransformStep(name=STEP_PREDICT, step_args=transformer.transform(
            data=config.s3.batch_input, content_type=config.transform.content_type,
            split_type="Line", wait=False, logs=False, input_filter=processing.get("InputFilter"),
            join_source=processing.get("JoinSource"), output_filter=processing.get("OutputFilter")),
            depends_on=[step_register])
        registered.append(step_predict)

    # Registration (and predictions) only for a model whose CV mean beats the baseline, as the public
    # reference pipeline does; otherwise the execution fails saying so, rather than succeeding with nothing.
    better = (ConditionGreaterThan if config_direction(config) == "Maximize" else ConditionLessThan)(
        left=best[handlers.CV_MEAN], right=params.baseline)
    step_gate = ConditionStep(name=STEP_GATE, conditions=[better], if_steps=registered, else_steps=[FailStep(
        name=STEP_BELOW_BASELINE, error_message=Join(on=" ", values=[
            "the best trial's CV", best[handlers.CV_METRIC], "of", best[handlers.CV_MEAN],
            "does not beat the baseline", params.baseline, "(pipeline parameter BaselineObjective):",
            "the model was trained but not registered"]))])
    steps: list[Any] = [step_prepare, *search_steps, step_train, step_model, step_gate]

    # 7. Nothing will reuse the pools after the last step: release them instead of paying the keep-alive.
    if config.pipeline.release_warm_pools:
        steps.append(LambdaStep(
            name=STEP_RELEASE,
            lambda_func=Lambda(function_arn=_function_arn(config, release_function.name), session=session),
            inputs={"tuning_job_name": release_run},
            outputs=[LambdaOutput(output_name="released", output_type=LambdaOutputTypeEnum.Integer)],
            # Nothing reuses a pool once the final training is done (batch transform has no warm pools).
            depends_on=[step_train],
        ))
    # No SageMaker Experiments (classic) experiment and trial per execution: the SDK's default would need the
    # pipeline role to create experiments and trials and associate every job, for records warmcv never reads
    # (a run's record is its model package and, with tracking on, its MLflow runs), and the SDK applies that
    # default only in some regions, so the same config would give different definitions by region.
    return Pipeline(name=config.pipeline.name, parameters=params.all(), steps=steps, sagemaker_session=session,
                    pipeline_experiment_config=None)


def config_direction(config: LauncherConfig) -> str:
    """Maximize or Minimize: the objective's direction, known from the config's metric."""
    from warmcv.declarations import SCORING_METRICS

    return SCORING_METRICS[config.metric].direction


def definition_json(config: LauncherConfig) -> str:
    """The pipeline definition, pretty-printed with sorted keys (stable for diffs)."""
    return json.dumps(json.loads(build_pipeline(config).definition()), indent=2, sort_keys=True)


def publish(config: LauncherConfig, upsert: bool = True, start: bool = False,
            session: Any | None = None) -> dict[str, str]:
    """Create or update the pipeline (UpsertPipeline under the pipeline role), then optionally start it."""
    pipeline = build_pipeline(config, session)
    result: dict[str, str] = {}
    if upsert:
        response = pipeline.upsert(role_arn=config.aws.pipeline_role_arn,
                                   description="warmcv: k-fold CV tuning of LightGBM with warm pools")
        result["pipeline_arn"] = response["PipelineArn"]
    if start:
        result["execution_arn"] = pipeline.start().arn
    return result
