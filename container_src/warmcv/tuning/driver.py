"""The driver strategy: one search process, Optuna's ask-and-tell, every trial's K folds as fold jobs.

The same `Search` engine as `warmcv run`; only the fold runner differs: each trial gets a
`SageMakerFoldRunner` whose fold jobs are named after the run and the trial (`<run>-t0007-f3`), so
they are deterministic across restarts, and carry the run's name as their `warmcv:tuning-job` tag (the
warm-pool release finds them by it). No coordinator job per trial: a trial costs one warm start (its
folds'), not two (a coordinator's, then its folds').

Where it runs (`warmcv.modes.driver` in a training job of its own, or `warmcv tune --sagemaker --strategy
driver` on a user's machine, or a simulation) decides the clients, the clock and where the study is
kept; this module decides what the search is (`DriverPlan`, from the same hyperparameters either way),
how trials get their runners (`trial_runners`), how the study resumes (`open_driver_study`), and what
the search leaves for the pipeline (`driver_result`: the best hyperparameters, the CV mean and std and
the recommended rounds, as JSON the pipeline reads with JsonGet).

Fold-level pruning (`prune`): the rule `warmcv run` uses (`warmcv.cv.pruning.FoldPruner`: the best trial so
far and the spread of paired fold differences), checked as each of a trial's folds finishes rather than
between stages: a trial's K fold jobs start together (one warm start per trial), and the moment its
finished folds show it cannot beat the best, the folds still running are stopped and the trial is told to
Optuna as pruned. Every check is logged. Settings that could never prune are refused (`check_pruning`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from warmcv.aws.fold_jobs import FoldJobTemplate, driver_fold_parent
from warmcv.aws.training_jobs import TrainingJobsApi
from warmcv.clock import SYSTEM_CLOCK, Clock
from warmcv.cv import CrossValidationSummary, FoldResult, FoldTask, final_fit_hyperparameters
from warmcv.cv.pruning import FoldPruner, TrialPruned, make_rule
from warmcv.cv.quality import model_quality_statistics
from warmcv.data.manifest import Manifest
from warmcv.declarations import TUNING_FIXED, HyperparameterValues, SearchSpace, build_search_space
from warmcv.declarations.catalog import DRIVER_ONLY
from warmcv.errors import UserInputError
from warmcv.runners.sagemaker import CreateGate, SageMakerFoldRunner, Timing
from warmcv.runners.sagemaker.discovery import deadline_of, describe_self
from warmcv.tuning.search import CV_ATTR, HYPERPARAMETERS_ATTR, RunnerFactory, Search, SearchOutcome, TrialReport
from warmcv.tuning.space import describe, make_sampler, ordered_sampler, resolve_space

log = logging.getLogger(__name__)

RESULT_FILE = "driver_result.json"
STATISTICS_FILE = "cv_statistics.json"
# Hyperparameters of the driver job that are not the trials' own (never forwarded to a fold job).
NOT_FOR_TRIALS = DRIVER_ONLY | {"mode", "fold", "fold_runner", "coordinator_trains_fold"}
SEARCH_SEPARATOR = ";"


def trial_job_prefix(run_name: str, number: int) -> str:
    """What a trial's fold jobs are named after: `<run>-t0007` (then `-f3`)."""
    return f"{run_name}-t{number:04d}"


@dataclass(frozen=True)
class Pruning:
    """The driver's fold-level pruning settings (the `prune_*` hyperparameters)."""

    rule: str = "paired-bound"
    threshold: float = 0.1
    min_trials: int = 5


def check_pruning(pruning: Pruning, n_folds: int, trials: int) -> None:
    """Refuse settings under which nothing could ever be pruned, saying why and what would work."""
    problems = []
    if pruning.min_trials >= trials:
        problems.append(f"prune_min_trials={pruning.min_trials} completed trials must come first, but the search runs "
                        f"only {trials}: nothing could be pruned; lower prune_min_trials")
    if pruning.rule == "wilcoxon":
        # The one-sided signed-rank test's smallest p-value with n paired folds, all the same sign, is 2^-n; the
        # driver checks after at most K - 1 folds (after the last there is nothing left to stop).
        smallest = 2.0 ** -(n_folds - 1)
        if smallest >= pruning.threshold:
            problems.append(f"prune_rule=wilcoxon with {n_folds} folds: after {n_folds - 1} of them the test's "
                            f"smallest p-value is {smallest:g}, not below prune_threshold={pruning.threshold:g}, so no "
                            "trial could be pruned; use prune_rule=paired-bound (it can prune after one fold), more "
                            f"folds, or a threshold above {smallest:g}")
    if problems:
        raise UserInputError("; ".join(problems))


