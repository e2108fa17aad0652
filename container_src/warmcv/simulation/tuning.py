"""A SageMaker tuning job in simulated time, whose trials run the REAL coordinator and fold runner.

The simulated tuner plays SageMaker's automatic model tuning (AMT): it keeps `parallel` (M) coordinator
training jobs running until `parallel x rounds` (M x N) have run, starting the next trial as soon as one
ends (AMT does not wait for a whole "round"). Each trial is a coordinator job in the simulated
SageMaker, and once its start-up has passed, an actor runs exactly what a coordinator container runs:

    SageMakerFoldRunner.discover(...)   describes itself, reads its tags, builds the fold-job template
    cross_validate(runner, hps, ...)    creates K fold jobs, polls, reads their metrics.json, aggregates
    metric_lines(summary)               the lines the tuner's regex reads; the objective is parsed from them

through boto3-shaped clients that retry like botocore (`clients`), on the scheduler's virtual clock.
Fold jobs train for simulated seconds only (nothing is trained); the aggregation of their scores is real.

The service is the package's one model of SageMaker training (`warmcv.training_service`): every job, the
tuner's coordinators included, is created through it, so a coordinator whose settings match an Available
fold pool takes it, exactly as the documented matching rule says.

The coordinator's own instance, an ASSUMPTION. Tuning jobs never keep warm pools for their own training
jobs (the service drops KeepAlivePeriodInSeconds from the training job definition), but "Hyperparameter
tuning jobs use warm pools by default, which reuse clusters between training jobs" (botocore's model,
HyperParameterTuningResourceConfig). How fast a reused trial instance starts is not published. So, by
default (`coordinator_reuse`), a slot's first coordinator starts cold (`Workload.startup`) and later ones
in `Workload.coordinator_startup` (by default the warm start-up); `warmcv plan` shows the figures with
20 s, 60 s and a cold start there. AMT's own CreateTrainingJob calls are not counted against the account's
request rate (they are the service's, not the account's), and the pause between a trial ending and the
next one starting is `tuner_gap` (0 by default: AWS publishes none).
"""

from __future__ import annotations

import bisect
import logging
import math
import random
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from warmcv.aws.fold_jobs import fold_job_name
from warmcv.aws.tags import PARENT_JOB
from warmcv.aws.training_jobs import ApiCalls, TrainingJobsApi
from warmcv.cv import FoldTask
from warmcv.data.manifest import Manifest
from warmcv.data.schema import FeatureSchema
from warmcv.declarations import (
    COORDINATOR_METRICS,
    HYPERPARAMETERS,
    SCORING_METRICS,
    VALIDATION_SCORE,
    default_search_space,
    metric_definitions,
    parse_hyperparameters,
)
from warmcv.errors import StopRequested
from warmcv.runners.sagemaker import SageMakerFoldRunner, Timing
from warmcv.simulation.clients import PATIENT, PROMPT, S3, SimulatedClient
from warmcv.simulation.scheduler import Actor, Scheduler
from warmcv.simulation.workload import SimulatedLocalFold, Workload
from warmcv.training_service import rules
from warmcv.training_service.api import Objects, ObjectsApi, SageMakerApi
from warmcv.training_service.service import (
    ACCOUNT,
    REGION,
    JobPlan,
    Quotas,
    ServiceError,
    TrainingJob,
    TrainingService,
)

TUNING_JOB = "warmcv-sim"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/warmcv:simulated"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/warmcv-jobs"
BUCKET = "warmcv-simulated"
METRIC = "auc"
DEFAULT_KEEP_ALIVE = int(HYPERPARAMETERS["keep_alive_seconds"].default)
QUIET_LOGGERS = ("warmcv.cv", "warmcv.runners", "warmcv.aws", "warmcv.modes", "warmcv.tuning")
INJECTED_FAILURE = "AlgorithmError: injected fold failure"
TUNING_JOB_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:hyper-parameter-tuning-job/{TUNING_JOB}"


