"""How long simulated jobs start and train, whether they fail, and what their folds score.

Every draw is keyed by what it is about (a job's name, a fold of a trial), not by the order in which the
simulation asks: with the same seed, fold 3 of trial 17 trains for the same simulated seconds whether
the trial runs K + 1 jobs or trains fold 0 on the coordinator, and however the API calls interleave.
Comparisons between designs therefore see the same luck (common random numbers).

Durations are lognormal around their nominal value with a coefficient of variation (`*_cv`; 0 gives
exactly the nominal value): positive, right-skewed like real start-up and training times.

A start-up (created -> Training) has two parts: provisioning, before TrainingStartTime, and the
downloads after it, which are billed (`warmcv.training_service.rules.billable_seconds`). How long the
downloads take is not published: `download_cold` (image and input) and `download_warm` (the File-mode
input only, on the ASSUMPTION that a warm pool's instance keeps the image) are named assumptions, shown
by `warmcv plan` with how the figures move across their range.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warmcv.aws.tags import PARENT_JOB
from warmcv.clock import Clock
from warmcv.cv import METRICS_FILE, FoldTask
from warmcv.declarations.metrics import FOLD_TRAINING_SCORE, FOLD_VALIDATION_SCORE
from warmcv.training_service.service import JobPlan, archive

FAILURE_REASON = "AlgorithmError: simulated fold failure"


def fold_summary(fold: int, validation: float, train: float, best_iteration: int = 40,
                 seconds: float = 1.5) -> dict[str, Any]:
    """What the worker writes to metrics.json (the fields FoldResult.from_summary reads)."""
    return {"fold": fold, "validation_score": validation, "train_score": train, "best_iteration": best_iteration,
            "n_train": 800, "n_valid": 400, "seconds": seconds, "metric": "auc", "direction": "Maximize"}


def metrics_file(summary: Mapping[str, Any]) -> dict[str, bytes]:
    """A worker's /opt/ml/output/data: its metrics.json."""
    return {METRICS_FILE: json.dumps(summary).encode()}


def metrics_archive(summary: Mapping[str, Any]) -> bytes:
    """output.tar.gz as a worker job leaves it (GZIP output): metrics.json at the top."""
    return archive(metrics_file(summary))


def final_metrics(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """FinalMetricDataList of a worker job: the last values its metric definitions' regexes read in its log."""
    return [{"MetricName": FOLD_VALIDATION_SCORE.name, "Value": summary["validation_score"]},
            {"MetricName": FOLD_TRAINING_SCORE.name, "Value": summary["train_score"]}]


@dataclass(frozen=True)
class Workload:
    """Nominal times in seconds. The defaults are the seed's figure (3-minute start, 2-minute training)."""

    startup: float = 180.0  # a job on fresh instances: provisioning, image pull, data download (S)
    warm_startup: float = 20.0  # a job on a reused warm pool (AWS: for start-ups "under 20 seconds")
    coordinator_startup: float | None = None  # a coordinator on an instance AMT reuses (None: warm_startup)
    download_cold: float = 30.0  # of a cold start-up, the billed downloads after TrainingStartTime (assumption)
    download_warm: float = 5.0  # of a warm start-up, the billed input download (assumption)
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
    def start_plan(self, start: float, warm: bool) -> tuple[float, float]:
        """(provisioning, downloading) of a start-up of `start` seconds: the downloads come last and are billed."""
        downloading = min(start, self.download_warm if warm else self.download_cold)
        return start - downloading, downloading

    def fold_plan(self, request: Mapping[str, Any], warm: bool) -> JobPlan:
        """A fold job's phases and outputs (the service asks when the job is created)."""
        name = request["TrainingJobName"]
        start = self._draw(self.warm_startup if warm else self.startup, self.startup_cv, name, "start",
                           "warm" if warm else "cold")
        provisioning, downloading = self.start_plan(start, warm)
        train, failure, after = self.fold_training(name)
        hps = request.get("HyperParameters") or {}
        trial = next((t["Value"] for t in request.get("Tags", []) if t.get("Key") == PARENT_JOB),
                     name.rsplit("-f", 1)[0])
        fold, rounds = int(hps.get("fold", 0)), int(hps.get("num_boost_round", "100"))
        return JobPlan(provisioning, downloading, train, failure=failure, fail_after=after,
                       outputs=lambda: metrics_file(self.fold_result(trial, fold, train, rounds)),
                       metrics=lambda: final_metrics(self.fold_result(trial, fold, train, rounds)))

    def coordinator_plan(self, name: str, cold: bool) -> JobPlan:
        """A coordinator job: it starts cold, or on an instance the tuner reuses, and runs until it ends itself."""
        provisioning, downloading = self.start_plan(self.coordinator_start(name, cold), warm=not cold)
        return JobPlan(provisioning, downloading, training=None)

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
        self.done_at = self.ends_at  # the runner looks at it then, not every second
        summary = workload.fold_result(trial, task.fold, train,
                                       int(task.hyperparameters.get("num_boost_round", "100")))
        self.future = _TimedFuture(clock, self.ends_at, summary, failure)
        self.failure = failure

    def cancel(self) -> None:
        self.future.cancelled = True

    def close(self) -> None:
        pass
