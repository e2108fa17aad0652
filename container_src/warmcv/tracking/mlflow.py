"""A study in MLflow: one parent run, a nested run per trial, the best trial tagged.

What is logged, and where:
- the parent run (tag `warmcv.role=study`): the data, target, folds, sampler and seed and the fixed
  hyperparameters as parameters; the search space as a tag; at the end the best trial's CV mean and std,
  the final fit's score, and the final model (model.tar.gz), report.json and the plots as artifacts;
- a nested run per trial (MLflow's own nesting tag `mlflow.parentRunId`; `warmcv.role=trial`): its
  hyperparameters as parameters; `<metric>_cv_mean`, `<metric>_cv_std`, `<metric>_fold_<i>` for every fold,
  `train_<metric>_cv_mean`, `best_iteration_mean` and `seconds` as metrics; a failed trial as a FAILED run
  with its error as a tag;
- the best trial's run carries `warmcv.best=true`, and only it (a resumed study that finds a better trial
  moves the tag).

Everything goes through `MlflowClient`, never through `mlflow.start_run`: no global active run is touched,
so a notebook's own MLflow run is left alone, and trials finishing in any order are logged by id.

MLflow 3 refuses a file store (`file:///...`, a plain folder) unless MLFLOW_ALLOW_FILE_STORE is set: the
format is in maintenance mode, not removed. A user who names a file store has chosen one, so for such a
URI warmcv sets that variable in its own process (unless it is already set either way).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from warmcv.cv import CrossValidationSummary
from warmcv.errors import UserInputError
from warmcv.files import write_text_atomic

log = logging.getLogger(__name__)

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
ALLOW_FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"
# Kept in the run folder, so that --resume continues the same parent run.
STATE_FILE = "mlflow.json"

PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's nesting: the UI shows such a run under its parent
ROLE_TAG = "warmcv.role"
STUDY_TAG = "warmcv.study"  # what identifies the study: a run folder, or a SageMaker tuning job
TRIAL_TAG = "warmcv.trial"
BEST_TAG = "warmcv.best"
ERROR_TAG = "warmcv.error"
CONSTANT_TAG = "warmcv.constant_model"
PRUNED_TAG = "warmcv.pruned"
SHARED_SETTLE_SECONDS = 1.0  # see MlflowStudy.shared
# MLflow's limits (mlflow.utils.validation): a parameter value, a tag value.
MAX_PARAM_CHARS = 6000
MAX_TAG_CHARS = 8000


def _now_ms() -> int:
    return int(time.time() * 1000)


def is_file_store(uri: str) -> bool:
    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def normalise_uri(uri: str) -> str:
    """A tracking URI that means the same from any working directory (a resumed run may start elsewhere):
    a plain folder becomes an absolute file:// URI; every other URI is kept as given."""
    uri = uri.strip()
    if not uri:
        raise UserInputError("the MLflow tracking URI is empty")
    if urlparse(uri).scheme == "":
        return Path(uri).expanduser().resolve().as_uri()
    return uri


def _require_mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise UserInputError("MLflow tracking needs the mlflow package: pip install 'warmcv[mlflow]'") from None
    return mlflow


def is_sagemaker_arn(uri: str) -> bool:
    return uri.startswith("arn:") and ":sagemaker:" in uri


class _PluginMisfire(logging.Filter):
    """Drops the warning MLflow logs on every HTTP request when the sagemaker-mlflow plugin (installed with the
    SageMaker SDK) cannot parse the *global* tracking URI as an ARN: it reads `mlflow.get_tracking_uri()`, not
    the client's, and so misfires for any client of another server while no ARN is set globally."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("Encountered unexpected error during resolving request headers"):
            return True
        import mlflow

        return is_sagemaker_arn(mlflow.get_tracking_uri())


_MISFIRE_FILTER = _PluginMisfire()


def client_for(uri: str) -> Any:
    """An MlflowClient for `uri` (a file store allowed, see the module docstring).

    For a SageMaker tracking server ARN the sagemaker-mlflow plugin signs and routes each request from the
    global tracking URI (`mlflow.get_tracking_uri()`), so that is set to the ARN too (in a coordinator it
    already is: MLFLOW_TRACKING_URI)."""
    mlflow = _require_mlflow()
    from mlflow import MlflowClient

    if is_file_store(uri):
        os.environ.setdefault(ALLOW_FILE_STORE_ENV, "true")
    if is_sagemaker_arn(uri):
        mlflow.set_tracking_uri(uri)
    registry = logging.getLogger("mlflow.tracking.request_header.registry")
    if _MISFIRE_FILTER not in registry.filters:
        registry.addFilter(_MISFIRE_FILTER)
    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, name: str) -> str:
    """The experiment's id, creating it if needed (a concurrent creator may win the race: then read it)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise UserInputError(f"MLflow experiment {name!r} is deleted; restore it or choose another name")
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 14] + " ...(truncated)"