def job_kind(request: Mapping[str, Any]) -> str:
    """coordinator | driver | fold | job, from the warmcv mode the job runs (for billing by kind)."""
    mode = (request.get("HyperParameters") or {}).get("mode")
    return {"coordinator": "coordinator", "driver": "driver", "worker": "fold"}.get(str(mode), "job")


@dataclass(frozen=True)
class Tuning:
    """The tuning job: M parallel trials, N rounds deep, K folds, and how its fold jobs are set up.

    `strategy` "amt": SageMaker's tuner runs each trial as a coordinator job (this module); "driver": one
    driver job runs the search and creates every trial's fold jobs itself (`warmcv.simulation.driver`)."""

    strategy: str = "amt"  # amt | driver
    parallel: int = 4  # M: max_parallel_jobs
    rounds: int = 120  # N: max_jobs = M x N
    folds: int = 5  # K
    keep_alive: int = DEFAULT_KEEP_ALIVE  # the fold jobs' KeepAlivePeriodInSeconds (0: no warm pools)
    coordinator_trains_fold: bool = False  # fold 0 on the coordinator: K instances per trial instead of K + 1
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
    volume_size_gb: int = 30
    max_runtime: int = 86400  # each coordinator's MaxRuntimeInSeconds
    coordinator_reuse: bool = True  # AMT reuses finished trials' instances (see the module docstring)
    tuner_gap: float = 0.0  # seconds from a trial's end to AMT starting the next one in its place
    release_pools: bool = False  # release pools when tuning ends (else they idle until their keep-alive runs out)
    stop_at: float | None = None  # StopHyperParameterTuningJob at this simulated second
    failing_folds: tuple[tuple[int, int], ...] = ()  # (trial number from 1, fold): that fold fails (AlgorithmError)
    driver_instance_type: str = "ml.m5.large"  # the driver job's own (small) instance; strategy "driver" only
    prune: bool = False  # strategy "driver": fold-level pruning (warmcv.cv.pruning), checked as each fold finishes
    prune_rule: str = "paired-bound"
    prune_threshold: float = 0.1
    prune_min_trials: int = 5

    @property
    def max_jobs(self) -> int:
        return self.parallel * self.rounds

    @property
    def fold_jobs_per_trial(self) -> int:
        return self.folds - 1 if self.coordinator_trains_fold else self.folds

    def check(self) -> None:
        from warmcv.errors import UserInputError

        problems = []
        if self.strategy not in ("amt", "driver"):
            problems.append(f"strategy {self.strategy!r} is not amt or driver")
        if self.prune and self.strategy != "driver":
            problems.append("fold-level pruning is the driver's; the tuner stops trials with its own early stopping")
        if self.strategy == "driver" and self.coordinator_trains_fold:
            problems.append("the driver strategy has no coordinator to train fold 0: every fold is a fold job")
        if self.parallel < 1 or self.rounds < 1:
            problems.append("parallel and rounds must be at least 1")
        if self.folds < 2:
            problems.append("folds must be at least 2")
        if not 0 <= self.keep_alive <= 3600:
            problems.append(f"keep-alive {self.keep_alive} s is outside SageMaker's 0..3600")
        if problems:
            raise UserInputError("; ".join(problems))


@dataclass(frozen=True)
class Account:
    """The AWS account's limits, and the API's round trip."""

    create_rate: float = 1.0  # CreateTrainingJob requests per second, account-wide
    create_burst: float = 1.0
    describe_rate: float | None = None  # DescribeTrainingJob per second (AWS publishes none; None: unlimited)
    describe_burst: float = 2.0
    list_rate: float | None = rules.LIST_TRAINING_JOBS_RATE  # ListTrainingJobs per second (an assumption)
    list_burst: float = 2.0
    api_latency: float = 0.05  # simulated seconds per request
    instance_quota: int | None = None  # '<type> for training job usage' (None: enough)
    warm_pool_quota: int | None = None  # '<type> for training warm pool usage' (None: enough; AWS default is 0)

    def rate_limits(self) -> dict[str, tuple[float, float]]:
        limits = {"CreateTrainingJob": (self.create_rate, self.create_burst)}
        if self.describe_rate:
            limits["DescribeTrainingJob"] = (self.describe_rate, self.describe_burst)
        if self.list_rate:
            limits["ListTrainingJobs"] = (self.list_rate, self.list_burst)
        return limits