class FoldCheck:
    """A driver trial's pruning check, as each of its folds finishes (the runner's `on_fold`).

    Logs every decision; raises `TrialPruned` (with the summary of the folds run) once the trial cannot beat
    the best, which stops the trial's folds still running."""

    def __init__(self, pruner: FoldPruner, number: int, metric: str, direction: str, clock: Clock):
        self.pruner, self.number, self.metric, self.direction, self.clock = pruner, number, metric, direction, clock
        self.results: list[FoldResult] = []
        self.started = clock.monotonic()

    def __call__(self, result: FoldResult, task: FoldTask) -> None:
        self.results.append(result)
        if len(self.results) >= self.pruner.n_folds:
            return
        decision = self.pruner.check({r.fold: r.validation_score for r in self.results})
        level = logging.INFO if decision.prune or decision.statistic is not None else logging.DEBUG
        log.log(level, "trial %d: %s after %d of %d folds (%s): %s", self.number,
                "pruned" if decision.prune else "going on", len(self.results), self.pruner.n_folds, decision.rule,
                decision.reason)
        if decision.prune:
            ordered = sorted(self.results, key=lambda r: r.fold)
            summary = CrossValidationSummary.from_results(ordered, self.metric, self.direction, "sagemaker",
                                                          self.clock.monotonic() - self.started, task.hyperparameters)
            raise TrialPruned(summary, decision)


@dataclass(frozen=True)
class DriverPlan:
    """What the driver searches: M x N trials of K-fold CV over `space`, every trial with `fixed` on top."""

    trials: int
    parallel: int
    sampler: str
    sampler_seed: int
    space: SearchSpace
    fixed: dict[str, str]  # every trial's static hyperparameters, as its fold jobs receive them
    pruning: Pruning | None = None  # fold-level pruning, when on

    def pruner(self, direction: str, n_folds: int) -> FoldPruner | None:
        """The search's shared pruner (None without pruning), its settings checked against the folds."""
        if self.pruning is None:
            return None
        check_pruning(self.pruning, n_folds, self.trials)
        return FoldPruner(make_rule(self.pruning.rule, self.pruning.threshold), direction, n_folds,
                          self.pruning.min_trials)

    @classmethod
    def from_hyperparameters(cls, hps: HyperparameterValues) -> DriverPlan:
        """From the driver job's hyperparameters: its search settings, the space (`search`, else what `warmcv
        run` searches less what is set), and the rest as every trial's static values."""
        given = {k: v for k, v in hps.to_strings().items() if k not in NOT_FOR_TRIALS}
        if hps["search"]:
            space = build_search_space([], [part for part in hps["search"].split(SEARCH_SEPARATOR) if part])
        else:
            space = resolve_space(fixed=given)
        clash = sorted(set(space) & set(given))
        if clash:
            raise UserInputError(f"hyperparameters {', '.join(clash)} are both set and searched (search=); pick one")
        fixed = {**{k: v for k, v in TUNING_FIXED.items() if k not in space}, **given}
        pruning = Pruning(hps["prune_rule"], hps["prune_threshold"], hps["prune_min_trials"]) if hps["prune"] else None
        return cls(trials=hps["trials"], parallel=hps["parallel_trials"], sampler=hps["sampler"],
                   sampler_seed=hps["sampler_seed"], space=space, fixed=fixed, pruning=pruning)


