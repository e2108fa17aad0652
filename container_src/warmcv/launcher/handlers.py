"""AWS Lambda handlers the pipeline calls: the best trial's hyperparameters, and the warm-pool release.

They run in Lambda's Python runtime, which has the standard library and boto3 and nothing else: no
pandas, LightGBM, numpy or SageMaker SDK may be imported here or in anything this imports (a test
checks the zip `lambda_deploy` builds). The names of the hyperparameters to return come from the
pipeline definition, which derives them from the declarations, so nothing here lists them.

Handler names (module `warmcv.launcher.handlers`): `best_hyperparameters`, `release_warm_pools`.
"""

from __future__ import annotations

import json
import logging
import tarfile
from typing import Any
from urllib.parse import urlparse

from warmcv.cv.quality import model_quality_statistics
from warmcv.launcher import warm_pools

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)

SUMMARY_FILE = "cv_summary.json"  # what the coordinator writes into its model dir (modes/coordinator.py)
# Output names besides the hyperparameters; none is a declared hyperparameter name (a test checks).
BEST_TRAINING_JOB = "best_training_job"
CV_MEAN = "cv_validation_mean"
CV_STD = "cv_validation_std"
# Outputs the pipeline reads as numbers (LambdaOutput type Float; the baseline condition compares CV_MEAN).
NUMBERS = (CV_MEAN, CV_STD)
CV_METRIC = "cv_metric"
EVALUATION_URI = "evaluation_s3_uri"


class HandlerError(Exception):
    """A problem the pipeline's Lambda step shows as its failure reason."""


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise HandlerError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def read_summary_from_model(s3: Any, model_uri: str) -> dict[str, Any]:
    """cv_summary.json from the coordinator's model.tar.gz, streamed (the archive holds only small files)."""
    bucket, key = _split_s3(model_uri)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    with tarfile.open(fileobj=body, mode="r|gz") as archive:
        for member in archive:
            if member.isfile() and member.name.lstrip("./") == SUMMARY_FILE:
                handle = archive.extractfile(member)
                assert handle is not None
                return json.loads(handle.read())
    raise HandlerError(f"{model_uri} holds no {SUMMARY_FILE}: was the best trial a warmcv coordinator?")


def best_trial(sagemaker: Any, s3: Any, event: dict[str, Any]) -> dict[str, Any]:
    """The best trial's values of the requested hyperparameters, its CV mean/std, and the evaluation URI.

    event: tuning_job_name, names (comma-separated hyperparameters to return), rounds_from_cv ("true": return
    num_boost_round = the CV's recommended rounds, for early stopping), evaluation_s3_uri (where to write the
    model-quality statistics), task (binary, multiclass, regression or auto).
    """
    for key in ("tuning_job_name", "names", "evaluation_s3_uri"):
        if not event.get(key):
            raise HandlerError(f"event has no {key!r}; got keys {sorted(event)}")
    tuning_job = str(event["tuning_job_name"]).rsplit("/", 1)[-1]
    tuning = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job)
    best = tuning.get("BestTrainingJob")
    if not best:
        raise HandlerError(f"tuning job {tuning_job} has no best training job (status "
                           f"{tuning.get('HyperParameterTuningJobStatus')}); did every trial fail?")
    job = sagemaker.describe_training_job(TrainingJobName=best["TrainingJobName"])
    hyperparameters = {**job.get("HyperParameters", {}), **best.get("TunedHyperParameters", {})}
    summary = read_summary_from_model(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    wanted = [n.strip() for n in str(event["names"]).split(",") if n.strip()]
    rounds_from_cv = str(event.get("rounds_from_cv", "false")).lower() == "true"
    result: dict[str, str | float] = {}
    for name in wanted:
        if name == "num_boost_round" and rounds_from_cv:
            result[name] = str(int(summary["recommended_num_boost_round"]))
        elif name in hyperparameters:
            result[name] = str(hyperparameters[name]).strip('"')
        else:
            raise HandlerError(f"the best trial {best['TrainingJobName']} has no hyperparameter {name!r}")
    bucket, key = _split_s3(str(event["evaluation_s3_uri"]))
    statistics = model_quality_statistics(summary, str(event.get("task", "auto")))
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(statistics, indent=2).encode(),
                  ContentType="application/json")
    result.update({
        BEST_TRAINING_JOB: best["TrainingJobName"], CV_METRIC: str(summary["metric"]),
        CV_MEAN: float(summary["validation_mean"]), CV_STD: float(summary["validation_std"]),
        EVALUATION_URI: str(event["evaluation_s3_uri"]),
    })
    log.info("best trial %s: %s %s +/- %s; hyperparameters %s", best["TrainingJobName"], summary["metric"],
             result[CV_MEAN], result[CV_STD], {n: result[n] for n in wanted})
    return result


def release(sagemaker: Any, event: dict[str, Any]) -> dict[str, Any]:
    """event: tuning_job_name and/or training_job_names (comma-separated); releases their available pools."""
    tuning = warm_pools.names([str(event.get("tuning_job_name", ""))])
    training = warm_pools.names(str(event.get("training_job_names", "")).split(","))
    if not (tuning or training):
        raise HandlerError("event names neither tuning_job_name nor training_job_names")
    selector = warm_pools.RunSelector(tuning_jobs=tuning, training_jobs=training)
    report = warm_pools.release_warm_pools(sagemaker, selector)
    return {"released": len(report.released), "already_gone": len(report.already_gone),
            "released_jobs": ",".join(report.released)[:4000]}


def _clients(*services: str) -> list[Any]:
    import boto3
    from botocore.config import Config

    config = Config(retries=dict(warm_pools.RETRY_CONFIG))
    return [boto3.client(service, config=config) for service in services]


def best_hyperparameters(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point of the pipeline's best-hyperparameters step."""
    sagemaker, s3 = _clients("sagemaker", "s3")
    return best_trial(sagemaker, s3, event)


def release_warm_pools(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point of the pipeline's last step: release the run's warm pools."""
    (sagemaker,) = _clients("sagemaker")
    return release(sagemaker, event)