@dataclass
class Trial:
    """One coordinator job as the simulation saw it (times in simulated seconds)."""

    index: int
    slot: int
    name: str
    hyperparameters: dict[str, str]
    launched_at: float
    cold: bool
    startup: float
    on_fold_pool: bool = False  # the coordinator matched, and took, an Available fold pool
    started_at: float | None = None
    discovered_at: float | None = None
    folds_done_at: float | None = None
    ended_at: float | None = None
    status: str = "Pending"
    failure: str | None = None
    objective: float | None = None
    log_lines: list[str] = field(default_factory=list)
    fold_scores: list[float] = field(default_factory=list)
    local_fold: SimulatedLocalFold | None = None
    failing_folds: set[int] = field(default_factory=set)
    api: ApiCalls | None = None
    stop_requested: bool = False
    actor: Actor | None = None
    previous_end: float | None = None  # when the slot's previous trial ended


def simulated_manifest(folds: int) -> Manifest:
    """The prepared data's manifest as a coordinator reads it (binary task); its rows are never read."""
    return Manifest(target="label", task="binary", classes=[0, 1], schema=FeatureSchema(()), n_folds=folds,
                    splitter="stratified", fold_kind="kfold", seed=0, rows=1200 * folds,
                    rows_per_fold=[1200] * folds, source={"simulated": True}, data_sha256="0" * 64)


def sample_hyperparameters(rng: random.Random) -> dict[str, str]:
    """One trial's tuned values, drawn from the declared default ranges (AMT's choice does not matter here)."""
    values: dict[str, str] = {}
    for name, dimension in sorted(default_search_space().items()):
        hp = HYPERPARAMETERS[name]
        if dimension.choices is not None:
            values[name] = rng.choice(list(dimension.choices))
            continue
        assert dimension.range is not None
        low, high = dimension.range.low, dimension.range.high
        value = (math.exp(rng.uniform(math.log(low), math.log(high))) if dimension.range.log and low > 0
                 else rng.uniform(low, high))
        values[name] = hp.format(round(value) if dimension.is_integer else value)
    return values


