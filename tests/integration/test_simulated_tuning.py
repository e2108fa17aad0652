"""Tuning jobs in simulated time: the REAL coordinator (`cross_validate`) and SageMaker fold runner, M wide, N deep.

Every trial runs `SageMakerFoldRunner.discover` + `cross_validate` against the simulated SageMaker through
clients that retry like botocore, on the scheduler's virtual clock. These tests check what the simulation
promises (determinism, the account's limits, warm-pool rules) and what it shows about the runner
(failures stop siblings, stops leave no orphans, aggregation is right, the seed's figure).
"""

from __future__ import annotations

import itertools
import statistics

import pytest

from warmcv.simulation.plan import PlanInputs, estimate, seed_model
from warmcv.simulation.tuning import INJECTED_FAILURE, Account, Tuning, simulate
from warmcv.simulation.workload import Workload


def natural_end(job) -> float:
    """When a fold job would have ended by itself (its plan), had nobody stopped it."""
    plan = job.plan
    return job.created + plan.provisioning + plan.downloading + plan.training


def small(**changes) -> Tuning:
    return Tuning(**{"parallel": 3, "rounds": 4, "folds": 4, **changes})


def test_a_seed_gives_the_same_run_to_the_last_call_and_another_seed_does_not():
    def run(seed: int):
        report = simulate(small(), Workload(seed=seed))
        return report, [(t.name, t.started_at, t.ended_at, t.objective) for t in report.trials]

    first, trials_a = run(7)
    second, trials_b = run(7)
    other, trials_c = run(8)
    assert trials_a == trials_b and first.to_dict() | {"simulation": None} == second.to_dict() | {"simulation": None}
    assert trials_a != trials_c


def test_every_trial_runs_the_real_coordinator_and_reports_the_mean_of_its_folds():
    report = simulate(small(), Workload(seed=3))
    assert report.completed == len(report.trials) == 12 and report.fold_jobs == 12 * 4
    for trial in report.trials:
        # The tuner read the objective from the coordinator's own log line (the declared regex) ...
        assert any(line.startswith("average model validation score:") for line in trial.log_lines)
        # ... and it is the mean of the scores the fold jobs' metrics.json carried.
        expected = [report.workload.fold_result(trial.name, fold, 0.0, 100)["validation_score"] for fold in range(4)]
        assert trial.fold_scores == pytest.approx(expected)
        assert trial.objective == pytest.approx(statistics.fmean(expected), abs=1e-6)
    assert report.best_objective == max(t.objective for t in report.trials)
    # The fold jobs inherited the tuner's configuration through the coordinator's DescribeTrainingJob, so
    # after each slot's first trial every fold found a warm pool.
    assert report.fold_jobs_warm == report.fold_jobs - 3 * 4
    assert report.runner_calls["creates"] == report.fold_jobs and report.runner_calls["list_tags"] == 12


def test_the_account_limits_hold_throughout_a_run():
    tuning = Tuning(parallel=4, rounds=6, folds=5)
    account = Account(instance_quota=None)
    report = simulate(tuning, Workload(seed=5, startup_cv=0.0), account)  # coordinators start in the same second
    assert report.api["CreateTrainingJob"]["throttled"] > 0  # the first round did collide ...
    assert report.client_retries >= report.api["CreateTrainingJob"]["throttled"]  # ... and botocore absorbed it
    assert report.completed == 24
    assert report.peak_instances <= 4 * (5 + 1) and report.peak_pool_instances <= 4 * 5


def test_successful_creates_are_at_least_a_second_apart_and_each_pool_serves_one_job_at_a_time():
    service = simulate(Tuning(parallel=4, rounds=5, folds=5), Workload(seed=11, startup_cv=0.0)).service
    created = sorted(at for at, op, _, outcome in service.calls if op == "CreateTrainingJob" and outcome == "OK")
    assert min(b - a for a, b in itertools.pairwise(created)) >= 1.0 - 1e-9
    by_pool: dict[int, list[tuple[float, float]]] = {}
    for job in service.jobs.values():
        if job.warm:
            by_pool.setdefault(job.pool_id, []).append((job.created, job.end_time))
    for spans in by_pool.values():
        spans.sort()
        assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))  # never two at once


def test_reuse_needs_the_keep_alive_and_the_warm_pool_quota():
    cold = simulate(small(keep_alive=0), Workload(seed=1))
    assert cold.fold_jobs_warm == 0 and cold.peak_pool_instances == 0
    no_quota = simulate(small(), Workload(seed=1), Account(warm_pool_quota=0))  # AWS's default: no error, no pool
    assert no_quota.fold_jobs_warm == 0 and no_quota.completed == 12
    warm = simulate(small(), Workload(seed=1))
    assert warm.wall_seconds < cold.wall_seconds * 0.75


def test_a_short_keep_alive_lets_pools_expire_between_trials():
    # 60 s keep-alive, but the next coordinator needs 2 minutes to start: every pool has expired by then.
    # (One slot: with several, a pool freed by one slot's trial is often taken by another's, as on AWS.)
    report = simulate(small(parallel=1, keep_alive=60), Workload(seed=2, coordinator_startup=120.0))
    assert report.fold_jobs_warm == 0 and report.peak_pool_instances == 4
    shared = simulate(small(keep_alive=60), Workload(seed=2, coordinator_startup=120.0))
    assert 0 < shared.fold_jobs_warm < shared.fold_jobs - 3 * 4


