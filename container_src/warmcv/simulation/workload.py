"""How long simulated jobs take, whether they fail, and what their folds score.

Every draw is keyed by what it is about (a job's name, a fold of a trial), not by the order in which the
simulation asks: with the same seed, fold 3 of trial 17 trains for the same simulated seconds whether
the trial runs K + 1 jobs or trains fold 0 on the coordinator, and however the API calls interleave.
Comparisons between designs therefore see the same luck (common random numbers).

Durations are lognormal around their nominal value with a coefficient of variation (`*_cv`; 0 gives
exactly the nominal value): positive, right-skewed like real start-up and training times.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from warmcv.aws.tags import PARENT_JOB
from warmcv.clock import Clock
from warmcv.cv import FoldTask
from warmcv.simulation.sagemaker import JobTiming, SimJob, fold_summary

FAILURE_REASON = "AlgorithmError: simulated fold failure"


@dataclass(frozen=True)
class Workload:
    """Nominal times in seconds. The defaults are the seed's figure (3-minute start, 2-minute training)."""

    startup: float = 180.0  # a job on fresh instances: provisioning, image pull, data download (S)
    warm_startup: float = 20.0  # a job on a reused warm pool (AWS: for start-ups "under 20 seconds")
    coordinator_startup: float | None = None  # a coordinator on an instance AMT reuses (None: warm_startup)
    train: float = 120.0  # one fold's training (T)
    train_cv: float = 0.1
    startup_cv: float = 0.1
    failure_rate: float = 0.0  # share of folds that fail (AlgorithmError) part-way through training
    seed: int = 0

    @property
    def reused_coordinator_startup(self) -> float:
        return self.warm_startup if self.coordinator_startup is None else self.coordinator_startup

    def _rng(self, *key: Any) -> random.Random:
        return random.Random("/".join(str(k) for k in (self.seed, *key)))

    def _draw(self, nominal: float, cv: float, *key: Any) -> float:
        if nominal <= 0 or cv <= 0:
            return max(0.0, nominal)
        sigma2 = math.log1p(cv * cv)
        return self._rng(*key).lognormvariate(math.log(nominal) - sigma2 / 2, math.sqrt(sigma2))

    # -- per job ---------------------------------------------------------------------------------------------
    def fold_timing(self, request: dict, warm: bool) -> JobTiming:
        """A fold job's JobTiming (the simulated service asks when the job is created)."""
        name = request["TrainingJobName"]
        start = self._draw(self.warm_startup if warm else self.startup, self.startup_cv, name, "start",
                           "warm" if warm else "cold")
        train, failure, after = self.fold_training(name)
        return JobTiming(start, train, failure, after)

    def fold_training(self, key: str) -> tuple[float, str | None, float | None]:
        """(training seconds, FailureReason or None, seconds into training when it fails) of one fold."""
        train = self._draw(self.train, self.train_cv, key, "train")
        rng = self._rng(key, "failure")
        if self.failure_rate > 0 and rng.random() < self.failure_rate:
            return train, f"{FAILURE_REASON} (failure rate {self.failure_rate:g})", train * rng.uniform(0.1, 1.0)
        return train, None, None

    def coordinator_start(self, name: str, cold: bool) -> float:
        nominal = self.startup if cold else self.reused_coordinator_startup
        return self._draw(nominal, self.startup_cv, name, "start", "cold" if cold else "reused")

    # -- what the folds score --------------------------------------------------------------------------------
    def fold_result(self, trial: str, fold: int, seconds: float, num_boost_round: int) -> dict[str, Any]:
        """The worker's metrics.json: a trial's level (its hyperparameters' luck) plus the fold's own noise."""
        level = 0.82 + 0.08 * self._rng(trial, "quality").random()
        rng = self._rng(trial, fold, "scores")
        validation = min(1.0, level + rng.gauss(0.0, 0.005))
        train = min(1.0, validation + 0.03 + abs(rng.gauss(0.0, 0.005)))
        best = rng.randint(max(1, num_boost_round // 5), max(1, num_boost_round))
        return fold_summary(fold, validation, train, best_iteration=best, seconds=seconds)

    def job_result(self, job: SimJob) -> dict[str, Any]:
        """`SimulatedSageMaker.results`: the metrics.json of a completed fold job."""
        hps = job.request["HyperParameters"]
        trial = next((t["Value"] for t in job.request.get("Tags", []) if t.get("Key") == PARENT_JOB),
                     job.request["TrainingJobName"].rsplit("-f", 1)[0])
        return self.fold_result(trial, int(hps["fold"]), job.train or 0.0, int(hps.get("num_boost_round", "100")))


class _TimedFuture:
    """A `concurrent.futures.Future`-like result that is ready at a simulated time."""

    def __init__(self, clock: Clock, ready_at: float, summary: dict, failure: str | None):
        self._clock, self.ready_at, self._summary, self._failure = clock, ready_at, summary, failure
        self.cancelled = False

    def done(self) -> bool:
        return self._clock.monotonic() >= self.ready_at

    def exception(self) -> BaseException | None:
        return RuntimeError(self._failure) if self._failure else None

    def result(self) -> dict:
        if self._failure:
            raise RuntimeError(self._failure)
        return self._summary


class SimulatedLocalFold:
    """The fold a coordinator trains itself (`coordinator_trains_fold`): the runner's `LocalFold`, timed.

    It trains on the coordinator's own instance, so it has no start-up; its training time and outcome are
    the workload's draw for that fold (the same draw a fold job of that name would get).
    """

    def __init__(self, workload: Workload, trial: str, task: FoldTask, clock: Clock, failure: str | None = None):
        key = f"{trial}-f{task.fold}"
        train, drawn, after = workload.fold_training(key)
        if failure:  # injected: fails a quarter into its training, like an injected fold job
            after = train / 4
        failure = failure or drawn
        self.started = clock.monotonic()
        self.train = train
        self.ends_at = self.started + (after if failure and after is not None else train)
        summary = workload.fold_result(trial, task.fold, train,
                                       int(task.hyperparameters.get("num_boost_round", "100")))
        self.future = _TimedFuture(clock, self.ends_at, summary, failure)
        self.failure = failure

    def cancel(self) -> None:
        self.future.cancelled = True

    def close(self) -> None:
        pass