@dataclass(frozen=True)
class TrialRecord:
    """A finished trial, as any tracker sees it (the local search's Optuna trials, a SageMaker coordinator)."""

    number: int | str
    hyperparameters: Mapping[str, str]
    started_ms: int
    seconds: float
    summary: CrossValidationSummary | None = None  # None for a failed trial; the folds it ran for a pruned one
    error: str | None = None
    pruned: Mapping[str, Any] | None = None  # why a pruned trial stopped (warmcv.cv.pruning.PruningDecision)


class MlflowStudy:
    """A study's parent run and the calls that log its trials."""

    def __init__(self, client: Any, experiment_id: str, run_id: str, tracking_uri: str):
        self.client = client
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.tracking_uri = tracking_uri

    # -- opening ------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, tracking_uri: str, experiment: str, *, run_name: str, study: str, params: Mapping[str, Any],
             tags: Mapping[str, Any], resume_run_id: str | None = None) -> MlflowStudy:
        """Create the parent run (or continue `resume_run_id`, marking it running again)."""
        from mlflow.entities import Param, RunTag
        from mlflow.exceptions import MlflowException

        client = client_for(tracking_uri)
        try:
            if resume_run_id:
                run = client.get_run(resume_run_id)
                client.update_run(resume_run_id, status="RUNNING")
                return cls(client, run.info.experiment_id, resume_run_id, tracking_uri)
            experiment_id = _experiment_id(client, experiment)
            run = client.create_run(experiment_id, run_name=run_name,
                                    tags={ROLE_TAG: "study", STUDY_TAG: study,
                                          **{k: _text(v, MAX_TAG_CHARS) for k, v in tags.items()}})
            client.log_batch(run.info.run_id, params=[Param(k, _text(v, MAX_PARAM_CHARS)) for k, v in params.items()],
                             tags=[RunTag(ROLE_TAG, "study")])
        except MlflowException as error:
            raise UserInputError(f"MLflow at {tracking_uri}: {error.message}") from None
        return cls(client, experiment_id, run.info.run_id, tracking_uri)

    @classmethod
    def shared(cls, tracking_uri: str, experiment: str, *, study: str, run_name: str,
               tags: Mapping[str, Any] = {}) -> MlflowStudy:  # noqa: B006 - read only
        """The parent run of `study` that concurrent writers (the coordinators of one tuning job) agree on.

        MLflow has no create-if-absent, so each writer that finds none creates one, then every writer takes
        the oldest parent run of the study (start time, then run id) and a writer whose own run lost deletes
        it: writers that start together converge on one parent.
        """
        client = client_for(tracking_uri)
        experiment_id = _experiment_id(client, experiment)
        query = f"tags.`{ROLE_TAG}` = 'study' and tags.`{STUDY_TAG}` = '{study}'"
        found = client.search_runs([experiment_id], query, order_by=["attributes.start_time ASC"], max_results=50)
        if found:
            return cls(client, experiment_id, _oldest(found).info.run_id, tracking_uri)
        mine = client.create_run(experiment_id, run_name=run_name,
                                 tags={ROLE_TAG: "study", STUDY_TAG: study,
                                       **{k: _text(v, MAX_TAG_CHARS) for k, v in tags.items()}})
        # Look again only once every create that began before ours is visible: a writer that looked at once
        # could find only its own run while an older one was still being stored, keep it, and the study ended
        # with two parents (seen once in 4 concurrent writers against a local mlflow server). The wait is an
        # assumption (a create is stored within SHARED_SETTLE_SECONDS); it is paid once per study, by the
        # writers that found no parent.
        time.sleep(SHARED_SETTLE_SECONDS)
        winner = _oldest(client.search_runs([experiment_id], query, order_by=["attributes.start_time ASC"],
                                            max_results=50) or [mine])
        if winner.info.run_id != mine.info.run_id:
            client.delete_run(mine.info.run_id)
        return cls(client, experiment_id, winner.info.run_id, tracking_uri)

    # -- trials ----------------------------------------------------------------------------------------------
    def log_trial(self, trial: TrialRecord) -> str:
        """One nested run for a finished trial; returns its run id."""
        from mlflow.entities import Metric, Param, RunTag

        run = self.client.create_run(self.experiment_id, start_time=trial.started_ms, run_name=f"trial-{trial.number}",
                                     tags={PARENT_RUN_TAG: self.run_id, ROLE_TAG: "trial",
                                           TRIAL_TAG: str(trial.number)})
        run_id = run.info.run_id
        end_ms = trial.started_ms + int(trial.seconds * 1000)
        params = [Param(k, _text(v, MAX_PARAM_CHARS)) for k, v in sorted(trial.hyperparameters.items())]
        metrics = [Metric("seconds", float(trial.seconds), end_ms, 0)]
        tags: list[Any] = []
        if trial.pruned is not None and trial.summary is not None:
            # Only the folds it ran: a mean over some folds is not comparable with the others' K-fold means.
            metrics += [Metric(key, value, end_ms, 0) for key, value in trial_metrics(trial.summary).items()
                        if "_fold_" in key]
            tags.append(RunTag(PRUNED_TAG, _text(json.dumps(trial.pruned, sort_keys=True), MAX_TAG_CHARS)))
        elif trial.summary is not None:
            metrics += [Metric(key, value, end_ms, 0) for key, value in trial_metrics(trial.summary).items()]
            if trial.summary.constant_model:
                tags.append(RunTag(CONSTANT_TAG, "true"))
        if trial.error:
            tags.append(RunTag(ERROR_TAG, _text(trial.error, MAX_TAG_CHARS)))
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
        # MLflow's run statuses: a pruned trial was stopped on purpose (KILLED), not failed.
        status = "KILLED" if trial.pruned is not None else "FINISHED" if trial.summary is not None else "FAILED"
        self.client.set_terminated(run_id, status=status, end_time=end_ms)
        return run_id

    def trial_runs(self, **where: str) -> list[Any]:
        """The nested runs of this study (with tags equal to `where`)."""
        query = " and ".join([f"tags.`{PARENT_RUN_TAG}` = '{self.run_id}'",
                              *(f"tags.`{k}` = '{v}'" for k, v in where.items())])
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], query, max_results=1000, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def tag_best(self, run_id: str) -> None:
        """`warmcv.best=true` on this trial's run and on no other of the study."""
        for run in self.trial_runs(**{BEST_TAG: "true"}):
            if run.info.run_id != run_id:
                self.client.delete_tag(run.info.run_id, BEST_TAG)
        self.client.set_tag(run_id, BEST_TAG, "true")
        self.client.set_tag(self.run_id, "warmcv.best_run_id", run_id)

    def best_trial_run(self, metric: str, maximize: bool) -> Any | None:
        """The finished trial run with the best CV mean (for writers that cannot see the whole study at once)."""
        key = f"{metric}_cv_mean"
        runs = [r for r in self.trial_runs() if r.info.status == "FINISHED" and key in r.data.metrics]
        if not runs:
            return None
        return sorted(runs, key=lambda r: ((-1 if maximize else 1) * r.data.metrics[key], r.info.start_time))[0]

    # -- the end ----------------------------------------------------------------------------------------------
    def finish(self, metrics: Mapping[str, float], tags: Mapping[str, Any], artifacts: Iterable[Path],
               status: str = "FINISHED") -> None:
        from mlflow.entities import Metric, RunTag

        now = _now_ms()
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                              tags=[RunTag(k, _text(v, MAX_TAG_CHARS)) for k, v in tags.items()])
        for path in artifacts:
            if Path(path).is_file():
                self.client.log_artifact(self.run_id, str(path))
            elif Path(path).is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path=Path(path).name)
        self.client.set_terminated(self.run_id, status=status)

    def end(self, status: str) -> None:
        """Mark the parent run ended without the final outputs (KILLED on a stop, FAILED on an error)."""
        self.client.set_terminated(self.run_id, status=status)

    def save_state(self, run_dir: Path) -> None:
        write_text_atomic(run_dir / STATE_FILE, json.dumps(
            {"tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id, "run_id": self.run_id}, indent=2))


def saved_run_id(run_dir: Path, tracking_uri: str) -> str | None:
    """The parent run a run folder logged to (for --resume), if it logged to this tracking URI."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    return state.get("run_id") if state.get("tracking_uri") == tracking_uri else None


def _oldest(runs: Iterable[Any]) -> Any:
    return min(runs, key=lambda r: (r.info.start_time, r.info.run_id))


def trial_metrics(summary: CrossValidationSummary) -> dict[str, float]:
    """A trial's metrics under names that say which score they are (`auc_cv_mean`, `auc_fold_0`, ...)."""
    name = summary.metric or "score"
    metrics = {f"{name}_cv_mean": summary.validation_mean, f"{name}_cv_std": summary.validation_std,
               f"train_{name}_cv_mean": summary.train_mean, "best_iteration_mean": summary.best_iteration_mean}
    for fold in sorted(summary.folds, key=lambda f: f.fold):
        metrics[f"{name}_fold_{fold.fold}"] = fold.validation_score
    return {k: float(v) for k, v in metrics.items()}