def test_a_tight_instance_quota_costs_delays_not_trials():
    """ResourceLimitExceeded is routine at M x K instances: the runner waits for quota (pooled instances count, and a
    refused fold takes a sibling's pool once one is Available), so every trial completes, later."""
    tuning = small(parallel=2, rounds=2, folds=4)
    report = simulate(tuning, Workload(seed=4), Account(instance_quota=2 * 4))
    roomy = simulate(tuning, Workload(seed=4))
    assert report.peak_instances <= 8
    refused = report.service.count("CreateTrainingJob", "ResourceLimitExceeded")
    assert refused > 0 and report.completed == len(report.trials) == 4
    assert report.wall_seconds > roomy.wall_seconds


def test_a_quota_that_never_frees_up_fails_trials_naming_it():
    from warmcv.runners.sagemaker import Timing

    report = simulate(small(parallel=1, rounds=2, folds=3), Workload(seed=4), Account(instance_quota=1),
                      timing=Timing(quota_patience=300))
    failed = [t for t in report.trials if t.status == "Failed"]
    assert len(failed) == 2 and all("'ml.m5.xlarge for training job usage'" in t.failure for t in failed)
    assert all("coordinator_trains_fold=true" in t.failure and "retried for 300 s" in t.failure for t in failed)


def test_one_failed_fold_fails_its_trial_and_stops_its_siblings_in_simulated_time():
    from warmcv.runners.sagemaker import Timing

    report = simulate(small(rounds=3, failing_folds=((2, 1),)), Workload(seed=9, train=600.0))
    failed = [t for t in report.trials if t.status == "Failed"]
    assert [t.index for t in failed] == [1]
    trial = failed[0]
    assert f"fold 1 failed: fold job {trial.name}-f1 failed: {INJECTED_FAILURE}" in trial.failure
    # The failure was noticed within K round-robin polls of the moment it happened, and every sibling was
    # stopped then, long before its 10-minute training would have ended.
    service = report.service
    failing = service.jobs[f"{trial.name}-f1"]
    siblings = [service.jobs[f"{trial.name}-f{fold}"] for fold in (0, 2, 3)]
    timing = Timing()
    bound = 4 * timing.poll_max * (1 + timing.jitter)
    assert failing.end_time < trial.ended_at < failing.end_time + bound
    assert all(job.status == "Stopped" and job.stop_requested_at <= trial.ended_at for job in siblings)
    assert all(job.stop_requested_at < natural_end(job) - 60 for job in siblings)
    assert report.orphans == []
    # The tuner went on: the slot started its next trial, and every other trial completed.
    assert report.completed == len(report.trials) - 1 == 8


def test_the_failed_fold_on_the_coordinator_itself_fails_the_trial_too():
    report = simulate(small(rounds=2, coordinator_trains_fold=True, failing_folds=((1, 0),)), Workload(seed=9))
    trial = report.trials[0]
    assert trial.status == "Failed" and "fold 0 (trained by the coordinator) failed" in trial.failure
    assert report.orphans == [] and report.completed == len(report.trials) - 1


def test_stopping_the_tuning_job_stops_every_coordinator_and_leaves_no_fold_running():
    report = simulate(small(rounds=10, stop_at=1000.0), Workload(seed=6))
    stopped = [t for t in report.trials if t.status == "Stopped"]
    assert stopped and all("every fold still running was stopped" in (t.failure or "") or "before this trial" in
                           (t.failure or "") for t in stopped)
    assert report.orphans == []
    assert all(t.launched_at <= 1000.0 for t in report.trials)  # none started after the stop
    assert report.wall_seconds < 1000.0 + 120  # inside SageMaker's SIGTERM grace


def test_the_coordinator_training_a_fold_needs_fewer_instance_hours_and_jobs():
    plain = simulate(small(rounds=6), Workload(seed=12))
    own = simulate(small(rounds=6, coordinator_trains_fold=True), Workload(seed=12))
    assert own.jobs == plain.jobs - len(plain.trials)
    assert own.instance_hours < plain.instance_hours * 0.9
    assert own.peak_instances <= 3 * 4 and own.peak_pool_instances <= 3 * 3
    assert own.wall_seconds <= plain.wall_seconds * 1.02


def test_the_seeds_figure_ten_hours_cold_four_hours_warm():
    """N = 120 rounds, 3-minute start, 2-minute training: design.md's ~10 h cold and ~4 h warm.

    Simulated with design.md's own assumptions (one trial at a time, warm starts instant, exact times), the real
    runner's pacing and polling on top, against the closed form of `warmcv plan`.
    """
    workload = Workload(startup=180, train=120, warm_startup=0.0, train_cv=0.0, startup_cv=0.0, seed=1)
    seed = seed_model(PlanInputs(parallel=1, rounds=120, folds=5, startup=180, train=120))
    assert (seed["cold_seconds"], seed["warm_seconds"]) == (36_000, 14_580)  # 10 h and 4.05 h
    for keep_alive, figure, own_limit in ((0, 10 * 3600, 12.0), (600, 4 * 3600, 8.0)):
        report = simulate(Tuning(parallel=1, rounds=120, folds=5, keep_alive=keep_alive), workload)
        closed = estimate(PlanInputs(parallel=1, rounds=120, folds=5, startup=180, train=120, warm_startup=0.0,
                                     keep_alive=keep_alive), warm=keep_alive > 0)
        assert report.wall_seconds == pytest.approx(closed.wall_seconds, rel=0.02)
        # About the seed's figure: above it by the coordinator's own first start (3 min) and a few seconds a trial.
        assert figure < report.wall_seconds < figure * 1.10
        # warmcv's own share of a trial (docs/simulation.md): discovery, paced creates (at least K - 1 s at the
        # account's 1/s), noticing the last fold (polls back off to 5 % of the time run: longer after cold starts).
        per_trial = report.breakdown_warm
        assert per_trial.discovery + per_trial.create_pacing + per_trial.noticing < own_limit