@contextmanager
def quiet(level: int) -> Iterator[None]:
    """Hold the coordinator's loggers at `level` while thousands of simulated trials run."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, old in zip(loggers, before, strict=True):
            lg.setLevel(old)


class SimulatedTuner:
    """AMT: M slots, the next trial as soon as one ends, until M x N have run (or the tuning job is stopped)."""

    def __init__(self, tuning: Tuning, workload: Workload, account: Account, timing: Timing, scheduler: Scheduler):
        self.tuning, self.workload, self.account, self.timing = tuning, workload, account, timing
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self.objects = Objects()
        self.service = TrainingService(self.clock, quotas=Quotas(account.instance_quota, account.warm_pool_quota),
                                       rates=account.rate_limits(), planner=self.plan, objects=self.objects,
                                       kind_of=job_kind)
        self.sagemaker = SageMakerApi(self.service)
        self.s3 = ObjectsApi(self.service, self.objects)
        self.rng = random.Random(f"{workload.seed}/tuner")
        self.manifest = simulated_manifest(tuning.folds)
        self.trials: list[Trial] = []
        self.stopped = False
        self.failure: str | None = None  # the tuning job's own failure (e.g. a quota refusing a coordinator)
        self.direction = SCORING_METRICS[METRIC].direction
        self.objective_regex = re.compile(VALIDATION_SCORE.regex)
        self.clients: list[SimulatedClient] = []
        self.injected: set[str] = set()  # fold job names that fail a quarter into their training
        self.coordinator_plans: dict[str, JobPlan] = {}  # the tuner's start-up of each coordinator it launches
        self._slots_used: set[int] = set()
        self._last_end: dict[int, float] = {}  # slot -> when its latest trial ended

    def plan(self, request: Mapping[str, Any], warm: bool) -> JobPlan:
        """The service's planner: a coordinator starts as the tuner decided (or on a warm pool it matched), a
        fold job as the workload draws it."""
        name = request["TrainingJobName"]
        if job_kind(request) == "coordinator":
            return self.workload.coordinator_plan(name, cold=False) if warm else self.coordinator_plans.pop(name)
        plan = self.workload.fold_plan(request, warm)
        if name in self.injected and plan.training is not None:
            return JobPlan(plan.provisioning, plan.downloading, plan.training, failure=INJECTED_FAILURE,
                           fail_after=plan.training / 4)
        return plan

    # -- launching -------------------------------------------------------------------------------------------
    def start(self) -> None:
        for slot in range(min(self.tuning.parallel, self.tuning.max_jobs)):
            self._launch(slot)
        if self.tuning.stop_at is not None:
            self.scheduler.call_at(self.tuning.stop_at, self.stop)

    def _static_hyperparameters(self) -> dict[str, str]:
        values = {"mode": "coordinator", "fold_runner": "sagemaker", "n_folds": str(self.tuning.folds),
                  "keep_alive_seconds": str(self.tuning.keep_alive), "metric": METRIC}
        if self.tuning.coordinator_trains_fold:
            values["coordinator_trains_fold"] = "true"
        return values

    def _request(self, name: str, hyperparameters: dict[str, str]) -> dict[str, Any]:
        """The coordinator job AMT starts from the training job definition (no KeepAlive: AMT drops it; the two
        booleans left out, as the SDK's ModelTrainer leaves them out: absent is false)."""
        return {
            "TrainingJobName": name,
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                       "MetricDefinitions": metric_definitions(COORDINATOR_METRICS)},
            "RoleArn": ROLE,
            "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/prepared/", "S3DataDistributionType":
                    "FullyReplicated"}}}],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/tuning"},
            "ResourceConfig": {"InstanceType": self.tuning.instance_type, "InstanceCount": self.tuning.instance_count,
                               "VolumeSizeInGB": self.tuning.volume_size_gb},
            "StoppingCondition": {"MaxRuntimeInSeconds": self.tuning.max_runtime},
            "HyperParameters": hyperparameters,
            "Tags": [{"Key": "team", "Value": "ml"}],
        }

    def _launch(self, slot: int) -> None:
        if self.stopped or self.failure or len(self.trials) >= self.tuning.max_jobs:
            return
        index = len(self.trials)
        name = f"{TUNING_JOB}-{index + 1:03d}-{self.rng.getrandbits(32):08x}"
        hyperparameters = parse_hyperparameters(
            {**self._static_hyperparameters(), **sample_hyperparameters(self.rng)}).to_strings()
        cold = not self.tuning.coordinator_reuse or slot not in self._slots_used
        self._slots_used.add(slot)
        self.coordinator_plans[name] = self.workload.coordinator_plan(name, cold)
        try:
            job = self.service.create(self._request(name, hyperparameters), tuning_job_arn=TUNING_JOB_ARN)
        except ServiceError as error:
            self.coordinator_plans.pop(name, None)
            self.failure = f"could not start trial {name}: {error.message}"
            return
        assert job.plan is not None
        startup = job.plan.provisioning + job.plan.downloading
        trial = Trial(index, slot, name, hyperparameters, self.clock.monotonic(), cold and not job.warm, startup,
                      on_fold_pool=job.warm)
        self.trials.append(trial)
        for number, fold in self.tuning.failing_folds:
            if number == index + 1:
                self.injected.add(fold_job_name(name, fold))
                trial.failing_folds.add(fold)
        trial.actor = self.scheduler.spawn(name, lambda: self._coordinator(trial), at=trial.launched_at + startup)

    def _trial_ended(self, trial: Trial) -> None:
        if self.tuning.tuner_gap > 0:
            self.scheduler.call_at(self.clock.monotonic() + self.tuning.tuner_gap, lambda: self._launch(trial.slot))
        else:
            self._launch(trial.slot)

    def stop(self) -> None:
        """StopHyperParameterTuningJob: SIGTERM to every running coordinator, none started after."""
        self.stopped = True
        for trial in self.trials:
            if trial.ended_at is None:
                trial.stop_requested = True
                if trial.started_at is not None and trial.actor is not None:
                    self.scheduler.interrupt(trial.actor, StopRequested("received SIGTERM"))

    # -- one coordinator container -----------------------------------------------------------------------------
    def _client(self, service: Any, policy: Any, trial: Trial, purpose: str) -> SimulatedClient:
        client = SimulatedClient(service, self.clock, policy, random.Random(f"{self.workload.seed}/{trial.name}/"
                                                                            f"{purpose}"), self.account.api_latency)
        self.clients.append(client)
        return client

    def _coordinator(self, trial: Trial) -> None:
        """What the coordinator container runs, on the virtual clock; its outcome ends the job."""
        from warmcv.cv import cross_validate
        from warmcv.modes.coordinator import metric_lines
        from warmcv.modes.entry import failure_message

        trial.started_at = self.clock.monotonic()
        if trial.stop_requested:  # stopped while starting: the container never ran
            self._end(trial, "Stopped", "Stopped: the tuning job was stopped before this trial started")
            return
        api = TrainingJobsApi(self._client(self.sagemaker, PATIENT, trial, "patient"),
                              s3=self._client(self.s3, S3, trial, "s3"),
                              prompt=self._client(self.sagemaker, PROMPT, trial, "prompt"))
        trial.api = api.calls
        try:
            hps = parse_hyperparameters(trial.hyperparameters)
            local = None
            if hps["coordinator_trains_fold"]:
                def local(task: FoldTask, clock: Any) -> SimulatedLocalFold:
                    failure = INJECTED_FAILURE if task.fold in trial.failing_folds else None
                    trial.local_fold = SimulatedLocalFold(self.workload, trial.name, task, clock, failure)
                    return trial.local_fold
            runner = SageMakerFoldRunner.discover(api, trial.name, hps, clock=self.clock, timing=self.timing,
                                                  rng=random.Random(f"{self.workload.seed}/{trial.name}/runner"),
                                                  local_fold=local)
            trial.discovered_at = self.clock.monotonic()
            with runner:
                summary = cross_validate(runner, hps, self.manifest, clock=self.clock)
            trial.folds_done_at = self.clock.monotonic()
            trial.log_lines = metric_lines(summary)
            trial.fold_scores = [r.validation_score for r in summary.folds]
            matches = [m for line in trial.log_lines for m in self.objective_regex.findall(line)]
            trial.objective = float(matches[-1]) if matches else None
        except BaseException as error:  # noqa: BLE001 - like the container's entry point: every outcome ends the job
            status = "Stopped" if isinstance(error, StopRequested) else "Failed"
            self._end(trial, status, failure_message(error))
            return
        self._end(trial, "Completed", None)

    def _end(self, trial: Trial, status: str, failure: str | None) -> None:
        trial.ended_at = self.clock.monotonic()
        trial.status, trial.failure = status, failure
        trial.previous_end = self._last_end.get(trial.slot)
        self._last_end[trial.slot] = trial.ended_at
        self.service.finish(trial.name, status, failure)
        self._trial_ended(trial)

    def finished_at(self) -> float:
        """When tuning ended: the last trial's end."""
        return max((t.ended_at for t in self.trials if t.ended_at is not None), default=0.0)

    def best(self) -> Trial | None:
        scored = [t for t in self.trials if t.objective is not None]
        if not scored:
            return None
        pick = max if self.direction == "Maximize" else min
        return pick(scored, key=lambda t: t.objective or 0.0)


