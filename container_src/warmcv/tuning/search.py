"""The search engine: Optuna's ask-and-tell over k-fold cross-validation, M trials in flight.

Each trial hands its K folds to a fold runner of its own through the unchanged `cross_validate`, so a
trial is exactly a coordinator job. Where the folds run is the caller's choice (`runners`): by default
a `LocalFoldRunner` on one shared warm worker pool (`warmcv run`), whose workers (one LightGBM thread
each, one worker per core) never oversubscribe the cores; the SageMaker driver gives each trial a
`SageMakerFoldRunner` that creates its K fold jobs on warm pools. Only the loop talks to the study;
trials run on a `TrialExecutor` (threads that merely wait on their folds, or a simulation's actors on a
virtual clock), and every wait and duration goes through its clock.

For the driver, whose study outlives the process in a checkpoint: `on_change` is called after every
change to the study that must survive a restart, and before a trial's folds start (so a trial whose
fold jobs exist is always in the saved study), and `resume_running` takes up the trials the saved
study shows as still running, under their own numbers, so their fold jobs are found again, not
duplicated.

Pruning: with `pruning=` (warmcv run) each trial hands its folds out in stages (`StagedFolds`: one fold,
then one more at a time, each trial starting at another fold) and between stages asks the shared
`FoldPruner` whether it can still beat the best trial on the same folds; with `pruner=` (the driver) the
caller's fold runners ask it as each fold finishes. Either way a trial whose CV stops (`TrialPruned`: its
first folds show it cannot beat the best) is told to Optuna as PRUNED with its fold scores as
intermediate values (step = fold) and its partial summary; it counts towards the budget, and a resumed
search keeps it as it is. Every completed trial feeds the shared `FoldPruner` (the trials a resumed study holds too).

Stopping: the first SIGINT/SIGTERM sets a flag; the loop then cancels the trials in flight (their
workers are killed, queued folds dropped), marks them failed-and-queued-again and returns, so every
finished trial is already in the study and `--resume` picks up the rest. A second signal raises
KeyboardInterrupt at once; the same cleanup still runs on the way out.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from warmcv.clock import SYSTEM_CLOCK, Clock
from warmcv.cv import CrossValidationSummary, FoldRunner, cross_validate
from warmcv.cv.pruning import FoldPruner, PruningDecision, StagedFolds, TrialPruned, make_rule, rotated_order
from warmcv.data.manifest import Manifest
from warmcv.declarations import SearchSpace, parse_hyperparameters
from warmcv.errors import FoldFailed, StopRequested, UserInputError
from warmcv.runners.local import LocalFoldRunner
from warmcv.runners.pool import WarmWorkerPool
from warmcv.settings.run import PruningOptions
from warmcv.tuning.executor import ThreadTrialExecutor, TrialExecutor
from warmcv.tuning.space import as_hyperparameters, distributions
from warmcv.tuning.study import counted_trials, fail_and_requeue, pruned_trials

log = logging.getLogger(__name__)

CV_ATTR = "cv"
HYPERPARAMETERS_ATTR = "hyperparameters"
CONSTANT_NOTE = "constant model: no tree of any fold has a split, so the score says nothing about the features"
ERROR_ATTR = "error"
PRUNED_ATTR = "pruned"  # a pruned trial's PruningDecision.to_dict()
_ERROR_CHARS = 2000


class SearchFailed(FoldFailed):
    """Trial after trial fails (out of memory, a broken environment): stop rather than burn the budget."""

    def __init__(self, message: str):
        Exception.__init__(self, message)
        self.fold = -1
        self.reason = message


class TrialObserver(Protocol):
    """Told of each finished trial before the study records it, so what it keeps for a trial (out-of-fold
    predictions, a tracking run) exists by the time the study says the trial is done."""

    def trial_completed(self, trial: Any, summary: CrossValidationSummary, seconds: float) -> None: ...

    def trial_failed(self, trial: Any, error: str, seconds: float) -> None: ...

    def trial_pruned(self, trial: Any, summary: CrossValidationSummary, decision: PruningDecision,
                     seconds: float) -> None: ...


@dataclass(frozen=True)
class TrialReport:
    """One finished trial, as the progress display sees it."""

    number: int
    state: str  # complete | pruned | failed | interrupted
    value: float | None
    std: float | None
    seconds: float
    error: str | None
    best_value: float | None
    best_number: int | None
    counted: int  # trials counted towards the budget so far
    budget: int
    note: str | None = None  # e.g. that the trial's model is constant
    pruned: PruningDecision | None = None  # why a pruned trial stopped
    pruned_so_far: int = 0


@dataclass
class SearchOutcome:
    completed: int  # in the whole study
    failed: int
    stopped: bool  # by a signal
    timed_out: bool
    seconds: float
    finished_here: list[int] = field(default_factory=list)  # trial numbers finished by this invocation
    interrupted: list[int] = field(default_factory=list)
    pruned: int = 0  # in the whole study; counted towards the budget like completed and failed ones


@dataclass
class _InFlight:
    trial: Any
    runner: FoldRunner
    started: float


RunnerFactory = Callable[[int], FoldRunner]  # trial number -> the runner of that trial's folds


def local_runners(data_dir: Path, pool: WarmWorkerPool) -> RunnerFactory:
    """Every trial's folds on one shared warm worker pool (what `warmcv run` does). A trial keeps only the
    objective's scores: the folds compute no other metric. Its folds' validation predictions come back with
    the scores (for out-of-fold predictions of the best trial)."""
    return lambda _number: LocalFoldRunner(data_dir, pool=pool, all_metrics=False, keep_predictions=True)


@contextmanager
def stop_flag_on_signals() -> Iterator[threading.Event]:
    """First SIGINT/SIGTERM sets the returned event; a second one raises KeyboardInterrupt immediately."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum: int, _frame: object) -> None:
        if event.is_set():
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
        event.set()
        sys.stderr.write(f"\nwarmcv: {signal.Signals(signum).name} received, stopping; finished trials are kept "
                         "(send it again to stop at once)\n")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


