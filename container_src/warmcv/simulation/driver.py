"""The driver strategy in simulated time: the REAL `Search` engine and SageMaker fold runner, one driver job.

Where `warmcv.simulation.tuning` plays SageMaker's tuner starting a coordinator job per trial, here one
driver training job (on its own small instance) starts cold, and once it runs, an actor runs what
`warmcv.modes.driver` runs:

    discover_driver(...)           DescribeTrainingJob and ListTags on itself, the fold jobs' template
    open_driver_study(...)         Optuna, with the plan's seeded sampler (in memory: nothing to checkpoint)
    run_search(...)                `Search`: ask, K fold jobs per trial through `SageMakerFoldRunner`, tell

with each trial's `cross_validate` an actor of its own (`ActorExecutor`), all on the scheduler's virtual
clock, through clients that retry like botocore, against the same model of SageMaker's training service.
Fold jobs train for simulated seconds (the workload's draw for their name); what the folds score is the
workload's, and the sampler really samples from it.

The driver job bills for the whole search (instance-hours by kind `driver`); its instance type matches
no fold pool, so it never takes one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from warmcv.aws.fold_jobs import fold_job_name
from warmcv.aws.training_jobs import TrainingJobsApi
from warmcv.declarations import parse_hyperparameters
from warmcv.errors import StopRequested
from warmcv.runners.sagemaker import SageMakerFoldRunner
from warmcv.simulation.clients import PATIENT, PROMPT, S3, RetryPolicy
from warmcv.simulation.scheduler import Actor, Scheduler
from warmcv.simulation.tuning import BUCKET, IMAGE, METRIC, ROLE, SimulatedTuner, Trial, simulated_manifest
from warmcv.training_service.service import ServiceError
from warmcv.tuning.search import CV_ATTR, HYPERPARAMETERS_ATTR, TrialReport

DRIVER_JOB = "warmcv-sim-driver"
# warmcv.aws.clients: the driver's creates go through a standard-mode client (it paces them itself).
CREATOR = RetryPolicy("standard", PATIENT.total_max_attempts)
# How long the search loop sleeps when nothing wakes it (a trial ending wakes it at once).
IDLE_WAIT = 3600.0


class ActorExecutor:
    """`warmcv.tuning.executor.TrialExecutor` on the scheduler: each trial an actor, waits on the virtual clock.

    A finished trial wakes whoever waits in `wait_any`, so the search loop reacts in the same simulated
    instant, as `concurrent.futures.wait` does on threads."""

    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self.actors: list[Actor] = []
        self._waiter: Actor | None = None

    def submit(self, name: str, function: Callable[[], Any]) -> Future:
        future: Future = Future()

        def body() -> None:
            try:
                future.set_result(function())
            except BaseException as error:  # noqa: BLE001 - the future carries it to the search loop
                future.set_exception(error)
            finally:
                self._wake()

        self.actors.append(self.scheduler.spawn(name, body))
        return future

    def wait_any(self, futures: Collection[Future], timeout: float) -> set[Future]:
        done = {f for f in futures if f.done()}
        if done or not futures:
            return done
        self._waiter = self.scheduler.current
        try:
            self.clock.sleep(max(timeout, IDLE_WAIT))
        finally:
            self._waiter = None
        return {f for f in futures if f.done()}

    def run_together(self, functions: list[Callable[[], Any]]) -> None:
        futures = [self.submit("stop", function) for function in functions]
        for actor in self.actors:  # trials told to stop leave their wait now, not at their next poll
            self.scheduler.wake(actor)
        while not all(f.done() for f in futures):
            self.wait_any(futures, IDLE_WAIT)

    def shutdown(self) -> None:
        while any(not actor.done for actor in self.actors):
            self._waiter = self.scheduler.current
            try:
                self.clock.sleep(1.0)
            finally:
                self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None:
            self.scheduler.wake(self._waiter)


class SimulatedDriver(SimulatedTuner):
    """The driver strategy: one driver job, `parallel` trials in flight until `parallel x rounds` have run."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.driver_actor: Actor | None = None
        self.driver_started: float | None = None
        self.driver_ended: float | None = None
        self.run_name = DRIVER_JOB
        self._by_number: dict[int, Trial] = {}

    # -- the driver job ---------------------------------------------------------------------------------------
    def _driver_hyperparameters(self) -> dict[str, str]:
        t = self.tuning
        pruning = {"prune": "true", "prune_rule": t.prune_rule, "prune_threshold": str(t.prune_threshold),
                   "prune_min_trials": str(t.prune_min_trials)} if t.prune else {}
        return parse_hyperparameters({
            "mode": "driver", "trials": str(t.max_jobs), "parallel_trials": str(t.parallel),
            "sampler_seed": str(self.workload.seed), "fold_instance_type": t.instance_type,
            "fold_volume_size_gb": str(t.volume_size_gb), "keep_alive_seconds": str(t.keep_alive),
            "n_folds": str(t.folds), "metric": METRIC, "fold_runner": "sagemaker", **pruning}).to_strings()

    def _driver_request(self) -> dict[str, Any]:
        """What the pipeline's driver step (or `aws sagemaker create-training-job`) sends: the warmcv image in
        mode=driver on a small instance, with the prepared data as its channel (its folds copy it)."""
        return {
            "TrainingJobName": DRIVER_JOB,
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "RoleArn": ROLE,
            "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/prepared/", "S3DataDistributionType":
                    "FullyReplicated"}}}],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/driver"},
            "ResourceConfig": {"InstanceType": self.tuning.driver_instance_type, "InstanceCount": 1,
                               "VolumeSizeInGB": self.tuning.volume_size_gb},
            "StoppingCondition": {"MaxRuntimeInSeconds": self.tuning.max_runtime},
            "HyperParameters": self._driver_hyperparameters(),
            "Tags": [{"Key": "team", "Value": "ml"}],
        }

    def start(self) -> None:
        self.coordinator_plans[DRIVER_JOB] = self.workload.coordinator_plan(DRIVER_JOB, cold=True)
        try:
            job = self.service.create(self._driver_request())
        except ServiceError as error:
            self.failure = f"could not start the driver: {error.message}"
            return
        assert job.plan is not None
        for number, fold in self.tuning.failing_folds:
            self.injected.add(fold_job_name(self._prefix(number - 1), fold))
        self.driver_actor = self.scheduler.spawn(DRIVER_JOB, self._driver,
                                                 at=job.plan.provisioning + job.plan.downloading)
        if self.tuning.stop_at is not None:
            self.scheduler.call_at(self.tuning.stop_at, self.stop)

    def plan(self, request: Any, warm: bool) -> Any:
        if request["TrainingJobName"] == DRIVER_JOB:
            return self.coordinator_plans.pop(DRIVER_JOB)
        return super().plan(request, warm)

    def stop(self) -> None:
        """StopTrainingJob on the driver: SIGTERM, which its search turns into stopping every fold."""
        self.stopped = True
        if self.driver_actor is not None and self.driver_started is not None:
            self.scheduler.interrupt(self.driver_actor, StopRequested("received SIGTERM"))

    def finished_at(self) -> float:
        return self.driver_ended if self.driver_ended is not None else super().finished_at()

    def _prefix(self, number: int) -> str:
        from warmcv.tuning.driver import trial_job_prefix

        return trial_job_prefix(self.run_name, number)

    def _driver(self) -> None:
        """What the driver container runs, on the virtual clock; its outcome ends the driver job."""
        from warmcv.modes.entry import failure_message
        from warmcv.tuning.driver import DriverPlan, discover_driver, open_driver_study, run_search, trial_runners

        self.driver_started = self.clock.monotonic()
        trial = Trial(-1, 0, DRIVER_JOB, {}, 0.0, True, 0.0)  # the driver's own clients are billed to no trial
        api = TrainingJobsApi(self._client(self.sagemaker, PATIENT, trial, "patient"),
                              s3=self._client(self.s3, S3, trial, "s3"),
                              prompt=self._client(self.sagemaker, PROMPT, trial, "prompt"),
                              creator=self._client(self.sagemaker, CREATOR, trial, "creator"))
        status, failure = "Completed", None
        try:
            hps = parse_hyperparameters(self._driver_hyperparameters())
            job = discover_driver(api, DRIVER_JOB, hps, clock=self.clock, timing=self.timing,
                                  rng=random.Random(f"{self.workload.seed}/driver"))
            plan = DriverPlan.from_hyperparameters(hps)
            pruner = plan.pruner(self.direction, self.tuning.folds)
            created = job.description.get("CreationTime")
            runners = trial_runners(api, job.template, self.run_name, clock=self.clock, timing=self.timing,
                                    seed=str(self.workload.seed), deadline=job.deadline, max_runtime=job.max_runtime,
                                    created_after=created if isinstance(created, datetime) else datetime.now(UTC),
                                    on_runner=self._trial_started, pruner=pruner, metric=(METRIC, self.direction))
            study = open_driver_study(None, self.direction, plan)
            run_search(plan, simulated_manifest(self.tuning.folds), study, runners,
                       executor=ActorExecutor(self.scheduler), on_trial=self._trial_done, pruner=pruner)
            self._record_scores(study)
        except BaseException as error:  # noqa: BLE001 - like the container's entry point: every outcome ends the job
            status = "Stopped" if isinstance(error, StopRequested) else "Failed"
            failure = failure_message(error)
            self.failure = None if status == "Stopped" else failure
        self.driver_ended = self.clock.monotonic()
        for trial in self.trials:  # in flight when the driver stopped: their folds were stopped with it
            if trial.ended_at is None:
                trial.ended_at = trial.folds_done_at = self.driver_ended
                trial.status, trial.failure = "Stopped", failure
        self.service.finish(DRIVER_JOB, status, failure)

    # -- the trials, as the search reports them ------------------------------------------------------------
    def _trial_started(self, number: int, runner: SageMakerFoldRunner) -> None:
        now = self.clock.monotonic()
        trial = Trial(number, number % self.tuning.parallel, self._prefix(number), {}, now, False, 0.0)
        trial.started_at = trial.discovered_at = now
        trial.api = runner.api.calls
        self._by_number[number] = trial
        self.trials.append(trial)

    def _trial_done(self, report: TrialReport) -> None:
        trial = self._by_number.get(report.number)
        if trial is None:
            return
        trial.ended_at = trial.folds_done_at = self.clock.monotonic()
        trial.status = {"complete": "Completed", "failed": "Failed", "interrupted": "Stopped",
                        "pruned": "Pruned"}.get(report.state, report.state)
        trial.failure = report.error
        trial.objective = report.value

    def _record_scores(self, study: Any) -> None:
        """Each trial's values and fold scores, from the study (what the driver told Optuna)."""
        for frozen in study.get_trials(deepcopy=False):
            trial = self._by_number.get(frozen.number)
            if trial is None:
                continue
            trial.hyperparameters = dict(frozen.user_attrs.get(HYPERPARAMETERS_ATTR, {}))
            cv = frozen.user_attrs.get(CV_ATTR)
            if cv:
                trial.fold_scores = [f["validation_score"] for f in sorted(cv["folds"], key=lambda f: f["fold"])]
        for trial in self.trials:  # the first M trials are the slots' first (their folds start cold), as for the tuner
            trial.cold = trial.index < self.tuning.parallel