@dataclass
class Breakdown:
    """Where a trial's time goes, along its critical path (the fold that finished last). Seconds."""

    tuner_gap: float = 0.0  # previous trial's end -> AMT starts this one
    coordinator_startup: float = 0.0  # the coordinator job's Starting (cold, or an instance AMT reused)
    discovery: float = 0.0  # DescribeTrainingJob and ListTags on itself
    create_pacing: float = 0.0  # until the critical fold's job was created (paced creates, throttling)
    fold_startup: float = 0.0  # the critical fold job's Starting (cold or warm pool)
    training: float = 0.0  # the critical fold's training
    noticing: float = 0.0  # its end -> the runner has every result (polls, S3 reads, aggregation)
    exit: float = 0.0  # results -> the coordinator job ends

    @property
    def total(self) -> float:
        return sum(asdict(self).values())

    def overhead(self) -> float:
        return self.total - self.training


@dataclass
class SimulationReport:
    tuning: Tuning
    workload: Workload
    account: Account
    timing: Timing
    trials: list[Trial]
    wall_seconds: float
    training_limit_seconds: float  # the same trials with no start-up and no overhead, on M slots
    billing_during: dict[str, float]  # instance-seconds while tuning ran
    billing_total: dict[str, float]  # ... including pools idling after the last trial
    fold_jobs: int
    fold_jobs_warm: int
    coordinators_cold: int
    peak_instances: int
    peak_pool_instances: int
    api: dict[str, dict[str, float]]
    client_retries: int
    runner_calls: dict[str, int]
    breakdown_warm: Breakdown  # mean over trials whose coordinator started on a reused instance
    breakdown_first: Breakdown  # mean over each slot's first trial
    best_objective: float | None
    tuning_failure: str | None
    real_seconds: float = 0.0
    switches: int = 0
    orphans: list[str] = field(default_factory=list)  # fold jobs still running when their coordinator had ended
    coordinators_on_fold_pools: int = 0  # coordinators that took a fold job's warm pool (the matching rule allows it)
    tuner_limits: list[str] = field(default_factory=list)  # what the run exceeds of the tuner's documented limits
    driver_jobs: int = 0  # strategy "driver": the driver's own training job(s)
    service: TrainingService | None = field(default=None, repr=False)  # every job and call, for analysis

    @property
    def completed(self) -> int:
        return sum(1 for t in self.trials if t.status == "Completed")

    @property
    def failed(self) -> int:
        return sum(1 for t in self.trials if t.status == "Failed")

    @property
    def coordinators(self) -> int:
        return len(self.trials) if self.tuning.strategy == "amt" else 0

    @property
    def jobs(self) -> int:
        return self.coordinators + self.driver_jobs + self.fold_jobs

    @property
    def overhead_seconds(self) -> float:
        return self.wall_seconds - self.training_limit_seconds

    @property
    def instance_hours(self) -> float:
        return sum(self.billing_total.values()) / 3600

    def to_dict(self) -> dict[str, Any]:
        return {
            "tuning": asdict(self.tuning), "workload": asdict(self.workload), "account": asdict(self.account),
            "timing": asdict(self.timing),
            "trials": {"launched": len(self.trials), "completed": self.completed, "failed": self.failed,
                       "stopped": sum(1 for t in self.trials if t.status == "Stopped"),
                       "pruned": sum(1 for t in self.trials if t.status == "Pruned")},
            "strategy": self.tuning.strategy,
            "jobs": {"total": self.jobs, "coordinators": self.coordinators, "drivers": self.driver_jobs,
                     "fold_jobs": self.fold_jobs,
                     "fold_jobs_on_warm_pools": self.fold_jobs_warm,
                     "fold_jobs_cold": self.fold_jobs - self.fold_jobs_warm,
                     "coordinators_cold": self.coordinators_cold,
                     "coordinators_on_reused_instances": self.coordinators - self.coordinators_cold,
                     "coordinators_on_fold_pools": self.coordinators_on_fold_pools},
            "wall_seconds": self.wall_seconds, "training_limit_seconds": self.training_limit_seconds,
            "overhead_seconds": self.overhead_seconds,
            "overhead_share": (self.overhead_seconds / self.training_limit_seconds
                               if self.training_limit_seconds else None),
            "instance_hours": {k: v / 3600 for k, v in self.billing_total.items()} | {"total": self.instance_hours},
            "instance_hours_after_last_trial": (sum(self.billing_total.values()) -
                                                sum(self.billing_during.values())) / 3600,
            "quotas_used": {"training_instances": self.peak_instances, "warm_pool_instances": self.peak_pool_instances},
            "api": self.api, "botocore_retries": self.client_retries, "runner_calls": self.runner_calls,
            "breakdown_warm_trial": asdict(self.breakdown_warm) | {"total": self.breakdown_warm.total},
            "breakdown_first_trial": asdict(self.breakdown_first) | {"total": self.breakdown_first.total},
            "best_objective": self.best_objective, "tuning_failure": self.tuning_failure,
            "orphaned_fold_jobs": self.orphans, "tuner_limits": self.tuner_limits,
            "simulation": {"real_seconds": self.real_seconds, "actor_switches": self.switches},
        }