class Search:
    """Runs trials until `trials` of them count (completed, pruned or genuinely failed), the timeout, or a stop."""

    def __init__(self, study: Any, space: SearchSpace, fixed: Mapping[str, str], data_dir: Path | None,
                 manifest: Manifest, pool: WarmWorkerPool | None, *, trials: int, parallel: int,
                 timeout: float | None = None, stop: threading.Event | None = None,
                 on_trial: Callable[[TrialReport], None] | None = None, max_consecutive_failures: int | None = None,
                 runners: RunnerFactory | None = None, executor: TrialExecutor | None = None,
                 on_change: Callable[[], None] | None = None, resume_running: bool = False,
                 observers: Sequence[TrialObserver] = (), sample: Callable[[Any], dict[str, Any]] | None = None,
                 pruning: PruningOptions | None = None, pruner: FoldPruner | None = None):
        """`runners` (default: local runners on `pool` over `data_dir`) gives each trial its fold runner;
        `executor` (default: threads on the system clock) runs the trials. `pruning` stages each trial's folds
        and prunes between stages; `pruner` is one the caller's runners consult themselves (not both)."""
        if pruning is not None and pruner is not None:
            raise ValueError("give Search either `pruning` (staged folds) or a `pruner` its runners consult")
        self.study = study
        self.space = space
        self.distributions = distributions(space)
        self.fixed = dict(fixed)
        self.manifest = manifest
        if runners is None:
            if data_dir is None or pool is None:
                raise ValueError("Search needs either `runners` or a worker pool and the prepared data's folder")
            runners = local_runners(Path(data_dir), pool)
        self.runners = runners
        self.executor = executor
        self.on_change = on_change
        self.resume_running = resume_running
        self.trials = trials
        self.parallel = max(1, parallel)
        self.timeout = timeout
        self.stop = stop or threading.Event()
        self.on_trial = on_trial
        self.observers = list(observers)
        # Draws a trial's values (a search whose ranges depend on each other, e.g. num_leaves <= 2^max_depth,
        # samples them in order); by default every dimension independently from its distribution.
        self.sample_in_order = sample is not None
        self.sample = sample or (lambda trial: trial.params)
        self.max_consecutive_failures = max_consecutive_failures or max(5, 2 * self.parallel)
        self._maximize = study.direction.name == "MAXIMIZE"
        self._best: tuple[float, int] | None = None
        self._complete, self._failed = counted_trials(study)
        self._pruned = pruned_trials(study)
        self._consecutive_failures = 0
        try:
            best = study.best_trial
            self._best = (best.value, best.number)
        except ValueError:
            pass
        self.pruning = pruning
        if pruning is not None:
            pruner = FoldPruner(make_rule(pruning.rule, pruning.threshold), self.study.direction.name.capitalize(),
                                self.manifest.n_folds, pruning.min_trials)
        self.pruner = pruner
        if pruner is not None:
            self._feed(pruner)

    def _feed(self, pruner: FoldPruner) -> None:
        """The completed trials a resumed study already holds, for the pruner to compare with."""
        from optuna.trial import TrialState

        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            stored = trial.user_attrs.get(CV_ATTR)
            if stored:
                summary = CrossValidationSummary.from_dict(stored)
                pruner.add_complete(trial.number, {f.fold: f.validation_score for f in summary.folds})

    @property
    def _counted(self) -> int:
        return self._complete + self._failed + self._pruned

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> SearchOutcome:
        executor = self.executor or ThreadTrialExecutor(self.parallel)
        clock = executor.clock
        started = clock.monotonic()
        outcome = SearchOutcome(0, 0, stopped=False, timed_out=False, seconds=0.0)
        inflight: dict[Future, _InFlight] = {}
        try:
            if self.resume_running:
                for frozen in self._running_trials():
                    future, item = self._submit(executor, self._live(frozen), frozen.user_attrs[HYPERPARAMETERS_ATTR])
                    inflight[future] = item
                    log.info("trial %d was running when the search last stopped: taking it up again", frozen.number)
            while True:
                if self.stop.is_set() and not outcome.stopped:
                    outcome.stopped = True
                    log.info("stop requested: cancelling %d trial(s) in flight", len(inflight))
                if self.timeout is not None and clock.monotonic() - started > self.timeout and not outcome.timed_out:
                    outcome.timed_out = True
                    log.info("timeout of %.0f s reached: finishing the trials in flight", self.timeout)
                if outcome.stopped:
                    for item in inflight.values():
                        item.runner.stop()
                else:
                    while (not outcome.timed_out and len(inflight) < self.parallel
                           and self._counted + len(inflight) < self.trials):
                        future, item = self._start(executor)
                        inflight[future] = item
                if not inflight:
                    break
                done = executor.wait_any(inflight, timeout=0.25)
                for future in done:
                    item = inflight.pop(future)
                    self._finish(future, item, outcome, clock)
        except BaseException:
            self._abandon(inflight, outcome, executor)
            raise
        finally:
            executor.shutdown()
            outcome.completed, outcome.failed, outcome.pruned = self._complete, self._failed, self._pruned
            outcome.seconds = clock.monotonic() - started
        return outcome

    def _start(self, executor: TrialExecutor) -> tuple[Future, _InFlight]:
        trial = self.study.ask() if self.sample_in_order else self.study.ask(self.distributions)
        sampled = as_hyperparameters(self.sample(trial))
        hyperparameters = {**self.fixed, **sampled}
        trial.set_user_attr(HYPERPARAMETERS_ATTR, hyperparameters)
        log.debug("trial %d started: %s", trial.number, sampled)
        return self._submit(executor, trial, hyperparameters)

    def _submit(self, executor: TrialExecutor, trial: Any,
                hyperparameters: Mapping[str, str]) -> tuple[Future, _InFlight]:
        """Save the study (the trial and its values are in it before any of its folds exists), then run its CV."""
        if self.on_change is not None:
            self.on_change()
        hps = parse_hyperparameters({**hyperparameters, "mode": "coordinator"})
        runner = self.runners(trial.number)
        staged = None
        if self.pruner is not None and self.pruning is not None:
            staged = StagedFolds(rotated_order(self.manifest.n_folds, trial.number), self.pruner.check,
                                 first=self.pruning.first_folds, step=self.pruning.step_folds)
        future = executor.submit(f"trial-{trial.number}", lambda: cross_validate(runner, hps, self.manifest,
                                                                                 clock=executor.clock, staged=staged))
        return future, _InFlight(trial, runner, executor.clock.monotonic())

    def _running_trials(self) -> list[Any]:
        """Trials the study shows as running, that recorded their hyperparameters (oldest first)."""
        from optuna.trial import TrialState

        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        lost = [t for t in running if HYPERPARAMETERS_ATTR not in t.user_attrs]
        for trial in lost:  # asked, but stopped before it could start: nothing of it runs anywhere
            fail_and_requeue(self.study, trial.number)
        return sorted((t for t in running if HYPERPARAMETERS_ATTR in t.user_attrs), key=lambda t: t.number)

    def _live(self, frozen: Any) -> Any:
        """A `Trial` for a running trial loaded from storage, to tell it when its folds are done."""
        import optuna

        return optuna.trial.Trial(self.study, frozen._trial_id)

    def _finish(self, future: Future, item: _InFlight, outcome: SearchOutcome, clock: Clock = SYSTEM_CLOCK) -> None:
        from optuna.trial import TrialState

        trial, seconds = item.trial, clock.monotonic() - item.started
        error = future.exception()
        if isinstance(error, StopRequested):
            fail_and_requeue(self.study, trial.number)
            self._changed()
            outcome.interrupted.append(trial.number)
            self._report(trial.number, "interrupted", None, None, seconds, None)
            return
        if isinstance(error, TrialPruned):
            for observer in self.observers:
                observer.trial_pruned(trial, error.summary, error.decision, seconds)
            self._tell_pruned(trial, error)
            self._changed()
            self._consecutive_failures = 0
            outcome.finished_here.append(trial.number)
            self._report(trial.number, "pruned", None, None, seconds, None, pruned=error.decision)
            return
        if error is None:
            summary: CrossValidationSummary = future.result()
            if math.isfinite(summary.validation_mean):
                trial.set_user_attr(CV_ATTR, summary.to_dict())
                report_fold_scores(trial, summary)
                for observer in self.observers:
                    observer.trial_completed(trial, summary, seconds)
                self.study.tell(trial, summary.validation_mean)
                self._changed()
                if self.pruner is not None:
                    self.pruner.add_complete(trial.number, {f.fold: f.validation_score for f in summary.folds})
                self._complete += 1
                self._consecutive_failures = 0
                outcome.finished_here.append(trial.number)
                value = summary.validation_mean
                if self._best is None or (value > self._best[0] if self._maximize else value < self._best[0]):
                    self._best = (value, trial.number)
                note = CONSTANT_NOTE if summary.constant_model else None
                self._report(trial.number, "complete", value, summary.validation_std, seconds, None, note)
                return
            error = FoldFailed(-1, f"the cross-validated score is not a finite number ({summary.validation_mean})")
        message = str(error)[:_ERROR_CHARS]
        trial.set_user_attr(ERROR_ATTR, message)
        for observer in self.observers:
            observer.trial_failed(trial, message, seconds)
        self.study.tell(trial, state=TrialState.FAIL)
        self._changed()
        self._failed += 1
        outcome.finished_here.append(trial.number)
        self._report(trial.number, "failed", None, None, seconds, message)
        if isinstance(error, UserInputError):
            raise error
        if not isinstance(error, FoldFailed):
            log.error("trial %d failed unexpectedly", trial.number, exc_info=error)
        self._consecutive_failures += 1
        if self._consecutive_failures >= self.max_consecutive_failures:
            raise SearchFailed(f"{self._consecutive_failures} trials in a row failed; the last one: {message}")

    def _tell_pruned(self, trial: Any, pruned: TrialPruned) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr(CV_ATTR, pruned.summary.to_dict())
        trial.set_user_attr(PRUNED_ATTR, pruned.decision.to_dict())
        report_fold_scores(trial, pruned.summary)
        self.study.tell(trial, state=TrialState.PRUNED)
        self._pruned += 1
        log.debug("trial %d pruned: %s", trial.number, pruned.decision.reason)

    def _abandon(self, inflight: dict[Future, _InFlight], outcome: SearchOutcome, executor: TrialExecutor) -> None:
        """On the way out of an error or a forced stop: stop the trials in flight and queue them again."""
        clock = executor.clock
        # Side by side: each SageMaker runner may take its stop budget against a slow API, and SageMaker kills a
        # stopped job 120 s after SIGTERM.
        executor.run_together([item.runner.stop for item in inflight.values()])
        deadline = clock.monotonic() + 30
        pending = set(inflight)
        while pending and clock.monotonic() < deadline:
            for item in inflight.values():
                item.runner.stop()  # again: a trial may have submitted its folds after the first stop
            pending -= executor.wait_any(pending, timeout=0.25)
        for future, item in inflight.items():
            try:
                if future.done() and (future.exception() is None or isinstance(future.exception(), TrialPruned)):
                    self._finish(future, item, outcome, clock)  # it finished before it could be stopped: keep it
                else:
                    fail_and_requeue(self.study, item.trial.number)
                    outcome.interrupted.append(item.trial.number)
            except Exception:  # noqa: BLE001 - best effort; --resume recovers RUNNING trials anyway
                log.warning("could not close trial %d; --resume will re-run it", item.trial.number)
        inflight.clear()
        try:
            self._changed()
        except Exception:  # noqa: BLE001 - already on the way out of an error; the last saved study stands
            log.warning("could not save the study after stopping its trials", exc_info=True)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _report(self, number: int, state: str, value: float | None, std: float | None, seconds: float,
                error: str | None, note: str | None = None, pruned: PruningDecision | None = None) -> None:
        if self.on_trial is None:
            return
        best_value, best_number = self._best if self._best is not None else (None, None)
        self.on_trial(TrialReport(number, state, value, std, seconds, error, best_value, best_number,
                                  self._counted, self.trials, note, pruned, self._pruned))


def report_fold_scores(trial: Any, summary: CrossValidationSummary) -> None:
    """Each fold's validation score as an Optuna intermediate value, step = fold number (what Optuna's
    WilcoxonPruner reads, and what optuna-dashboard plots); a pruned trial keeps the folds it ran."""
    for fold in summary.folds:
        trial.report(fold.validation_score, fold.fold)

