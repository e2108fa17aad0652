"""A SageMaker coordinator's trial in MLflow: one nested run under its tuning job's parent run.

Each trial of a SageMaker tuning job is its own coordinator job, so no single process sees the study. The
launcher gives every coordinator MLFLOW_TRACKING_URI (the tracking server's ARN, which the sagemaker-mlflow
plugin turns into signed requests) and MLFLOW_EXPERIMENT_NAME in its environment; a coordinator then:
1. finds its study: DescribeTrainingJob on itself names the tuning job that started it (TuningJobArn); a
   coordinator started on its own is a study of one;
2. joins the study's parent run, created by whichever coordinator comes first (`MlflowStudy.shared`);
3. logs its trial as a nested run;
4. moves the `warmcv.best` tag to the best finished trial it can see. The last coordinator to finish sees
   every trial, so the tag ends on the tuning job's best trial (two finishing within the same moment may
   leave it on the second best until the next finishes; a finished tuning job's last word is its own).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from warmcv.cv import CrossValidationSummary
from warmcv.tracking.mlflow import EXPERIMENT_ENV, TRACKING_URI_ENV, MlflowStudy, TrialRecord

log = logging.getLogger(__name__)

STANDALONE = "warmcv-coordinator"


def study_of_this_job(client: Any = None) -> tuple[str, str]:
    """(study, trial): the tuning job this coordinator is a trial of and its own job name."""
    name, arn = os.environ.get("TRAINING_JOB_NAME"), os.environ.get("TRAINING_JOB_ARN")
    if not name or not arn:  # not a SageMaker training job (SDK local mode, a laptop)
        return STANDALONE, os.environ.get("HOSTNAME") or "coordinator"
    if client is None:
        from warmcv.aws.clients import coordinator_clients
        from warmcv.runners.sagemaker.discovery import region_from_arn

        client = coordinator_clients(region_from_arn(arn)).prompt
    tuning_job = client.describe_training_job(TrainingJobName=name).get("TuningJobArn")
    return (tuning_job.rsplit("/", 1)[-1] if tuning_job else name), name


def log_coordinator_trial(summary: CrossValidationSummary, hyperparameters: dict[str, str], started_ms: int,
                          client: Any = None) -> str | None:
    """Log this coordinator's trial under its study's parent run; returns the trial's run id (None: tracking off)."""
    uri = os.environ.get(TRACKING_URI_ENV)
    if not uri:
        return None
    study_name, trial = study_of_this_job(client)
    experiment = os.environ.get(EXPERIMENT_ENV) or study_name
    study = MlflowStudy.shared(uri, experiment, study=study_name, run_name=study_name,
                               tags={"warmcv.tuning_job": study_name})
    run_id = study.log_trial(TrialRecord(trial, hyperparameters, started_ms, summary.seconds, summary))
    best = study.best_trial_run(summary.metric, summary.direction == "Maximize")
    if best is not None:
        study.tag_best(best.info.run_id)
    log.info("MLflow: trial %s logged as run %s under %s (experiment %s)", trial, run_id, study.run_id, experiment)
    return run_id