def simulate(tuning: Tuning | None = None, workload: Workload | None = None, account: Account | None = None,
             timing: Timing | None = None, log_level: int = logging.CRITICAL + 1) -> SimulationReport:
    """Run the tuning job in simulated time; deterministic for a given `workload.seed`."""
    import time

    tuning, workload, account = tuning or Tuning(), workload or Workload(), account or Account()
    timing = timing or Timing()
    tuning.check()
    began = time.perf_counter()
    scheduler = Scheduler()
    if tuning.strategy == "driver":
        from warmcv.simulation.driver import SimulatedDriver

        tuner: SimulatedTuner = SimulatedDriver(tuning, workload, account, timing, scheduler)
    else:
        tuner = SimulatedTuner(tuning, workload, account, timing, scheduler)
    service = tuner.service
    with quiet(log_level):
        tuner.start()
        scheduler.run()
    for actor in scheduler.actors:
        if actor.error is not None:  # the coordinator body catches everything: this is a simulator bug
            raise actor.error
    end = tuner.finished_at()
    service.catch_up()
    orphans = [j.name for j in service.jobs.values()
               if j.kind == "fold" and not j.ended and j.stop_requested_at is None]
    if tuning.release_pools:
        service.release_pools()
    billing_during = service.billing(until=end)
    service.drain()
    billing_total = service.billing(until=end)
    return _report(tuning, workload, account, timing, tuner, service, scheduler, end, billing_during,
                   billing_total, orphans, time.perf_counter() - began)


