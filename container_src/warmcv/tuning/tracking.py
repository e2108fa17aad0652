"""A local run in MLflow: the run folder's study as a parent run, each trial as a nested run as it finishes.

The parent run's id is kept in the run folder (`mlflow.json`), so `--resume` continues the same parent run,
and each trial's run id in the trial's user attributes, so the best trial's run can be tagged at the end.
Opening the parent run must work (a wrong URI fails the run before any trial); after that a tracking
failure (the server went away) is a warning, not the end of an hour-long search: the study in the run
folder remains the record.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from warmcv.cv import CrossValidationSummary
from warmcv.settings.run import RunSettings
from warmcv.tracking.mlflow import MlflowStudy, TrialRecord, saved_run_id

log = logging.getLogger(__name__)

RUN_ID_ATTR = "mlflow_run_id"


def _started_ms(trial: Any, seconds: float) -> int:
    import time

    started = getattr(trial, "datetime_start", None)
    return int(started.timestamp() * 1000) if started is not None else int((time.time() - seconds) * 1000)


class RunTracking:
    """A search observer that logs every finished trial as a nested run of the study's parent run."""

    def __init__(self, study: MlflowStudy):
        self.study = study
        self.failures = 0

    @classmethod
    def for_driver(cls, run_name: str) -> RunTracking | None:
        """The SageMaker driver's parent run, when its job's environment names a tracking server (the launcher's
        [mlflow], as for coordinators); None when tracking is off. A restarted driver finds the same parent
        run by the run's name, so the trials it still has to run join the ones already logged."""
        import os

        from warmcv.tracking.mlflow import EXPERIMENT_ENV, TRACKING_URI_ENV

        uri = os.environ.get(TRACKING_URI_ENV)
        if not uri:
            return None
        experiment = os.environ.get(EXPERIMENT_ENV) or run_name
        study = MlflowStudy.shared(uri, experiment, study=run_name, run_name=run_name,
                                   tags={"warmcv.driver_run": run_name})
        log.info("MLflow: logging the driver's trials under run %s in experiment %s", study.run_id, experiment)
        return cls(study)

    @classmethod
    def open(cls, settings: RunSettings, run_dir: Path, experiment: str) -> RunTracking | None:
        """The parent run of this run folder (continued on resume), or None when tracking is off."""
        uri = settings.mlflow_tracking_uri
        if not uri:
            return None
        resume_id = saved_run_id(run_dir, uri)
        params: dict[str, Any] = {"data": settings.data, "target": settings.target, "folds": settings.prepare.folds,
                                  "task": settings.prepare.task, "splitter": settings.prepare.splitter,
                                  "sampler": settings.sampler, "seed": settings.seed}
        if settings.prepare.id_columns:
            params["id_columns"] = ",".join(settings.prepare.id_columns)
        params.update({f"fixed.{name}": value for name, value in settings.fixed.items()})
        study = MlflowStudy.open(uri, experiment, run_name=Path(run_dir).name, study=str(Path(run_dir).resolve()),
                                 params=params, tags={"warmcv.run_dir": str(Path(run_dir).resolve()),
                                                      "warmcv.space": settings.space},
                                 resume_run_id=resume_id)
        study.save_state(run_dir)
        log.info("MLflow: %s run %s in experiment %s at %s", "continuing" if resume_id else "logging to",
                 study.run_id, study.experiment_id, uri)
        return cls(study)

    def _log(self, trial: Any, seconds: float, summary: CrossValidationSummary | None, error: str | None,
             pruned: dict[str, Any] | None = None) -> None:
        record = TrialRecord(trial.number, dict(trial.user_attrs.get("hyperparameters", {})),
                             _started_ms(trial, seconds), seconds, summary, error, pruned)
        try:
            run_id = self.study.log_trial(record)
        except Exception as problem:  # noqa: BLE001 - tracking must not end the search; the study keeps the trial
            self.failures += 1
            log.warning("MLflow: could not log trial %d (%s); the run folder's study keeps it", trial.number, problem)
            return
        trial.set_user_attr(RUN_ID_ATTR, run_id)

    def trial_completed(self, trial: Any, summary: CrossValidationSummary, seconds: float) -> None:
        self._log(trial, seconds, summary, None)

    def trial_failed(self, trial: Any, error: str, seconds: float) -> None:
        self._log(trial, seconds, None, error)

    def trial_pruned(self, trial: Any, summary: CrossValidationSummary, decision: Any, seconds: float) -> None:
        self._log(trial, seconds, summary, None, decision.to_dict())

    def finish(self, best: Any, metrics: dict[str, float], tags: dict[str, Any], artifacts: list[Path]) -> None:
        """Tag the best trial's run, log the result and the artifacts on the parent, and end it."""
        try:
            run_id = best.user_attrs.get(RUN_ID_ATTR)
            if run_id:
                self.study.tag_best(run_id)
            else:
                log.warning("MLflow: the best trial #%d has no run to tag (it was not logged)", best.number)
            self.study.finish(metrics, tags, artifacts)
        except Exception as problem:  # noqa: BLE001 - the run's own outputs are written; say what MLflow lacks
            log.warning("MLflow: could not log the result on run %s (%s)", self.study.run_id, problem)

    def end(self, status: str) -> None:
        try:
            self.study.end(status)
        except Exception as problem:  # noqa: BLE001
            log.warning("MLflow: could not mark run %s %s (%s)", self.study.run_id, status, problem)
