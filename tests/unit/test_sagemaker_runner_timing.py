"""The fold runner's orchestration in simulated time: pacing, polling, failures, stops, adoption, deadlines.

A boto3-shaped simulated SageMaker advances jobs on a ManualClock that the runner moves by sleeping, so
these tests play real-world durations (3-minute starts, 2-minute training) in milliseconds and can count
every call and every wait exactly.
"""

from __future__ import annotations

import itertools
import logging
import random
from datetime import UTC, datetime

import pytest

from tests.fakes.simulated import SimulatedS3, SimulatedSageMaker
from warmcv.aws.fold_jobs import FoldJobTemplate
from warmcv.aws.training_jobs import TrainingJobsApi
from warmcv.clock import ManualClock
from warmcv.cv import FoldTask
from warmcv.declarations import parse_hyperparameters
from warmcv.errors import FoldFailed, StopRequested, UserInputError
from warmcv.runners.sagemaker import FoldsTimedOut, SageMakerFoldRunner, Timing

PARENT = "trial-7"
K = 5


def parent_description(clock: ManualClock, max_runtime: int = 86400, used: float = 60.0) -> dict:
    return {
        "TrainingJobName": PARENT, "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{PARENT}",
        "AlgorithmSpecification": {"TrainingImage": "img:1", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/coordinator",
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": "s3://b/prepared"}}}],
        "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "TrainingStartTime": datetime.fromtimestamp(clock.time() - used, tz=UTC),
        "CreationTime": datetime.fromtimestamp(clock.time() - used - 30, tz=UTC),
        "TrainingJobStatus": "InProgress", "SecondaryStatus": "Training",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://b/out/x"},
    }


def tasks(k: int = K) -> list[FoldTask]:
    return [FoldTask(fold, {"num_leaves": "31", "num_boost_round": "200"}) for fold in range(k)]


def make_runner(sim: SimulatedSageMaker, timing: Timing | None = None, seed: int = 1,
                **discover) -> SageMakerFoldRunner:
    clock = sim.clock
    api = TrainingJobsApi(sim, s3=SimulatedS3(sim))
    remaining = None
    if discover:
        remaining = discover.get("max_runtime", 86400) - discover.get("used", 60.0)
    template = FoldJobTemplate.from_parent(parent_description(clock, **discover), 600,
                                           max_runtime_seconds=int(remaining) if remaining else None)
    timing = timing or Timing()
    deadline = clock.monotonic() + remaining - timing.deadline_margin if remaining is not None else None
    return SageMakerFoldRunner(api, template, clock=clock, rng=random.Random(seed), timing=timing, deadline=deadline,
                               max_runtime=discover.get("max_runtime"))


def creates(sim: SimulatedSageMaker, outcome: str | None = "OK") -> list[tuple]:
    return [c for c in sim.calls if c[1] == "CreateTrainingJob" and (outcome is None or c[3] == outcome)]


def describes_of(sim: SimulatedSageMaker, name: str) -> list[float]:
    return [c[0] for c in sim.calls if c[1] == "DescribeTrainingJob" and c[2] == name]


def test_a_trial_ends_moments_after_its_last_fold_with_paced_creates_and_few_polls():
    sim = SimulatedSageMaker(ManualClock(), start_seconds=180, train_seconds=120)
    runner = make_runner(sim)
    results = runner.run(tasks())
    assert [r.fold for r in results] == list(range(K))
    assert [r.validation_score for r in results] == pytest.approx([0.8, 0.81, 0.82, 0.83, 0.84])
    # Creates: one per fold, never faster than the account's ~1/s, and not a fixed gap.
    times = [c[0] for c in creates(sim)]
    assert len(times) == K
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1.0 and len({round(g, 3) for g in gaps}) == len(gaps)
    # Polling adds at most poll_fraction (jittered) of the folds' running time to the trial.
    timing = Timing()
    last_end = max(sim.end_time(n) for n in sim.jobs)
    assert 0 <= sim.clock.monotonic() - last_end <= timing.poll_fraction * (1 + timing.jitter) * last_end
    # Until the first fold finishes each poll describes one fold: far fewer calls than K per poll.
    assert runner.api.calls.describes <= 15 * K
    assert runner.api.calls.stops == 0


def test_polling_adds_little_to_trials_whose_folds_end_together():
    overheads = []
    for seed in range(30):
        sim = SimulatedSageMaker(ManualClock(), start_seconds=20, train_seconds=120)
        make_runner(sim, seed=seed).run(tasks())
        last_end = max(sim.end_time(n) for n in sim.jobs)
        overheads.append((sim.clock.monotonic() - last_end) / last_end)
    assert max(overheads) <= Timing().poll_fraction * (1 + Timing().jitter)
    assert sum(overheads) / len(overheads) < 0.035


def test_polls_are_quick_at_first_then_back_off_and_jitter():
    sim = SimulatedSageMaker(ManualClock(), start_seconds=600, train_seconds=3000)
    timing = Timing()
    make_runner(sim, timing).run(tasks(1))
    polls = describes_of(sim, f"{PARENT}-f0")
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert gaps[0] < timing.poll_min * (1 + timing.jitter) + 1e-9
    assert max(gaps) <= timing.poll_max * (1 + timing.jitter) + 1e-9
    assert max(gaps) > timing.poll_max * (1 - timing.jitter) - 1e-9  # reached the cap on a 1-hour job
    early, late = sum(gaps[:5]) / 5, sum(gaps[-6:-1]) / 5
    assert late > 4 * early
    assert len({round(g, 6) for g in gaps}) > len(gaps) * 0.9  # jittered, not a fixed period
    assert len(polls) < 120  # one hour, about two polls a minute on average


def test_creates_throttled_beyond_botocores_retries_are_retried_with_jittered_backoff_never_duplicated():
    sim = SimulatedSageMaker(ManualClock(), start_seconds=30, train_seconds=30, throttle={"CreateTrainingJob": 6})
    runner = make_runner(sim)
    runner.run(tasks())
    assert len(creates(sim)) == K
    assert len(creates(sim, "ThrottlingException")) == 6
    assert sorted(sim.jobs) == [f"{PARENT}-f{i}" for i in range(K)]
    backoffs = [s for s in sim.clock.sleeps if s > 0]
    assert len(set(backoffs)) == len(backoffs)  # every wait is drawn, none fixed


def test_throttled_polls_back_off_for_every_fold():
    sim = SimulatedSageMaker(ManualClock(), start_seconds=30, train_seconds=60, throttle={"DescribeTrainingJob": 8})
    runner = make_runner(sim)
    assert len(runner.run(tasks())) == K
    assert runner.api.calls.throttled == 8


def test_a_failed_fold_stops_its_siblings_and_fails_with_its_reason():
    def durations(request):
        return (20.0, 15.0) if request["HyperParameters"]["fold"] == "2" else (20.0, 400.0)

    sim = SimulatedSageMaker(ManualClock(), durations=durations,
                             failures={f"{PARENT}-f2": "AlgorithmError: LightGBM ran out of memory"})
    runner = make_runner(sim)
    with pytest.raises(FoldFailed) as failure:
        runner.run(tasks())
    assert failure.value.fold == 2
    assert f"fold job {PARENT}-f2 failed: AlgorithmError: LightGBM ran out of memory" in str(failure.value)
    stopped = sorted(c[2] for c in sim.calls if c[1] == "StopTrainingJob" and c[3] == "OK")
    assert stopped == [f"{PARENT}-f{i}" for i in (0, 1, 3, 4)]
    # Found within K early polls of the failure, not after the siblings' 400 s.
    assert sim.clock.monotonic() - sim.end_time(f"{PARENT}-f2") < K * Timing().poll_min * (1 + Timing().jitter)
    runner.stop()  # what the coordinator does next: nothing left to stop, no more calls
    assert runner.api.calls.stops == 4


class SignalledClock(ManualClock):
    """SIGTERM arrives while the runner sleeps at simulated time `at` (the handler raises StopRequested)."""

    def __init__(self, at: float):
        super().__init__()
        self.at = at

    def sleep(self, seconds: float) -> None:
        if self.at is not None and self.monotonic() + seconds >= self.at:
            self.advance(self.at - self.monotonic())
            self.at = None
            raise StopRequested("received SIGTERM")
        super().sleep(seconds)


def test_stop_after_sigterm_stops_every_running_fold_once_and_quickly():
    sim = SimulatedSageMaker(SignalledClock(at=100.0), start_seconds=60, train_seconds=600)
    runner = make_runner(sim)
    with pytest.raises(StopRequested):
        runner.run(tasks())
    before = sim.clock.monotonic()
    runner.stop()
    runner.stop()
    stops = [c for c in sim.calls if c[1] == "StopTrainingJob"]
    assert sorted(c[2] for c in stops) == [f"{PARENT}-f{i}" for i in range(K)]
    assert sim.clock.monotonic() - before < 1.0  # no waiting when the API answers


def test_stop_gives_up_within_its_budget_when_the_api_keeps_throttling(caplog):
    sim = SimulatedSageMaker(SignalledClock(at=50.0), start_seconds=30, train_seconds=600)
    timing = Timing()
    runner = make_runner(sim, timing)
    with pytest.raises(StopRequested):
        runner.run(tasks())
    sim.throttle_always.add("StopTrainingJob")
    before = sim.clock.monotonic()
    runner.stop()
    assert sim.clock.monotonic() - before <= timing.stop_budget + 1e-6  # well inside SageMaker's 120 s
    assert "stop budget of 60 s used up" in caplog.text


def test_a_create_cut_short_by_the_signal_is_still_stopped():
    class InterruptedCreate(SimulatedSageMaker):
        def create_training_job(self, **request):
            response = super().create_training_job(**request)
            if request["TrainingJobName"].endswith("-f1"):
                raise StopRequested("received SIGTERM")  # the request went out, the answer never arrived
            return response

    sim = InterruptedCreate(ManualClock(), start_seconds=60, train_seconds=600)
    runner = make_runner(sim)
    with pytest.raises(StopRequested):
        runner.run(tasks())
    runner.stop()
    assert sorted(c[2] for c in sim.calls if c[1] == "StopTrainingJob" and c[3] == "OK") == [
        f"{PARENT}-f0", f"{PARENT}-f1"]


def test_a_restarted_coordinator_adopts_its_running_and_finished_folds():
    sim = SimulatedSageMaker(ManualClock(), start_seconds=30, train_seconds=100)
    first = make_runner(sim)
    template = first.template
    for fold, status in ((0, "Completed"), (1, None), (2, None)):
        request = template.request(fold, tasks()[fold].worker_hyperparameters())
        if status:
            sim.add_job(request, status)
        else:
            sim.create_training_job(**request)  # still running from the first attempt
    sim.calls.clear()
    runner = make_runner(sim)
    results = runner.run(tasks())
    assert len(results) == K
    assert len(creates(sim)) == 2  # only folds 3 and 4 were new
    assert len(creates(sim, "ResourceInUse")) == 3
    assert "3 adopted" in runner.describe()


def test_a_previous_attempts_failed_fold_is_run_again_under_the_next_name():
    sim = SimulatedSageMaker(ManualClock(), start_seconds=30, train_seconds=100)
    template = make_runner(sim).template
    sim.add_job(template.request(1, tasks()[1].worker_hyperparameters()), "Failed", "InternalServerError")
    results = make_runner(sim).run(tasks())
    assert len(results) == K
    assert f"{PARENT}-f1-r2" in sim.jobs and results[1].executor == f"{PARENT}-f1-r2"


def test_a_job_with_our_name_that_is_not_ours_is_left_alone_and_reported():
    sim = SimulatedSageMaker(ManualClock(), start_seconds=30, train_seconds=100)
    template = make_runner(sim).template
    foreign = template.request(3, {"mode": "worker", "fold": "3", "num_leaves": "255"})
    sim.create_training_job(**foreign)
    with pytest.raises(UserInputError, match=f"a training job named {PARENT}-f3 already exists") as error:
        make_runner(sim).run(tasks())
    assert "HyperParameters" in str(error.value) and "leaves that job alone" in str(error.value)
    stopped = {c[2] for c in sim.calls if c[1] == "StopTrainingJob"}
    assert f"{PARENT}-f3" not in stopped and stopped == {f"{PARENT}-f{i}" for i in range(3)}


def test_quota_errors_name_the_quota_to_raise():
    message = ("The account-level service limit 'ml.m5.xlarge for training job usage' is 4 Instances, with current "
               "utilization of 4 Instances and a request delta of 1 Instances. Please use AWS Service Quotas to "
               "request an increase for this quota.")
    sim = SimulatedSageMaker(ManualClock(), quota_message=message)
    with pytest.raises(UserInputError) as error:
        make_runner(sim).run(tasks())
    text = str(error.value)
    assert "ResourceLimitExceeded" in text and "quota 'ml.m5.xlarge for training job usage'" in text
    assert "Service Quotas" in text and "max_parallel_jobs" in text


def test_folds_that_cannot_finish_before_the_coordinators_max_runtime_are_stopped():
    sim = SimulatedSageMaker(ManualClock(), start_seconds=60, train_seconds=3600)
    timing = Timing()
    runner = make_runner(sim, timing, max_runtime=1800, used=300)
    with pytest.raises(FoldsTimedOut, match=r"MaxRuntimeInSeconds \(1800 s, less 90 s") as error:
        runner.run(tasks())
    assert abs(sim.clock.monotonic() - (1800 - 300 - timing.deadline_margin)) < 1e-6
    assert len([c for c in sim.calls if c[1] == "StopTrainingJob" and c[3] == "OK"]) == K
    assert f"{PARENT}-f0" in str(error.value)
    # The fold jobs themselves were capped at the coordinator's remaining runtime.
    assert sim.jobs[f"{PARENT}-f0"].request["StoppingCondition"]["MaxRuntimeInSeconds"] == 1500


def test_discovery_caps_fold_runtime_and_sets_the_deadline_from_the_stopping_condition():
    clock = ManualClock()
    sim = SimulatedSageMaker(clock)
    described = parent_description(clock, max_runtime=3600, used=1000)
    sim.tags[described["TrainingJobArn"]] = [{"Key": "team", "Value": "ml"}]

    class Api(TrainingJobsApi):
        def describe_training_job(self, name, prompt=False):
            self.calls.describes += 1
            return described

    runner = SageMakerFoldRunner.discover(Api(sim, s3=SimulatedS3(sim)), PARENT,
                                          parse_hyperparameters({"mode": "coordinator", "keep_alive_seconds": "120"}),
                                          clock=clock, timing=Timing())
    assert runner.deadline == pytest.approx(clock.monotonic() + 2600 - Timing().deadline_margin)
    request = runner.template.request(0, {"fold": "0"})
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 2600}
    assert request["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 120
    assert {"Key": "team", "Value": "ml"} in request["Tags"]


def test_scores_fall_back_to_final_metric_data_when_the_archive_is_missing(caplog):
    sim = SimulatedSageMaker(ManualClock(), start_seconds=10, train_seconds=20, drop_archives=True)
    caplog.set_level(logging.WARNING)
    results = make_runner(sim).run(tasks(2))
    assert [r.validation_score for r in results] == pytest.approx([0.8, 0.81])
    assert [r.best_iteration for r in results] == [200, 200]  # num_boost_round: the honest upper bound
    assert "using the job's FinalMetricDataList" in caplog.text


def test_copied_tags_the_service_rejects_are_dropped_not_fatal(caplog):
    class RejectsCopiedTags(SimulatedSageMaker):
        def create_training_job(self, **request):
            if any(t["Key"] == "team" for t in request.get("Tags", [])):
                from tests.fakes.simulated import client_error

                raise client_error("ValidationException", "Tag keys may not use this prefix", "CreateTrainingJob")
            return super().create_training_job(**request)

    sim = RejectsCopiedTags(ManualClock(), start_seconds=10, train_seconds=20)
    runner = make_runner(sim)
    runner.template = FoldJobTemplate.from_parent(parent_description(sim.clock), 600,
                                                  user_tags=[{"Key": "team", "Value": "ml"}])
    assert len(runner.run(tasks(3))) == 3
    assert "warmcv's tags only" in caplog.text


def test_a_fold_stopped_by_its_own_max_runtime_says_so():
    class MaxRuntime(SimulatedSageMaker):
        def _describe(self, job):
            out = super()._describe(job)
            if out["TrainingJobStatus"] == "Completed" and out["TrainingJobName"].endswith("-f1"):
                out.update(TrainingJobStatus="Stopped", SecondaryStatus="MaxRuntimeExceeded")
            return out

    sim = MaxRuntime(ManualClock(), start_seconds=10, train_seconds=100)
    with pytest.raises(FoldFailed, match=r"trial-7-f1 reached its MaxRuntimeInSeconds \(86400 s"):
        make_runner(sim).run(tasks(3))


def test_every_stop_is_sent_or_given_up_within_the_sigterm_grace_even_if_the_api_hangs(caplog):
    from botocore.exceptions import ReadTimeoutError

    class HangingStops(SimulatedSageMaker):
        def stop_training_job(self, TrainingJobName):
            self.clock.advance(21.0)  # the prompt client's worst case: 2 attempts x 10 s read timeout + backoff
            raise ReadTimeoutError(endpoint_url="https://api.sagemaker.us-east-1.amazonaws.com/")

    sim = HangingStops(SignalledClock(at=40.0), start_seconds=30, train_seconds=600)
    runner = make_runner(sim)
    with pytest.raises(StopRequested):
        runner.run(tasks())
    before = sim.clock.monotonic()
    runner.stop()
    assert sim.clock.monotonic() - before <= Timing().stop_budget + 21.0 < 120
    assert "stop budget of 60 s used up" in caplog.text


def test_the_clients_retry_the_way_the_runner_expects(monkeypatch):
    from warmcv.aws.clients import coordinator_clients

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    clients = coordinator_clients("eu-central-1")
    patient, prompt = clients.patient.meta.config, clients.prompt.meta.config
    assert patient.retries == {"mode": "adaptive", "total_max_attempts": 8}
    assert prompt.retries == {"mode": "standard", "total_max_attempts": 2}
    assert (prompt.connect_timeout, prompt.read_timeout) == (3, 10)
    assert clients.patient.meta.region_name == "eu-central-1"


def test_the_first_create_goes_out_at_once():
    """No random wait before it: botocore's jittered retries already separate coordinators that start together,
    and the wait cost every trial about half a second on its critical path (docs/simulation.md)."""
    sim = SimulatedSageMaker(ManualClock(), start_seconds=30, train_seconds=60)
    make_runner(sim).run(tasks())
    assert creates(sim)[0][0] == 0.0


def test_an_injected_local_fold_replaces_the_worker_process():
    from warmcv.simulation.workload import SimulatedLocalFold, Workload

    workload = Workload(train=90.0, train_cv=0.0)
    started = []

    def local(task, clock):
        started.append(task.fold)
        return SimulatedLocalFold(workload, PARENT, task, clock)

    sim = SimulatedSageMaker(ManualClock(), start_seconds=20, train_seconds=60)
    runner = make_runner(sim)
    runner.local_fold = local
    results = runner.run(tasks())
    assert started == [0] and sorted(sim.jobs) == [f"{PARENT}-f{i}" for i in range(1, K)]
    assert results[0].executor.startswith("coordinator") and results[0].wall_seconds == pytest.approx(90.0, abs=1.0)
    assert "fold 0 trained by the coordinator" in runner.describe()