def _report(tuning: Tuning, workload: Workload, account: Account, timing: Timing, tuner: SimulatedTuner,
            service: TrainingService, scheduler: Scheduler, end: float, billing_during: dict[str, float],
            billing_total: dict[str, float], orphans: list[str], real_seconds: float) -> SimulationReport:
    folds_by_trial: dict[str, list[TrainingJob]] = {}
    for job in service.jobs.values():
        if job.kind == "fold":
            folds_by_trial.setdefault(parent_of(job) or "", []).append(job)
    fold_jobs = [j for jobs in folds_by_trial.values() for j in jobs]
    runner_calls: dict[str, int] = {}
    for trial in tuner.trials:
        for key, value in (trial.api.to_dict() if trial.api else {}).items():
            runner_calls[key] = runner_calls.get(key, 0) + value
    warm = [_breakdown(t, folds_by_trial.get(t.name, [])) for t in tuner.trials
            if t.status == "Completed" and not t.cold]
    first = [_breakdown(t, folds_by_trial.get(t.name, [])) for t in tuner.trials
             if t.status == "Completed" and t.cold]
    best = tuner.best()
    return SimulationReport(
        tuning=tuning, workload=workload, account=account, timing=timing, trials=tuner.trials, wall_seconds=end,
        training_limit_seconds=_training_limit(tuner.trials, folds_by_trial, tuning.parallel),
        billing_during=billing_during, billing_total=billing_total, fold_jobs=len(fold_jobs),
        fold_jobs_warm=sum(1 for j in fold_jobs if j.warm),
        coordinators_cold=sum(1 for t in tuner.trials if t.cold) if tuning.strategy == "amt" else 0,
        peak_instances=service.peak_instances,
        peak_pool_instances=service.peak_pool_instances, api=_api_stats(service.calls, end),
        client_retries=sum(c.retries for c in tuner.clients), runner_calls=runner_calls,
        breakdown_warm=_mean(warm), breakdown_first=_mean(first),
        best_objective=best.objective if best else None, tuning_failure=tuner.failure, real_seconds=real_seconds,
        switches=scheduler.switches, orphans=orphans,
        coordinators_on_fold_pools=sum(1 for t in tuner.trials if t.on_fold_pool),
        # A driver's search is no tuning job: the tuner's limits (750 trials, 100 in parallel, 30 days) do not apply.
        tuner_limits=(rules.tuner_limit_problems(tuning.max_jobs, tuning.parallel, end)
                      if tuning.strategy == "amt" else []),
        driver_jobs=sum(1 for j in service.jobs.values() if j.kind == "driver"), service=service)


