"""`warmcv tune --sagemaker --strategy driver`: the driver's search run from this machine, its folds on SageMaker.

The same search as the pipeline's driver job (`warmcv.tuning.driver`), but the process is the user's:
no driver instance to pay for, and the study lives in a run folder here (`study.db`, SQLite, as
`warmcv run` keeps it), so running the same command again with the same `--out` resumes the run: the
trials that were running are taken up again and their fold jobs found, not created again.

The fold jobs are what the driver job would create: the config's image, role, fold instance type and
volume, the prepared data as their channel, their output under `<root>/tuning`, the keep-alive; named
after the run (`--job-name`, kept in the run folder) and tagged with it, so `warmcv release-warm-pools
--tuning-job <run>` finds their pools. Ctrl-C stops the search cleanly: every fold still running is stopped.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from warmcv.errors import UserInputError
from warmcv.launcher.config import LauncherConfig, check_tuning_job_name, require

log = logging.getLogger(__name__)

RUN_FILE = "driver.json"


def fold_parent(config: LauncherConfig, run_name: str) -> dict[str, Any]:
    """What a driver job's own DescribeTrainingJob would say, for the fold-job template: the config's settings."""
    from warmcv.contract import DATA_CHANNEL

    return {
        "TrainingJobName": run_name,
        "AlgorithmSpecification": {"TrainingImage": config.image_uri, "TrainingInputMode": "File"},
        "RoleArn": config.aws.role_arn,
        "InputDataConfig": [{"ChannelName": DATA_CHANNEL, "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": config.s3.prepared, "S3DataDistributionType": "FullyReplicated"}}}],
        "OutputDataConfig": {"S3OutputPath": config.uri("tuning")},
        "ResourceConfig": {"InstanceType": config.training.instance_type, "InstanceCount": 1,
                           "VolumeSizeInGB": config.training.volume_size_gb},
        "StoppingCondition": {"MaxRuntimeInSeconds": config.training.max_runtime_seconds},
        "Tags": [],
    }


def read_prepared_manifest(api: Any, prepared: str) -> Any:
    """The prepared data's manifest.json, read from S3 (at the prefix, or in its one subfolder that has one)."""
    from warmcv.data.manifest import MANIFEST_FILE, Manifest

    prefix = prepared.rstrip("/") + "/"
    keys = [k for k in api.list_s3_keys(prefix) if k.endswith("/" + MANIFEST_FILE) or k == MANIFEST_FILE]
    bucket = prefix[len("s3://"):].split("/", 1)[0]
    if len(keys) != 1:
        raise UserInputError(f"expected one {MANIFEST_FILE} under {prepared} (the output of `warmcv prepare`), "
                             f"found {len(keys)}")
    return Manifest.from_json(api.read_s3_object(f"s3://{bucket}/{keys[0]}").decode())


def plan_request(config: LauncherConfig, run_name: str) -> dict[str, Any]:
    """Offline: the driver's hyperparameters and trial 0's fold 0 CreateTrainingJob request (for --dry-run)."""
    from warmcv.aws.fold_jobs import FoldJobTemplate
    from warmcv.declarations import parse_hyperparameters
    from warmcv.tuning.driver import DriverPlan, trial_job_prefix

    require(config, "s3.prepared")
    hyperparameters = config.driver_hyperparameters()
    plan = DriverPlan.from_hyperparameters(parse_hyperparameters(hyperparameters))
    template = FoldJobTemplate.from_parent(fold_parent(config, run_name), config.training.keep_alive_seconds)
    trial = replace(template, parent=trial_job_prefix(run_name, 0), tuning_job=run_name)
    sampled = {name: "<sampled>" for name in sorted(plan.space)}
    return {"run": run_name, "driver_hyperparameters": hyperparameters,
            "fold_job": trial.request(0, {**plan.fixed, **sampled, "mode": "worker", "fold": "0"})}


def run_here(config: LauncherConfig, out: Path, job_name: str | None = None, clients: Any = None,
             stop: Any = None) -> dict[str, Any]:
    """Run (or resume) the driver in `out`; returns the result (also written to `out`)."""
    from warmcv.aws.fold_jobs import FoldJobTemplate
    from warmcv.aws.training_jobs import TrainingJobsApi
    from warmcv.cv import check_n_folds
    from warmcv.declarations import parse_hyperparameters
    from warmcv.model.params import training_setup
    from warmcv.tuning.driver import (
        RESULT_FILE,
        STATISTICS_FILE,
        DriverPlan,
        driver_result,
        on_trial_logger,
        open_driver_study,
        run_search,
        trial_runners,
    )
    from warmcv.tuning.study import run_lock, storage_url

    require(config, "s3.prepared")
    out = Path(out)
    with run_lock(out):
        record_path = out / RUN_FILE
        if record_path.is_file():
            record = json.loads(record_path.read_text())
            if job_name and job_name != record["run_name"]:
                raise UserInputError(f"{out} holds run {record['run_name']!r}, not {job_name!r}: its fold jobs are "
                                     "named after it; resume without --job-name, or choose another --out")
        else:
            name = job_name or f"warmcv-{time.strftime('%y%m%d-%H%M%S', time.gmtime())}"
            check_tuning_job_name(name)
            record = {"run_name": name, "created": datetime.now(UTC).isoformat(), "prepared": config.s3.prepared}
            out.mkdir(parents=True, exist_ok=True)
            record_path.write_text(json.dumps(record, indent=2))
        run_name = record["run_name"]
        if clients is None:
            from warmcv.aws.clients import coordinator_clients

            clients = coordinator_clients(config.aws.region, driver=True)
        api = TrainingJobsApi(clients.patient, s3=clients.s3, prompt=clients.prompt, creator=clients.creator)
        hps = parse_hyperparameters(config.driver_hyperparameters())
        plan = DriverPlan.from_hyperparameters(hps)
        manifest = read_prepared_manifest(api, config.s3.prepared)
        check_n_folds(hps, manifest)
        setup = training_setup(parse_hyperparameters({**plan.fixed, "mode": "coordinator"}), manifest)
        pruner = plan.pruner(setup.metric.direction, manifest.n_folds)
        template = FoldJobTemplate.from_parent(fold_parent(config, run_name), config.training.keep_alive_seconds)
        from warmcv.runners.sagemaker import TIMING_ENV, Timing

        runners = trial_runners(api, template, run_name, created_after=datetime.fromisoformat(record["created"]),
                                timing=Timing.parse(os.environ.get(TIMING_ENV)), pruner=pruner,
                                metric=(setup.metric.name, setup.metric.direction))
        study = open_driver_study(storage_url(out), setup.metric.direction, plan)
        log.info("driving run %s from this machine: %d trials, %d in flight, study in %s", run_name, plan.trials,
                 plan.parallel, out)
        outcome = run_search(plan, manifest, study, runners, stop=stop, on_trial=on_trial_logger(setup.metric.name),
                             pruner=pruner)
        if outcome.stopped:
            raise _stopped(out, outcome)
        result, statistics = driver_result(study, run_name, manifest.task)
        (out / RESULT_FILE).write_text(json.dumps(result, indent=2, sort_keys=True))
        (out / STATISTICS_FILE).write_text(json.dumps(statistics, indent=2, sort_keys=True))
        return result


def _stopped(out: Path, outcome: Any) -> BaseException:
    from warmcv.errors import StopRequested

    return StopRequested(f"search stopped after {outcome.completed + outcome.failed} trials; the folds still running "
                         f"were stopped and every finished trial is in {out}. Resume with the same command")