def search_setting(space: SearchSpace) -> str:
    """The `search` hyperparameter that makes a driver search `space` (the launcher writes it)."""
    parts = []
    for name, spec in describe(space).items():
        if "choices" in spec:
            parts.append(f"{name}={','.join(spec['choices'])}")
        else:
            from warmcv.declarations import HYPERPARAMETERS

            hp = HYPERPARAMETERS[name]
            scaling = {"Logarithmic": "log", "Linear": "linear", "Auto": "auto",
                       "ReverseLogarithmic": "reverselog"}[spec["scaling"]]
            parts.append(f"{name}={hp.format(spec['low'])}:{hp.format(spec['high'])}:{scaling}")
    return SEARCH_SEPARATOR.join(parts)


@dataclass(frozen=True)
class DriverJob:
    """What a driver running as a training job learned about itself."""

    name: str
    description: dict[str, Any]  # its DescribeTrainingJob answer
    template: FoldJobTemplate  # what its trials' fold jobs copy (parent: the job; each trial replaces it)
    deadline: float | None  # on the clock: fold jobs must be done by then (its MaxRuntime less a margin)
    max_runtime: int | None


def discover_driver(api: TrainingJobsApi, name: str, hps: HyperparameterValues, *, clock: Clock = SYSTEM_CLOCK,
                    timing: Timing | None = None, rng: random.Random | None = None) -> DriverJob:
    """DescribeTrainingJob (and ListTags) on the driver's own job, made into its fold jobs' template: the
    driver's image, role, channels, output, VPC and network settings on the fold instance type."""
    timing = timing or Timing()
    me, tags = describe_self(api, name, clock, timing, rng or random.Random())
    remaining, deadline = deadline_of(me, clock, timing)
    parent = driver_fold_parent(me, hps["fold_instance_type"], hps["fold_volume_size_gb"],
                                hps["fold_max_runtime_seconds"])
    template = FoldJobTemplate.from_parent(parent, hps["keep_alive_seconds"], tags,
                                           max_runtime_seconds=int(remaining) if remaining is not None else None)
    for note in template.notes:
        log.info("%s", note)
    return DriverJob(name, me, template, deadline, (me.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"))


def trial_runners(api: TrainingJobsApi, base: FoldJobTemplate, run_name: str, *, clock: Clock = SYSTEM_CLOCK,
                  timing: Timing | None = None, seed: str = "", created_after: datetime | None = None,
                  deadline: float | None = None, max_runtime: int | None = None,
                  on_runner: Callable[[int, SageMakerFoldRunner], None] | None = None,
                  pruner: FoldPruner | None = None, metric: tuple[str, str] = ("", "")) -> RunnerFactory:
    """Each trial's SageMaker fold runner: fold jobs named after the run and the trial, tagged with the run.

    Every trial counts its own API calls (a `TrainingJobsApi` of its own over the shared clients) and draws
    its waits from its own seeded random stream, so a run replays the same way whatever the interleaving.
    All trials' creates go through one `CreateGate`: one process can keep the account's pace exactly, where
    separate coordinators collide and retry. With `pruner`, each trial's runner checks the trial as its
    folds finish (`FoldCheck`; `metric` is the (name, direction) its summary carries)."""
    timing = timing or Timing()
    gate = CreateGate(timing.create_interval)

    def make(number: int) -> SageMakerFoldRunner:
        template = replace(base, parent=trial_job_prefix(run_name, number), tuning_job=run_name)
        trial_api = TrainingJobsApi(api.sagemaker, s3=api.s3, prompt=api.prompt, creator=api.creator)
        runner = SageMakerFoldRunner(trial_api, template, clock=clock, rng=random.Random(f"{seed}/{run_name}/{number}"),
                                     timing=timing, deadline=deadline, max_runtime=max_runtime,
                                     created_after=created_after, create_gate=gate,
                                     on_fold=FoldCheck(pruner, number, *metric, clock) if pruner else None)
        if on_runner is not None:
            on_runner(number, runner)
        return runner

    return make


def open_driver_study(storage: Any, direction: str, plan: DriverPlan) -> Any:
    """Create the study, or load the one a previous driver of this run saved, with the plan's sampler.

    Re-seeded past the trials already asked, like a resumed `warmcv run`: a resumed random sampler must
    not replay the points it already tried."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from warmcv.tuning.study import STUDY_NAME

    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, direction=direction.lower(),  # type: ignore[arg-type]
                                sampler=make_sampler(plan.sampler, plan.sampler_seed), load_if_exists=True)
    if study.direction.name.lower() != direction.lower():
        raise UserInputError(f"the checkpointed study was created to {study.direction.name.lower()}, not to "
                             f"{direction.lower()}: the run's metric changed; start a new run (another checkpoint "
                             "location)")
    asked = len(study.get_trials(deepcopy=False))
    if asked:
        study.sampler = make_sampler(plan.sampler, plan.sampler_seed + asked)
        log.info("resuming a study of %d trial(s)", asked)
    return study


def run_search(plan: DriverPlan, manifest: Manifest, study: Any, runners: RunnerFactory,
               **options: Any) -> SearchOutcome:
    """The search itself: `Search` with the trials' SageMaker runners, resuming trials the study shows as
    running (their fold jobs are adopted, not created again). `options` go to `Search` (executor, stop,
    on_change, on_trial, timeout, pruner: the one the runners check against)."""
    # Dependent ranges (num_leaves <= 2^max_depth) drawn in order, as `warmcv run` draws them.
    search = Search(study, plan.space, plan.fixed, None, manifest, None, trials=plan.trials, parallel=plan.parallel,
                    runners=runners, resume_running=True, sample=ordered_sampler(plan.space), **options)
    return search.run()


def driver_result(study: Any, run_name: str, task: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the result the pipeline reads, the model-quality statistics a registered model carries).

    The result holds the best trial's CV mean and std (numbers, for the baseline condition), and
    `final_hyperparameters`: the worker hyperparameters of the final fit as strings (the tuned values,
    and the CV's recommended round count when early stopping is on), for the final training step."""
    from warmcv.tuning.study import counted_trials

    try:
        best = study.best_trial
    except ValueError:
        raise UserInputError("no trial of the search completed; see the driver's log for why they failed") from None
    summary = CrossValidationSummary.from_dict(best.user_attrs[CV_ATTR])
    trial_hps: Mapping[str, str] = best.user_attrs[HYPERPARAMETERS_ATTR]
    final = final_fit_hyperparameters(trial_hps, summary)
    complete, failed = counted_trials(study)
    from warmcv.tuning.study import pruned_trials

    result = {
        "run": run_name, "best_trial": best.number, "best_fold_jobs": trial_job_prefix(run_name, best.number),
        "metric": summary.metric, "direction": summary.direction,
        "cv_mean": summary.validation_mean, "cv_std": summary.validation_std, "n_folds": summary.n_folds,
        "fold_scores": summary.fold_scores, "recommended_num_boost_round": summary.recommended_num_boost_round,
        "hyperparameters": dict(trial_hps), "tuned": {k: trial_hps[k] for k in sorted(best.params)},
        "final_hyperparameters": final,
        "trials": {"complete": complete, "failed": failed, "pruned": pruned_trials(study)},
    }
    return result, model_quality_statistics(summary.to_dict(), task)


def on_trial_logger(metric: str) -> Callable[[TrialReport], None]:
    """One log line per finished trial: what a user follows in the driver's CloudWatch log."""

    def report(trial: TrialReport) -> None:
        best = "" if trial.best_value is None else f"; best so far #{trial.best_number}: {trial.best_value:.6f}"
        if trial.state == "complete":
            log.info("trial %d complete: CV %s %.6f +/- %.6f in %.0f s (%d/%d)%s", trial.number, metric,
                     trial.value, trial.std, trial.seconds, trial.counted, trial.budget, best)
        elif trial.state == "pruned" and trial.pruned is not None:
            log.info("trial %d pruned after %d of %d folds in %.0f s (%d/%d): %s%s", trial.number,
                     trial.pruned.folds_seen, trial.pruned.n_folds, trial.seconds, trial.counted, trial.budget,
                     trial.pruned.reason, best)
        else:
            log.info("trial %d %s after %.0f s (%d/%d)%s%s", trial.number, trial.state, trial.seconds, trial.counted,
                     trial.budget, f": {trial.error}" if trial.error else "", best)

    return report