def parent_of(job: TrainingJob) -> str | None:
    """The coordinator that created a fold job (from warmcv's tag)."""
    return next((t["Value"] for t in job.request.get("Tags", []) if t.get("Key") == PARENT_JOB), None)


def training_started(job: TrainingJob) -> float:
    """When the job entered Training (after its start-up: provisioning and downloads)."""
    plan = job.plan
    if plan is None:
        return job.start_time if job.start_time is not None else job.created
    return job.created + plan.provisioning + plan.downloading


def _fold_ends(trial: Trial, jobs: list[TrainingJob]) -> list[tuple[float, float, float, float]]:
    """(end, created, training start, training seconds) of each fold of the trial."""
    ends = [(j.end_time, j.created, training_started(j), j.end_time - training_started(j)) for j in jobs
            if j.end_time is not None]
    local = trial.local_fold
    if local is not None:
        ends.append((local.ends_at, local.started, local.started, local.ends_at - local.started))
    return ends


def _breakdown(trial: Trial, jobs: list[TrainingJob]) -> Breakdown:
    assert trial.started_at is not None and trial.discovered_at is not None and trial.folds_done_at is not None
    assert trial.ended_at is not None
    end, created, training_starts, training = max(_fold_ends(trial, jobs))
    return Breakdown(
        tuner_gap=trial.launched_at - trial.previous_end if trial.previous_end is not None else 0.0,
        coordinator_startup=trial.started_at - trial.launched_at,
        discovery=trial.discovered_at - trial.started_at,
        create_pacing=created - trial.discovered_at,
        fold_startup=training_starts - created,
        training=training,
        noticing=trial.folds_done_at - end,
        exit=trial.ended_at - trial.folds_done_at,
    )


def _mean(items: list[Breakdown]) -> Breakdown:
    if not items:
        return Breakdown()
    return Breakdown(**{k: sum(getattr(b, k) for b in items) / len(items) for k in asdict(items[0])})


def _training_limit(trials: list[Trial], folds_by_trial: dict[str, list[TrainingJob]], slots: int) -> float:
    """Makespan of the same trials if each took only its slowest fold's training (list scheduling on M slots)."""
    free = [0.0] * slots
    for trial in trials:
        longest = max((training for _, _, _, training in _fold_ends(trial, folds_by_trial.get(trial.name, []))),
                      default=0.0)
        index = min(range(slots), key=lambda i: free[i])
        free[index] += longest
    return max(free) if free else 0.0


def _api_stats(calls: list[Any], wall: float) -> dict[str, dict[str, float]]:
    """Per operation: requests, throttled, the average rate and the busiest second (sliding 1-s window)."""
    stats: dict[str, dict[str, float]] = {}
    times: dict[str, list[float]] = {}
    for at, operation, _, outcome in calls:
        entry = stats.setdefault(operation, {"requests": 0, "throttled": 0})
        entry["requests"] += 1
        if outcome == "ThrottlingException":
            entry["throttled"] += 1
        times.setdefault(operation, []).append(at)
    for operation, entry in stats.items():
        moments = sorted(times[operation])
        peak = max(bisect.bisect_left(moments, t + 1.0) - i for i, t in enumerate(moments))
        entry["per_second"] = entry["requests"] / wall if wall else 0.0
        entry["peak_per_second"] = peak
    return stats
