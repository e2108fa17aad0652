"""`warmcv run` as a library call: prepare -> search -> best hyperparameters -> final fit -> package ->
register -> predict -> report, every step writing into one run folder.

The folder is the unit of resumption: run.json holds the settings, study.db every finished trial.
`Run(..., resume=True)` re-opens it, recovers the trials that were in flight, searches up to the (possibly
raised) budget and redoes whatever came after the search, so a run killed at any point finishes with
the same result as one never interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import warmcv
from warmcv.cv import CrossValidationSummary, check_n_folds, final_fit_hyperparameters, train_and_save
from warmcv.data.manifest import MANIFEST_FILE, PreparedData, read_manifest
from warmcv.data.prepare import prepare
from warmcv.declarations import SearchSpace, parse_hyperparameters
from warmcv.errors import FoldFailed, StopRequested, StorageError, UserInputError
from warmcv.files import check_writable_folder, storage_fault
from warmcv.model.params import default_threads, fit_threads, training_setup
from warmcv.settings.run import SETTINGS_FILE, RunSettings
from warmcv.tuning.best_trial import BestTrialKeeper
from warmcv.tuning.search import CV_ATTR, HYPERPARAMETERS_ATTR, Search, SearchFailed, SearchOutcome, TrialReport
from warmcv.tuning.space import describe, fit_to_data, make_sampler, ordered_sampler, space_from_description
from warmcv.tuning.study import (
    STUDY_FILE,
    counted_trials,
    open_study,
    pruned_trials,
    recover_interrupted,
    retried_numbers,
    run_lock,
)
from warmcv.tuning.tracking import RunTracking

log = logging.getLogger(__name__)

PREPARED_DIR = "prepared"
MODEL_DIR = "model"
FINAL_DIR = "final"
# The warm workers' shared binned Datasets while the run is going (removed when it ends; a killed run's
# are reused by its --resume, then removed).
DATASETS_DIR = ".datasets"
PLOTS_DIR = "plots"
PREDICTIONS_FILE = "predictions.csv"


def default_parallel(workers: int, folds: int, staged: bool = False) -> int:
    """Trials in flight: enough queued folds that no worker idles while a trial's last fold finishes.

    A pruned search's trial has only a stage (a fold or two) out at a time: one trial more than the
    workers keeps a fold queued while another trial is between two stages, without the sampler
    proposing many trials blind to each other's results."""
    if staged:
        return max(2, workers + 1)
    return max(2, math.ceil(2 * workers / folds))


@dataclass
class RunResult:
    run_dir: Path
    report: dict[str, Any]
    outcome: SearchOutcome


@dataclass
class _Timings:
    values: dict[str, float] = field(default_factory=dict)

    def measure(self, name: str, started: float) -> None:
        self.values[f"{name}_seconds"] = time.monotonic() - started


