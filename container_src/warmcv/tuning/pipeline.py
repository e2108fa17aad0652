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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import warmcv
from warmcv.cv import CrossValidationSummary, check_n_folds, final_fit_hyperparameters, train_and_save
from warmcv.data.manifest import MANIFEST_FILE, PreparedData, read_manifest
from warmcv.data.prepare import prepare
from warmcv.declarations import parse_hyperparameters
from warmcv.errors import StopRequested, UserInputError
from warmcv.model.params import default_threads, training_setup
from warmcv.settings.run import RunSettings
from warmcv.tuning.search import CV_ATTR, HYPERPARAMETERS_ATTR, Search, SearchOutcome, TrialReport
from warmcv.tuning.space import make_sampler, space_from_description
from warmcv.tuning.study import STUDY_FILE, counted_trials, open_study, pruned_trials, recover_interrupted, run_lock

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
        from warmcv.runners.pool import WarmWorkerPool

        total_started = time.monotonic()
        s = self.settings
        with run_lock(self.run_dir), contextlib.ExitStack() as stack:
            if not self.resume:
                # A folder whose run never reached the search (bad settings, say) may be reused as is.
                if (self.run_dir / STUDY_FILE).exists():
                    raise UserInputError(f"{self.run_dir} already holds a run: continue it with "
                                         f"`warmcv run --resume {self.run_dir}` or choose another --out")
                s.save(self.run_dir)
            workers = s.workers or default_threads()
            threads = max(1, default_threads() // workers)
            # Started before preparing, so the workers' start-up (imports) overlaps with the preparation.
            pool = stack.enter_context(WarmWorkerPool(workers=workers, threads=threads, prestart=True,
                                                      dataset_dir=self.run_dir / DATASETS_DIR))
            prepared = self._prepared()
            manifest = read_manifest(prepared)
            space = space_from_description(s.space)
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

            if self.on_search_start is not None:
                self.on_search_start(setup.metric.name, s.trials, done)
            search = Search(study, space, s.fixed, prepared, manifest, pool, trials=s.trials, parallel=parallel,
                            timeout=s.timeout, stop=self.stop, on_trial=self.on_trial,
                            pruning=s.pruning if s.prune else None)
            outcome = search.run()
            pool_stats = {"workers": workers, "threads_per_worker": threads, "parallel_trials": parallel,
                          "worker_processes_started": pool.started_workers, "worker_crashes": pool.crashes}
            stack.close()  # the workers' memory is free again before the final fit
            self.timings.values["search_seconds"] = outcome.seconds
            if outcome.stopped:
                raise StopRequested(
                    f"search stopped after {outcome.completed + outcome.failed} of {s.trials} trials; every finished "
                    f"trial is saved. Continue with: warmcv run --resume {self.run_dir}"
                )
            self._check_stop("before the final fit")
            if outcome.completed == 0:
                raise UserInputError(f"no trial completed ({outcome.failed} failed); see {self.run_dir / STUDY_FILE} "
                                     "or the errors above")
            report = self._finish(study, manifest, prepared, setup, outcome, pool_stats, total_started)
        return RunResult(self.run_dir, report, outcome)

    def _finish(self, study: Any, manifest: Any, prepared: Path, setup: Any, outcome: SearchOutcome,
                pool_stats: dict[str, Any], total_started: float) -> dict[str, Any]:
        from warmcv.model.artifacts import TrainedModel
        from warmcv.model.batch import predict_file
        from warmcv.model.package import ARCHIVE_NAME, package_model
        from warmcv.model.registry import LocalModelRegistry, group_name_from
        from warmcv.tuning.plots import make_plots
        from warmcv.tuning.report import REPORT_FILE, pruning_savings, trial_records, write_report

        s = self.settings
        best = study.best_trial
        trial_hps = best.user_attrs[HYPERPARAMETERS_ATTR]
        summary = CrossValidationSummary.from_dict(best.user_attrs[CV_ATTR])

        started = time.monotonic()
        final_hps = final_fit_hyperparameters(trial_hps, summary)
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

        registry_dir = Path(s.registry) if s.registry else self.run_dir.resolve().parent / "registry"
        group = s.model_group or group_name_from(Path(s.data).name.split(".")[0], s.target)
        metrics = {"metric": setup.metric.name, "direction": setup.metric.direction,
                   "cv_mean": summary.validation_mean, "cv_std": summary.validation_std, "n_folds": summary.n_folds,
                   "fold_scores": summary.fold_scores, "train_score": outcome_final.train_score}
        registry = LocalModelRegistry(registry_dir)
        entry = registry.register(group, model_data=archive, model_sha256=sha, metrics=metrics,
                                  hyperparameters=final_hps, run=self.run_dir, status=s.approval,
                                  description=f"warmcv run, trial #{best.number} of {s.trials}")

        self._check_stop("after the final fit")
        predictions = None
        if s.predict:
            started = time.monotonic()
            path = self.run_dir / PREDICTIONS_FILE
            rows = predict_file(TrainedModel.load(model_dir), s.predict, path, output=s.predict_output)  # type: ignore[arg-type]
            self.timings.measure("predict", started)
            predictions = {"source": s.predict, "path": str(path), "rows": rows, "output": s.predict_output}

        started = time.monotonic()
        records = trial_records(study)
        maximize = setup.metric.direction == "Maximize"
        plots, importances = make_plots(study, records, setup.metric.name, maximize, self.run_dir / PLOTS_DIR, s.seed)
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
                       "folds": manifest.n_folds, "space": s.space, "fixed": s.fixed, "timeout": s.timeout,
                       "stopped_by_timeout": outcome.timed_out,
                       "pruning": {"on": s.prune, **s.pruning.model_dump(mode="json"),
                                   **pruning_savings(records, manifest.n_folds)},
                       **pool_stats},
            "best": {"trial": best.number, "cv_mean": summary.validation_mean, "cv_std": summary.validation_std,
                     "params": dict(best.params), "hyperparameters": trial_hps,
                     "folds": [f.to_dict() for f in summary.folds],
                     "recommended_num_boost_round": summary.recommended_num_boost_round},
            "final_model": {"directory": str(model_dir), "archive": str(archive), "sha256": sha,
                            "hyperparameters": final_hps, "best_iteration": outcome_final.best_iteration,
                            "train_score": outcome_final.train_score},
            "registry": {"path": str(registry.path), "group": group, "version": entry["ModelPackageVersion"],
                         "status": entry["ModelApprovalStatus"]},
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
        return report


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
