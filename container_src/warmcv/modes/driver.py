"""driver mode: a whole search in one training job of its own, every trial's folds as fold jobs on warm pools.

Thin, like the other modes: it finds its own job (DescribeTrainingJob on itself, as a coordinator does),
makes its description into the fold jobs' template (the fold instance type instead of its own small one),
opens the study from its checkpoint, runs `warmcv.tuning.driver`'s search and writes the result:

- `driver_result.json` (the best trial's final hyperparameters, CV mean and std, recommended rounds) and
  `cv_statistics.json` (model-quality statistics) in its output and model archives, and, with
  `result_s3_uri`, as plain JSON objects in S3, where the pipeline reads them (JsonGet), with no Lambda;
- the coordinator's metric lines for the best trial, so the job's metrics show the CV result too.

The study survives a restart in the job's CheckpointConfig location (`warmcv.tuning.checkpoint`): a
driver restarted by SageMaker (RetryStrategy, a spot interruption) or started again on the same
checkpoint location resumes the same run, takes up the trials that were running (their fold jobs are
adopted, not created again) and loses no finished trial. SIGTERM (a user's stop, MaxRuntime) stops every
fold still running, as a coordinator does, and saves the study first.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from warmcv.clock import SYSTEM_CLOCK, Clock
from warmcv.contract import ContainerPaths, data_channel
from warmcv.declarations import HyperparameterValues, parse_hyperparameters
from warmcv.errors import UserInputError

log = logging.getLogger(__name__)


def job_identity() -> tuple[str, str]:
    name, arn = os.environ.get("TRAINING_JOB_NAME"), os.environ.get("TRAINING_JOB_ARN")
    if not name or not arn:
        raise UserInputError(
            "mode=driver runs inside a SageMaker training job of its own (TRAINING_JOB_NAME and TRAINING_JOB_ARN "
            "are not set, so this is not one); to drive a search from this machine, run "
            "`warmcv tune --sagemaker --strategy driver`")
    return name, arn


def run_record(existing: dict[str, Any] | None, hps: HyperparameterValues, me: dict[str, Any]) -> dict[str, Any]:
    """The run this driver belongs to: the checkpoint's, or a new one named `run_name` (else the job's name)."""
    if existing is not None:
        if hps["run_name"] and hps["run_name"] != existing["run_name"]:
            raise UserInputError(
                f"run_name={hps['run_name']!r}, but the checkpoint location holds run {existing['run_name']!r}: "
                "its fold jobs are named after it. Keep run_name, or give the new run another CheckpointConfig "
                "location")
        return existing
    created = me.get("CreationTime")
    created_at = created if isinstance(created, datetime) else datetime.now(UTC)
    return {"run_name": hps["run_name"] or me["TrainingJobName"], "created": created_at.isoformat(),
            "first_job": me["TrainingJobName"]}


def run_driver(paths: ContainerPaths, hps: HyperparameterValues, clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """The driver inside its training job; returns the result it wrote."""
    from warmcv.aws.clients import coordinator_clients
    from warmcv.aws.training_jobs import TrainingJobsApi
    from warmcv.cv import check_n_folds
    from warmcv.data.manifest import read_manifest
    from warmcv.model.params import training_setup
    from warmcv.runners.sagemaker import TIMING_ENV, Timing, region_from_arn
    from warmcv.tuning.checkpoint import StudyCheckpoint
    from warmcv.tuning.driver import (
        RESULT_FILE,
        STATISTICS_FILE,
        DriverPlan,
        discover_driver,
        driver_result,
        on_trial_logger,
        open_driver_study,
        run_search,
        trial_runners,
    )
    from warmcv.tuning.study import storage_url
    from warmcv.tuning.tracking import RunTracking

    name, arn = job_identity()
    clients = coordinator_clients(region_from_arn(arn), driver=True)
    api = TrainingJobsApi(clients.patient, s3=clients.s3, prompt=clients.prompt, creator=clients.creator)
    timing = Timing.parse(os.environ.get(TIMING_ENV))
    plan = DriverPlan.from_hyperparameters(hps)
    manifest = read_manifest(data_channel(paths))
    check_n_folds(hps, manifest)
    setup = training_setup(parse_hyperparameters({**plan.fixed, "mode": "coordinator"}), manifest)
    pruner = plan.pruner(setup.metric.direction, manifest.n_folds)  # refuses settings that could never prune

    job = discover_driver(api, name, hps, clock=clock, timing=timing)
    me, template = job.description, job.template
    checkpoint = me.get("CheckpointConfig") or {}
    store = StudyCheckpoint(paths.work_dir, paths.checkpoint_dir(checkpoint.get("LocalPath")) if checkpoint else None,
                            checkpoint.get("S3Uri"), api)
    if not checkpoint:
        log.warning("the driver job has no CheckpointConfig: its study lives only in this job, so a restarted driver "
                    "would start over (and could not find the fold jobs already running)")
    resumed = store.restore()
    record = run_record(store.read_record(), hps, me)
    store.write_record(record)
    run_name = record["run_name"]
    log.info("driver of run %s: %d trials, %d in flight, %d folds, fold jobs on %s; %s", run_name, plan.trials,
             plan.parallel, manifest.n_folds, template.base["ResourceConfig"].get("InstanceType"),
             "resuming its checkpointed study" if resumed else "a new study")

    runners = trial_runners(api, template, run_name, clock=clock, timing=timing,
                            created_after=datetime.fromisoformat(record["created"]), deadline=job.deadline,
                            max_runtime=job.max_runtime, pruner=pruner,
                            metric=(setup.metric.name, setup.metric.direction))
    study = open_driver_study(storage_url(paths.work_dir), setup.metric.direction, plan)
    tracking = RunTracking.for_driver(run_name)
    outcome = run_search(plan, manifest, study, runners, on_change=store.save,
                         on_trial=on_trial_logger(setup.metric.name), pruner=pruner,
                         observers=[tracking] if tracking else [])
    log.info("search done: %d complete, %d pruned, %d failed, %d checkpoint(s) written", outcome.completed,
             outcome.pruned, outcome.failed, store.saved)
    result, statistics = driver_result(study, run_name, manifest.task)
    publish(paths, api, hps["result_s3_uri"], result, statistics)
    if tracking is not None:
        tracking.finish(study.best_trial, {"cv_mean": result["cv_mean"], "cv_std": result["cv_std"]},
                        {"warmcv.best_trial": result["best_trial"]},
                        [paths.output_data_dir / RESULT_FILE, paths.output_data_dir / STATISTICS_FILE])
    report(result)
    return result


def publish(paths: ContainerPaths, api: Any, evaluation_uri: str, result: dict[str, Any],
            statistics: dict[str, Any]) -> None:
    """The result and the statistics in the job's output and model archives, and as plain JSON in S3."""
    from warmcv.tuning.driver import RESULT_FILE, STATISTICS_FILE

    documents = {RESULT_FILE: json.dumps(result, indent=2, sort_keys=True),
                 STATISTICS_FILE: json.dumps(statistics, indent=2, sort_keys=True)}
    for directory in (paths.output_data_dir, paths.model_dir):
        directory.mkdir(parents=True, exist_ok=True)
        for file, text in documents.items():
            (directory / file).write_text(text)
    if evaluation_uri:
        for file, text in documents.items():
            api.write_s3_object(f"{evaluation_uri.rstrip('/')}/{file}", text.encode(), "application/json")
        log.info("wrote %s and %s to %s", RESULT_FILE, STATISTICS_FILE, evaluation_uri)


def report(result: dict[str, Any]) -> None:
    """The best trial's CV mean and std in the coordinator's metric lines (the job's metric definitions)."""
    from warmcv.declarations.metrics import VALIDATION_SCORE, VALIDATION_SCORE_STD

    print(VALIDATION_SCORE.line(result["cv_mean"]), flush=True)
    print(VALIDATION_SCORE_STD.line(result["cv_std"]), flush=True)
    log.info("best trial #%d: CV %s %.6f +/- %.6f; final hyperparameters %s", result["best_trial"], result["metric"],
             result["cv_mean"], result["cv_std"], result["final_hyperparameters"])