class Run:
    """One invocation on one run folder. `progress` receives every finished trial; `stop` ends the search early."""

    def __init__(self, run_dir: Path, settings: RunSettings, *, resume: bool,
                 on_trial: Callable[[TrialReport], None] | None = None, stop: Any = None,
                 on_stage: Callable[[str], None] | None = None,
                 on_search_start: Callable[[str, int, int], None] | None = None):
        self.run_dir = Path(run_dir)
        self.settings = settings
        self.resume = resume
        self.on_trial = on_trial
        self.stop = stop
        self.on_stage = on_stage or (lambda message: log.info("%s", message))
        self.on_search_start = on_search_start  # (metric name, trial budget, trials already counted)
        self.timings = _Timings()

    def _check_stop(self, where: str) -> None:
        """A stop asked for after the search ends the run between steps; --resume redoes the steps after it."""
        if self.stop is not None and self.stop.is_set():
            raise StopRequested(
                f"stopped {where}; every trial is saved. Finish with: warmcv run --resume {self.run_dir}")

    # -- steps ----------------------------------------------------------------------------------------
    def _prepared(self) -> Path:
        prepared = self.run_dir / PREPARED_DIR
        if self.resume and (prepared / MANIFEST_FILE).is_file():
            return prepared  # prepared by the run being resumed: the folds must stay the same
        started = time.monotonic()
        self.on_stage(f"preparing {self.settings.data} (target {self.settings.target!r})")
        manifest = prepare(self.settings.data, prepared, self.settings.prepare)
        self.timings.measure("prepare", started)
        self.on_stage(f"prepared {manifest.rows} rows: task {manifest.task}, {manifest.n_folds} folds "
                      f"({manifest.splitter}), {len(manifest.schema.features)} features "
                      f"({len(manifest.schema.categorical_names)} categorical)")
        return prepared

    def execute(self) -> RunResult:
        """Run (or resume) the whole pipeline. Faults of the machine (a full disk, a read-only folder) and a
        stop during start-up end it with one line that says how to continue; our own bugs keep their traceback.
        With MLflow tracking, the parent run ends as the run did (KILLED on a stop, FAILED on an error);
        --resume marks it running again."""
        check_writable_folder(self.run_dir, "run folder")
        self._tracking: RunTracking | None = None
        try:
            return self._execute()
        except BaseException as error:
            if self._tracking is not None:
                stopped = isinstance(error, (StopRequested, KeyboardInterrupt, _StartupInterrupted))
                self._tracking.end("KILLED" if stopped else "FAILED")
            return self._explain(error)

    def _explain(self, error: BaseException) -> RunResult:
        """Re-raise `error` as the one-line message a user can act on (see `execute`)."""
        try:
            raise error
        except _StartupInterrupted as interrupt:
            if os.path.isfile(self.run_dir / SETTINGS_FILE):
                raise StopRequested(f"{interrupt} during start-up, before any trial; nothing is lost. Continue "
                                    f"with: warmcv run --resume {self.run_dir}") from None
            raise StopRequested(f"{interrupt} during start-up; nothing was written") from None
        except StorageError as fault:
            raise StorageError(f"{fault}; {self._how_to_continue()}") from None
        except (UserInputError, FoldFailed):
            raise
        except Exception as other:
            surroundings = storage_fault(other, self.run_dir)
            if surroundings is None:
                raise
            raise StorageError(f"{surroundings}; {self._how_to_continue()}") from None

    def _how_to_continue(self) -> str:
        if os.path.isfile(self.run_dir / SETTINGS_FILE):
            return f"once that is fixed, continue with: warmcv run --resume {self.run_dir} (nothing finished is lost)"
        return "once that is fixed, run again"

    def _execute(self) -> RunResult:
        from warmcv.runners.pool import WarmWorkerPool

        total_started = time.monotonic()
        s = self.settings
        startup = _StartupSignals()
        with startup.installed(), run_lock(self.run_dir), contextlib.ExitStack() as stack:
            if self.stop is not None and self.stop.is_set():
                raise _StartupInterrupted("stop requested")
            if not self.resume:
                # A folder whose run never reached the search (bad settings, say) may be reused as is.
                if (self.run_dir / STUDY_FILE).exists():
                    raise UserInputError(f"{self.run_dir} already holds a run: continue it with "
                                         f"`warmcv run --resume {self.run_dir}` or choose another --out")
                s.save(self.run_dir)
            space = self._space()
            workers = s.workers or default_threads()
            threads = max(1, default_threads() // workers)
            # Started before preparing, so the workers' start-up (imports) overlaps with the preparation.
            # Shielded: a stop may not land between starting the pool and registering it for closing.
            with startup.shielded():
                pool = stack.enter_context(WarmWorkerPool(workers=workers, threads=threads, prestart=True,
                                                          dataset_dir=self.run_dir / DATASETS_DIR))
            prepared = self._prepared()
            manifest = read_manifest(prepared)
            space, fitted = fit_to_data(space, s.fit_to_data,
                                        manifest.smallest_training_set)
            for name, change in fitted.items():
                self.on_stage(f"{name}: searching {change['fitted'][0]}..{change['fitted'][1]} instead of "
                              f"{change['declared'][0]}..{change['declared'][1]} ({change['train_rows']} training "
                              "rows in the smallest fold)")
            hps = parse_hyperparameters({**s.fixed, "mode": "coordinator"})
            check_n_folds(hps, manifest)
            setup = training_setup(hps, manifest)  # checks objective and metric against the task up front
            parallel = s.parallel or default_parallel(workers, manifest.n_folds, staged=s.prune)

            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            create = not (self.run_dir / STUDY_FILE).is_file()
            study = open_study(self.run_dir, setup.metric.direction, make_sampler(s.sampler, s.seed), create=create)
            # Re-seeded past the trials already run: a resumed random sampler must not replay the same points.
            study.sampler = make_sampler(s.sampler, s.seed + len(study.get_trials(deepcopy=False)))
            recover_interrupted(study)
            complete, failed = counted_trials(study)
            done = complete + failed + pruned_trials(study)
            todo = max(0, s.trials - done)
            self.on_stage(f"searching {len(space)} hyperparameters with {s.sampler.upper()} (seed {s.seed}): "
                          f"{todo} trial(s) to run"
                          + (f", {done} already done" if done else "")
                          + f"; {parallel} trials in flight on {workers} warm workers x {threads} LightGBM thread(s)"
                          + (f"; fold-level pruning ({s.pruning.rule})" if s.prune else ""))

            keeper = BestTrialKeeper(self.run_dir, manifest, prepared, setup.metric.direction == "Maximize")
            tracking = self._tracking = RunTracking.open(s, self.run_dir, self.experiment_name)
            if self.on_search_start is not None:
                self.on_search_start(setup.metric.name, s.trials, done)
            search = Search(study, space, s.fixed, prepared, manifest, pool, trials=s.trials, parallel=parallel,
                            timeout=s.timeout, stop=self.stop, on_trial=self.on_trial,
                            observers=[keeper, *([tracking] if tracking else [])], sample=ordered_sampler(space),
                            pruning=s.pruning if s.prune else None)
            startup.finish()  # from here a stop ends the search cleanly (the caller's handler): trials are kept
            outcome = search.run()
            pool_stats: dict[str, Any] = {"workers": workers, "threads_per_worker": threads,
                                          "parallel_trials": parallel, "worker_processes_started": pool.started_workers,
                                          "worker_crashes": pool.crashes}
            stack.close()  # the workers' memory is free again before the final fit
            self.timings.values["search_seconds"] = outcome.seconds
            if outcome.stopped:
                raise StopRequested(
                    f"search stopped after {outcome.completed + outcome.failed} of {s.trials} trials; every finished "
                    f"trial is saved. Continue with: warmcv run --resume {self.run_dir}"
                )
            self._check_stop("before the final fit")
            if outcome.completed == 0 and outcome.failed == 0:
                raise UserInputError(f"no trial completed; continue with: warmcv run --resume {self.run_dir}")
            check_search_health(study, outcome, s.trials, self.run_dir)
            pool_stats["fitted_to_data"] = fitted
            report = self._finish(study, manifest, prepared, setup, outcome, pool_stats, total_started, space,
                                  keeper, tracking)
        return RunResult(self.run_dir, report, outcome)

    @property
    def model_group(self) -> str:
        from warmcv.model.registry import group_name_from

        s = self.settings
        return s.model_group or group_name_from(Path(s.data).name.split(".")[0], s.target)

    @property
    def experiment_name(self) -> str:
        """The MLflow experiment: the one asked for, else the model group's name (one experiment per model)."""
        return self.settings.mlflow_experiment or self.model_group

    def _space(self) -> SearchSpace:
        """The saved search space, checked entry by entry: a run.json edited by hand names the bad entry."""
        where = self.run_dir / SETTINGS_FILE
        for name, spec in self.settings.space.items():
            try:
                space_from_description({name: spec})
            except (UserInputError, KeyError, TypeError, ValueError, AttributeError) as error:
                detail = str(error)
                if isinstance(error, KeyError):
                    detail = ("not a hyperparameter warmcv declares" if error.args == (name,)
                              else f"missing {error}")
                raise UserInputError(f"invalid run settings in {where}: space.{name} = {spec!r}: {detail}") from None
        try:
            parse_hyperparameters({**self.settings.fixed, "mode": "coordinator"})
        except UserInputError as error:
            raise UserInputError(f"invalid run settings in {where}: fixed: {error}") from None
        return space_from_description(self.settings.space)

    def _finish(self, study: Any, manifest: Any, prepared: Path, setup: Any, outcome: SearchOutcome,
                pool_stats: dict[str, Any], total_started: float, space: Any, keeper: BestTrialKeeper,
                tracking: RunTracking | None) -> dict[str, Any]:
        from warmcv.cv.baseline import beats, constant_model_score
        from warmcv.model.artifacts import TrainedModel
        from warmcv.model.batch import predict_file
        from warmcv.model.package import ARCHIVE_NAME, package_model
        from warmcv.model.registry import LocalModelRegistry
        from warmcv.tuning.plots import feature_importance_plot, make_plots
        from warmcv.tuning.report import REPORT_FILE, pruning_savings, trial_records, write_report

        s = self.settings
        best = study.best_trial
        trial_hps = best.user_attrs[HYPERPARAMETERS_ATTR]
        summary = CrossValidationSummary.from_dict(best.user_attrs[CV_ATTR])

        started = time.monotonic()
        final_hps = final_fit_hyperparameters(trial_hps, summary)
        if not int(final_hps.get("num_threads") or 0):  # the user's num_threads stands
            final_hps["num_threads"] = str(fit_threads(manifest.rows, len(manifest.schema.features)))
        self.on_stage(f"best trial #{best.number}: CV {setup.metric.name} {summary.validation_mean:.6f} +/- "
                      f"{summary.validation_std:.6f}; "
                      f"training the final model on all {manifest.rows} rows ({final_hps['num_boost_round']} rounds)")
        model_dir = self.run_dir / MODEL_DIR
        cross_validation = {**summary.to_dict(), "trial": best.number}
        outcome_final = train_and_save(PreparedData.load(prepared), parse_hyperparameters(final_hps), model_dir,
                                       self.run_dir / FINAL_DIR, cross_validation=cross_validation)
        archive = self.run_dir / ARCHIVE_NAME
        sha = package_model(model_dir, archive)
        self.timings.measure("final_fit", started)

        kept = keeper.finish(best.number)
        baseline = constant_model_score(setup.metric, manifest, prepared)
        refusal = None
        if summary.constant_model:
            refusal = (f"the best trial #{best.number} trained a constant model (no split in any tree of any fold): "
                       "it has learned nothing from the features")
        elif not beats(setup.metric, summary.validation_mean, baseline):
            refusal = (f"the best trial #{best.number}'s CV {setup.metric.name} {summary.validation_mean:.6f} is no "
                       f"better than the constant model's {baseline:.6f}")
        registry_dir = Path(s.registry) if s.registry else self.run_dir.resolve().parent / "registry"
        group = self.model_group
        metrics = {"metric": setup.metric.name, "direction": setup.metric.direction,
                   "cv_mean": summary.validation_mean, "cv_std": summary.validation_std, "n_folds": summary.n_folds,
                   "fold_scores": summary.fold_scores, "train_score": outcome_final.train_score,
                   "constant_model_cv": baseline}
        registry = LocalModelRegistry(registry_dir)
        registry_report: dict[str, Any] = {"path": str(registry.path), "group": group, "registered": False,
                                           "forced": False, "refused": refusal}
        if refusal is None or s.force_register:
            try:
                entry = registry.register(group, model_data=archive, model_sha256=sha, metrics=metrics,
                                          hyperparameters=final_hps, run=self.run_dir, status=s.approval,
                                          description=f"warmcv run, trial #{best.number} of {s.trials}")
            except UserInputError as error:  # a damaged registry file: the model is built, only its entry is missing
                raise UserInputError(f"the model is built ({archive}) but could not be registered: {error}; then "
                                     f"continue with: warmcv run --resume {self.run_dir}") from None
            registry_report.update(version=entry["ModelPackageVersion"], status=entry["ModelApprovalStatus"],
                                   registered=True, forced=refusal is not None)
        else:
            self.on_stage(f"not registered: {refusal}; --force-register registers it anyway")

        self._check_stop("after the final fit")
        predictions = None
        if s.predict and not registry_report["registered"]:
            predictions = {"source": s.predict, "path": None, "rows": 0, "output": s.predict_output,
                           "skipped": "the model was not registered (see registry.refused)"}
            (self.run_dir / PREDICTIONS_FILE).unlink(missing_ok=True)  # an earlier invocation's are not this model's
        elif s.predict:
            started = time.monotonic()
            path = self.run_dir / PREDICTIONS_FILE
            try:
                rows = predict_file(TrainedModel.load(model_dir), s.predict, path,
                                    output=s.predict_output)
            except UserInputError as error:  # e.g. the file to predict was moved or changed during the search
                raise UserInputError(
                    f"the model is built and registered ({archive}, {group} version "
                    f"{entry['ModelPackageVersion']}), but predicting {s.predict} failed: {error}. Predict another "
                    f"file with: warmcv run --resume {self.run_dir} --predict FILE") from None
            self.timings.measure("predict", started)
            predictions = {"source": s.predict, "path": str(path), "rows": rows, "output": s.predict_output}

        started = time.monotonic()
        records = trial_records(study)
        maximize = setup.metric.direction == "Maximize"
        plots, importances = make_plots(study, records, setup.metric.name, maximize, self.run_dir / PLOTS_DIR, s.seed)
        feature_importance = None
        if kept.feature_importance is not None:
            feature_importance = {"trial": best.number, **kept.feature_importance}
            path = self.run_dir / PLOTS_DIR / "feature_importance.png"
            feature_importance_plot(kept.feature_importance, path)
            plots["feature_importance"] = {"path": str(path), "skipped": None}
        else:
            plots["feature_importance"] = {"path": None, "skipped": kept.skipped}
        self.timings.measure("report", started)
        self.timings.values["total_seconds"] = time.monotonic() - total_started

        here = set(outcome.finished_here)
        fold_seconds = sum(f["seconds"] for r in records if r["number"] in here and r["cv"] for f in r["cv"]["folds"])
        search_seconds = self.timings.values.get("search_seconds", 0.0)
        counts = {"complete": sum(r["state"] == "complete" for r in records),
                  "pruned": sum(r["state"] == "pruned" for r in records),
                  "failed": sum(r["state"] == "failed" for r in records),
                  "interrupted": sum(r["state"] == "interrupted" for r in records)}
        report: dict[str, Any] = {
            "warmcv_version": warmcv.__version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "run_dir": str(self.run_dir),
            "data": {"source": s.data, "target": s.target, "prepared": str(prepared), "rows": manifest.rows,
                     "task": manifest.task, "classes": manifest.classes, "features": len(manifest.schema.features),
                     "splitter": manifest.splitter, "folds": manifest.n_folds},
            "metric": {"name": setup.metric.name, "direction": setup.metric.direction},
            "search": {"sampler": s.sampler, "seed": s.seed, "trials_requested": s.trials, "counts": counts,
                       "folds": manifest.n_folds, "space": describe(space), "fixed": s.fixed, "timeout": s.timeout,
                       "stopped_by_timeout": outcome.timed_out,
                       "pruning": {"on": s.prune, **s.pruning.model_dump(mode="json"),
                                   **pruning_savings(records, manifest.n_folds)},
                       **pool_stats},
            "best": {"trial": best.number, "cv_mean": summary.validation_mean, "cv_std": summary.validation_std,
                     "params": dict(best.params), "hyperparameters": trial_hps,
                     "folds": [f.to_dict() for f in summary.folds],
                     "recommended_num_boost_round": summary.recommended_num_boost_round,
                     "constant_model": summary.constant_model},
            "constant_model": {"cv_mean": baseline, "beaten": refusal is None},
            "oof_predictions": kept.report(),
            "feature_importance": feature_importance,
            "final_model": {"directory": str(model_dir), "archive": str(archive), "sha256": sha,
                            "hyperparameters": final_hps, "best_iteration": outcome_final.best_iteration,
                            "train_score": outcome_final.train_score},
            "registry": registry_report,
            "mlflow": ({"tracking_uri": tracking.study.tracking_uri, "experiment_id": tracking.study.experiment_id,
                        "run_id": tracking.study.run_id} if tracking is not None else None),
            "predictions": predictions,
            "plots": plots,
            "param_importances": importances,
            "trials": records,
            "timings": {**self.timings.values,
                        "trials_run_here": len(here),
                        "fold_training_seconds_here": fold_seconds,
                        # Share of the workers' time spent inside fold training during this invocation's search.
                        "worker_utilisation": (fold_seconds / (pool_stats["workers"] * search_seconds)
                                               if search_seconds > 0 else None)},
            "environment": {"python": platform.python_version(), "cores": default_threads(),
                            "lightgbm": _version("lightgbm"), "optuna": _version("optuna"),
                            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")},
        }
        write_report(self.run_dir / REPORT_FILE, report)
        if tracking is not None:
            tracking.finish(best, {f"{setup.metric.name}_cv_mean": summary.validation_mean,
                                   f"{setup.metric.name}_cv_std": summary.validation_std,
                                   f"train_{setup.metric.name}_final": outcome_final.train_score,
                                   f"{setup.metric.name}_constant_model": baseline},
                            {"warmcv.best_trial": best.number, "warmcv.registered": registry_report["registered"]},
                            [archive, self.run_dir / REPORT_FILE, self.run_dir / PLOTS_DIR])
        return report


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def check_search_health(study: Any, outcome: SearchOutcome, budget: int, run_dir: Path) -> None:
    """Refuse to build a model on a search in which more trials failed than completed.

    The rule: failed trials (those counted against the budget; interrupted-and-rerun ones are not)
    may not outnumber the completed ones. Why a majority: trials fail one by one for reasons of their
    own (a combination LightGBM cannot score), which costs a few; when most fail, the cause is the
    run's (a damaged file, a crashing or memory-starved worker, a broken environment), the "best"
    trial is the best of a small and possibly skewed remainder, and the completed trials may have
    been touched by the same cause. Such a run used to end with exit 0 ("2 completed, 4 failed"),
    registered and all. Now it stops before the final fit with a non-zero exit, the failures' causes
    and how to continue: the finished trials stay in the study, and a resume with a larger budget
    runs the trials the failures cost.
    """
    if outcome.failed <= outcome.completed:
        return
    from collections import Counter

    from optuna.trial import TrialState

    from warmcv.tuning.search import ERROR_ATTR

    retried = retried_numbers(study)
    # Grouped without the process ids, which differ from one crash to the next.
    causes = Counter(re.sub(r"worker process \d+", "a worker process",
                            _first_line(t.user_attrs.get(ERROR_ATTR, "no error recorded")))
                     for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number not in retried)
    shown = "; ".join(f"{cause} (x{count})" if count > 1 else cause for cause, count in causes.most_common(3))
    raise SearchFailed(
        f"{outcome.failed} of {outcome.completed + outcome.failed} trials failed, more than completed, so no model "
        f"was built on this search. The failures: {shown}. The finished trials are kept in {run_dir / STUDY_FILE}; "
        f"once the cause is fixed, continue with: warmcv run --resume {run_dir} --trials {budget + outcome.failed}")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


@contextlib.contextmanager
def new_run_folder(run_dir: Path, *, resume: bool) -> Iterator[None]:
    """A run folder that this invocation creates is removed again if it ends before run.json is in it.

    So a run folder either resumes or is absent: run.json is what makes a folder a run (--resume reads
    it), and once it is written the folder is kept whatever happens next, because a resume redoes only
    what is missing, the preparation included. Before it, the folder holds at most a lock file, an
    example's hold-out rows or a DataFrame's copy: nothing to resume, only something to trip over (the
    next run in it, or a user who takes it for a run). A folder that existed before is left alone.
    """
    created = not resume and not os.path.lexists(run_dir)
    try:
        yield
    except BaseException:
        if created and not os.path.isfile(Path(run_dir) / SETTINGS_FILE):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


class _StartupInterrupted(KeyboardInterrupt):
    """A SIGINT or SIGTERM before the search started (its text is the signal's name)."""


class _StartupSignals:
    """How a run answers SIGINT/SIGTERM before its search starts: at once, in one line.

    The caller's handler (tuning.search.stop_flag_on_signals) only sets a flag that the search looks
    at, which is right once trials are running but left a Ctrl-C during a long preparation waiting
    for it. During start-up there is nothing to finish, so the first signal raises at once (the
    pool, the lock and any half-written file are cleaned up on the way out) and later ones are
    ignored while that happens. Inside `shielded()` a signal waits until the block ends, and after
    `finish()` every signal goes to the caller's handler.
    """

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._shielded = 0
        self._pending: str | None = None
        self._raised = False
        self._finished = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self._finished:
            previous = self._previous.get(signum)
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL and signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        if self._raised:
            return  # already stopping
        name = signal.Signals(signum).name
        if self._shielded:
            self._pending = name
            return
        self._raised = True
        raise _StartupInterrupted(name)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set in the main thread; the caller's flag still works
            return
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, previous in self._previous.items():
                signal.signal(s, previous)

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        self._shielded += 1
        try:
            yield
        finally:
            self._shielded -= 1
        if self._pending is not None and not self._shielded and not self._raised:
            self._raised = True
            raise _StartupInterrupted(self._pending)

    def finish(self) -> None:
        self._finished = True
