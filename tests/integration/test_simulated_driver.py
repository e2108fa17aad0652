"""The driver strategy in simulated time: the REAL `Search` engine, sampler and SageMaker fold runner, one driver job.

These check what the simulation of the driver promises (determinism, one driver job and K fold jobs per trial,
no coordinator, the account's create pace kept without collisions, stops and failures handled) and what the
strategy is for: ending before the tuner strategy, nearer the training-only limit, with fewer instance-hours.
The seed's full configuration (N = 120) runs in bench/simulate_seed.py; here N is smaller.
"""

from __future__ import annotations

import itertools
import statistics

import pytest

from warmcv.simulation.tuning import INJECTED_FAILURE, Tuning, simulate
from warmcv.simulation.workload import Workload


def natural_end(job) -> float:
    """When a fold job would have ended by itself (its plan), had nobody stopped it."""
    plan = job.plan
    return job.created + plan.provisioning + plan.downloading + plan.training


def driver(**changes) -> Tuning:
    return Tuning(**{"strategy": "driver", "parallel": 3, "rounds": 4, "folds": 4, **changes})


def test_a_seed_replays_the_same_search_to_the_last_call():
    def run(seed: int):
        report = simulate(driver(), Workload(seed=seed))
        return [(t.name, t.launched_at, t.ended_at, t.objective, tuple(sorted(t.hyperparameters.items())))
                for t in report.trials], report.service.calls

    first, calls = run(5)
    second, calls_again = run(5)
    assert first == second and calls == calls_again
    assert run(6)[0] != first


def test_one_driver_job_runs_the_real_search_and_creates_k_fold_jobs_per_trial():
    report = simulate(driver(), Workload(seed=3))
    assert report.completed == len(report.trials) == 12
    assert report.driver_jobs == 1 and report.coordinators == 0 and report.fold_jobs == 12 * 4
    assert report.to_dict()["jobs"]["total"] == 1 + 12 * 4
    kinds = {job.kind for job in report.service.jobs.values()}
    assert kinds == {"driver", "fold"}  # no coordinator job at all
    for trial in report.trials:
        # The search told Optuna the mean of the scores in the fold jobs' metrics.json ...
        expected = [report.workload.fold_result(trial.name, fold, 0.0, 100)["validation_score"] for fold in range(4)]
        assert trial.fold_scores == pytest.approx(expected)
        assert trial.objective == pytest.approx(statistics.fmean(expected), abs=1e-12)
        # ... for the values its sampler chose, within the space (what the driver forwards to every fold job).
        assert 8 <= int(trial.hyperparameters["num_leaves"]) <= 256
    assert report.best_objective == max(t.objective for t in report.trials)
    # The first trials' folds start cold; later ones on the pools those left (none taken by the driver itself).
    assert report.fold_jobs_warm == report.fold_jobs - 3 * 4
    driver_job = next(j for j in report.service.jobs.values() if j.kind == "driver")
    assert driver_job.status == "Completed" and driver_job.pool_id is None
    assert report.billing_total["driver"] > 0
    assert report.tuner_limits == []  # no tuning job: the tuner's 750-trial and 100-parallel limits do not apply


def test_the_driver_keeps_the_accounts_create_pace_without_collisions():
    """One process, one CreateGate: creates at least a second apart, a trial's folds created back to back."""
    report = simulate(driver(parallel=4, rounds=5, folds=5), Workload(seed=11, startup_cv=0.0))
    creates = [(at, name) for at, op, name, outcome in report.service.calls if op == "CreateTrainingJob"]
    assert report.api["CreateTrainingJob"]["throttled"] == 0
    times = sorted(at for at, _ in creates)
    assert min(b - a for a, b in itertools.pairwise(times)) >= 1.0 - 1e-9
    # Each trial's K creates are consecutive: no other trial's create between them.
    order = [name.rsplit("-f", 1)[0] for _, name in sorted(creates)]
    assert [k for k, _ in itertools.groupby(order)] == list(dict.fromkeys(order))


