"""The search engine: Optuna's ask-and-tell over k-fold cross-validation on one shared warm worker pool.

M trials are in flight at once; each hands its K folds to the pool through its own `LocalFoldRunner`
and the unchanged `cross_validate`, so a local trial is exactly a coordinator job. Only the main
thread talks to the study (SQLite), trials run in threads that merely wait on the pool, and the
pool's workers (one LightGBM thread each, one worker per core) never oversubscribe the cores.

Pruning (on with `pruning=`): each trial hands its folds out in stages (`StagedFolds`: one fold, then
one more at a time, each trial starting at another fold) and between stages asks the shared
`FoldPruner` whether it can still beat the best trial on the same folds. A pruned trial is told to
Optuna as PRUNED with its fold scores as intermediate values (step = fold) and its partial summary;
it counts towards the budget, and a resumed run keeps it as it is.

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
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from warmcv.cv import CrossValidationSummary, cross_validate
from warmcv.cv.pruning import FoldPruner, PruningDecision, StagedFolds, TrialPruned, make_rule, rotated_order
from warmcv.data.manifest import Manifest
from warmcv.declarations import SearchSpace, parse_hyperparameters
from warmcv.errors import FoldFailed, StopRequested, UserInputError
from warmcv.runners.local import LocalFoldRunner
from warmcv.runners.pool import WarmWorkerPool
from warmcv.settings.run import PruningOptions
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
    runner: LocalFoldRunner
    started: float


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

    def __init__(self, study: Any, space: SearchSpace, fixed: Mapping[str, str], data_dir: Path, manifest: Manifest,
                 pool: WarmWorkerPool, *, trials: int, parallel: int, timeout: float | None = None,
                 stop: threading.Event | None = None, on_trial: Callable[[TrialReport], None] | None = None,
                 max_consecutive_failures: int | None = None, observers: Sequence[TrialObserver] = (),
                 sample: Callable[[Any], dict[str, Any]] | None = None, pruning: PruningOptions | None = None):
        self.study = study
        self.space = space
        self.distributions = distributions(space)
        self.fixed = dict(fixed)
        self.data_dir = Path(data_dir)
        self.manifest = manifest
        self.pool = pool
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
        self.pruner = self._pruner(pruning) if pruning is not None else None

    def _pruner(self, pruning: PruningOptions) -> FoldPruner:
        """The shared pruner, fed with the completed trials a resumed study already holds."""
        from optuna.trial import TrialState

        pruner = FoldPruner(make_rule(pruning.rule, pruning.threshold), self.study.direction.name.capitalize(),
                            self.manifest.n_folds, pruning.min_trials)
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            stored = trial.user_attrs.get(CV_ATTR)
            if stored:
                summary = CrossValidationSummary.from_dict(stored)
                pruner.add_complete(trial.number, {f.fold: f.validation_score for f in summary.folds})
        return pruner

    @property
    def _counted(self) -> int:
        return self._complete + self._failed + self._pruned

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> SearchOutcome:
        started = time.monotonic()
        outcome = SearchOutcome(0, 0, stopped=False, timed_out=False, seconds=0.0)
        inflight: dict[Future, _InFlight] = {}
        executor = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="warmcv-trial")
        try:
            while True:
                if self.stop.is_set() and not outcome.stopped:
                    outcome.stopped = True
                    log.info("stop requested: cancelling %d trial(s) in flight", len(inflight))
                if self.timeout is not None and time.monotonic() - started > self.timeout and not outcome.timed_out:
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
                done, _ = wait(inflight, timeout=0.25, return_when=FIRST_COMPLETED)
                for future in done:
                    item = inflight.pop(future)
                    self._finish(future, item, outcome)
        except BaseException:
            self._abandon(inflight, outcome)
            raise
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            outcome.completed, outcome.failed, outcome.pruned = self._complete, self._failed, self._pruned
            outcome.seconds = time.monotonic() - started
        return outcome

    def _start(self, executor: ThreadPoolExecutor) -> tuple[Future, _InFlight]:
        trial = self.study.ask() if self.sample_in_order else self.study.ask(self.distributions)
        sampled = as_hyperparameters(self.sample(trial))
        hyperparameters = {**self.fixed, **sampled}
        trial.set_user_attr(HYPERPARAMETERS_ATTR, hyperparameters)
        hps = parse_hyperparameters({**hyperparameters, "mode": "coordinator"})
        # A trial keeps only the objective's scores: the folds compute no other metric. Its folds' validation
        # predictions come back with the scores (for out-of-fold predictions of the best trial).
        runner = LocalFoldRunner(self.data_dir, pool=self.pool, all_metrics=False, keep_predictions=True)
        staged = None
        if self.pruner is not None and self.pruning is not None:
            staged = StagedFolds(rotated_order(self.manifest.n_folds, trial.number), self.pruner.check,
                                 first=self.pruning.first_folds, step=self.pruning.step_folds)
        future = executor.submit(cross_validate, runner, hps, self.manifest, staged=staged)
        log.debug("trial %d started: %s", trial.number, sampled)
        return future, _InFlight(trial, runner, time.monotonic())

    def _finish(self, future: Future, item: _InFlight, outcome: SearchOutcome) -> None:
        from optuna.trial import TrialState

        trial, seconds = item.trial, time.monotonic() - item.started
        error = future.exception()
        if isinstance(error, StopRequested):
            fail_and_requeue(self.study, trial.number)
            outcome.interrupted.append(trial.number)
            self._report(trial.number, "interrupted", None, None, seconds, None)
            return
        if isinstance(error, TrialPruned):
            for observer in self.observers:
                observer.trial_pruned(trial, error.summary, error.decision, seconds)
            self._tell_pruned(trial, error)
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

    def _abandon(self, inflight: dict[Future, _InFlight], outcome: SearchOutcome) -> None:
        """On the way out of an error or a forced stop: stop the trials in flight and queue them again."""
        for item in inflight.values():
            item.runner.stop()
        deadline = time.monotonic() + 30
        pending = set(inflight)
        while pending and time.monotonic() < deadline:
            for item in inflight.values():
                item.runner.stop()  # again: a trial may have submitted its folds after the first stop
            _, pending = wait(pending, timeout=0.25)
        for future, item in inflight.items():
            try:
                if future.done() and (future.exception() is None or isinstance(future.exception(), TrialPruned)):
                    self._finish(future, item, outcome)  # it finished before it could be stopped: keep it
                else:
                    fail_and_requeue(self.study, item.trial.number)
                    outcome.interrupted.append(item.trial.number)
            except Exception:  # noqa: BLE001 - best effort; --resume recovers RUNNING trials anyway
                log.warning("could not close trial %d; --resume will re-run it", item.trial.number)
        inflight.clear()

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