def test_a_failed_fold_fails_only_its_trial_and_the_search_goes_on():
    report = simulate(driver(rounds=3, failing_folds=((2, 1),)), Workload(seed=9, train=600.0))
    failed = [t for t in report.trials if t.status == "Failed"]
    assert [t.index for t in failed] == [1]
    assert f"fold job {failed[0].name}-f1 failed: {INJECTED_FAILURE}" in failed[0].failure
    service = report.service
    siblings = [service.jobs[f"{failed[0].name}-f{fold}"] for fold in (0, 2, 3)]
    assert all(job.status == "Stopped" and job.stop_requested_at <= failed[0].ended_at for job in siblings)
    assert report.orphans == [] and report.completed == len(report.trials) - 1 == 8


def test_stopping_the_driver_stops_every_fold_and_starts_no_trial_after():
    report = simulate(driver(rounds=10, stop_at=1000.0), Workload(seed=6))
    stopped = [t for t in report.trials if t.status == "Stopped"]
    assert stopped and report.orphans == []
    folds = [j for j in report.service.jobs.values() if j.kind == "fold"]
    assert all(j.ended or j.stop_requested_at is not None for j in folds)
    assert all(t.launched_at <= 1000.0 for t in report.trials)
    driver_job = next(j for j in report.service.jobs.values() if j.kind == "driver")
    assert driver_job.status == "Stopped" and report.wall_seconds < 1000.0 + 120  # inside SageMaker's grace


def test_the_driver_ends_before_the_tuner_with_fewer_instance_hours():
    """The seed's setup, 30 rounds deep: M = 4, K = 5, 2-minute folds, 20-s warm starts (bench/simulate_seed.py
    runs all 120). The driver pays one warm start per trial (its folds'), the tuner two (a coordinator's, then its
    folds'); the driver's own instance bills for the whole search and still it needs fewer instance-hours."""
    workload = Workload(startup=180, train=120, warm_startup=20)
    amt = simulate(Tuning(parallel=4, rounds=30, folds=5, coordinator_trains_fold=True), workload)
    drv = simulate(Tuning(strategy="driver", parallel=4, rounds=30, folds=5), workload)
    assert drv.completed == amt.completed == 120
    assert drv.wall_seconds < amt.wall_seconds
    assert drv.instance_hours < amt.instance_hours
    # At 30 rounds the first round's cold starts (the driver's own, then its folds') weigh four times what they do
    # at 120 (bench/simulate_seed.py: 1.20 there).
    assert drv.wall_seconds / drv.training_limit_seconds < amt.wall_seconds / amt.training_limit_seconds - 0.08
    later = drv.breakdown_warm
    assert later.coordinator_startup == 0 and later.fold_startup < 25
    assert later.total < amt.breakdown_warm.total - 15  # one warm start (about 20 s) less per trial


def test_fold_level_pruning_stops_a_hopeless_trials_remaining_folds():
    """With pruning on, a trial whose first finished fold shows it cannot beat the best is told to Optuna as pruned,
    the moment that fold's result is in, and its other folds, still running, are stopped then (their pools left
    Available before the next trial starts, so it starts warm). The search ends sooner, on fewer instance-hours."""
    workload = Workload(seed=1, startup=180, train=120, warm_startup=20)
    plain = simulate(driver(parallel=4, rounds=10, folds=5), workload)
    pruned = simulate(driver(parallel=4, rounds=10, folds=5, prune=True), workload)
    counts = pruned.to_dict()["trials"]
    assert counts["pruned"] > 0 and counts["completed"] >= 5 and counts["launched"] == 40
    service = pruned.service
    for trial in (t for t in pruned.trials if t.status == "Pruned"):
        folds = [j for j in service.jobs.values() if j.kind == "fold" and j.name.startswith(trial.name + "-")]
        finished = [j for j in folds if j.status == "Completed"]
        stopped = [j for j in folds if j.status == "Stopped"]
        assert finished and len(finished) < 5 and len(finished) + len(stopped) == 5, trial.name
        decided = max(j.end_time for j in finished)  # the decision came with the last finished fold's result
        for job in stopped:
            assert decided <= job.stop_requested_at < natural_end(job)  # stopped before it would have ended
            assert job.stop_requested_at <= trial.ended_at
    assert pruned.orphans == []
    assert pruned.fold_jobs_warm == plain.fold_jobs_warm  # the next trials still found the stopped folds' pools
    assert pruned.wall_seconds < plain.wall_seconds
    assert pruned.instance_hours < plain.instance_hours
