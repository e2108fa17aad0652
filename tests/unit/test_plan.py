"""`warmcv plan`'s closed forms against hand-computed cases, and the plan/simulate commands."""

from __future__ import annotations

import json

import pytest

from warmcv.cli import main
from warmcv.errors import UserInputError
from warmcv.runners.sagemaker import Timing
from warmcv.simulation.plan import PlanInputs, assumptions, estimate, polls_before_first_finish, seed_model
from warmcv.simulation.tables import parse_duration

# No jitter and no latency, so every figure below is plain arithmetic.
TIMING = Timing(create_interval=1.0, jitter=0.0, poll_min=5.0, poll_fraction=0.05, poll_max=60.0, poll_finish=2.0)
HAND = PlanInputs(parallel=2, rounds=3, folds=3, startup=100, train=50, warm_startup=10, coordinator_startup=5,
                  keep_alive=600, api_latency=0.0, price=2.0, timing=TIMING, download_cold=30, download_warm=4)


def test_the_motivating_arithmetic():
    seed = seed_model(PlanInputs(parallel=1, rounds=120, folds=5, startup=180, train=120))
    assert seed == {"cold_seconds": 36_000, "warm_seconds": 180 + 120 + 119 * 120, "training_limit_seconds": 14_400}
    assert seed["cold_seconds"] / 3600 == 10.0 and round(seed["warm_seconds"] / 3600, 2) == 4.05


def test_warm_estimate_by_hand():
    warm = estimate(HAND, warm=True)
    # first trial: coordinator 100 + creates 2 x 1 s + folds 100 + training 50 + noticing: the poll interval
    # at 150 s is 7.5 s, the first end is seen ~3.75 s late, the last fold ended 2 s after the first -> 1.75 s
    assert warm.first_trial_seconds == pytest.approx(100 + 2 + 100 + 50 + 1.75)
    # later: coordinator 5 + creates 2 + warm folds 10 + training 50 + noticing max(5 / 2 - 2, 2 / 2) = 1
    assert warm.later_trial_seconds == pytest.approx(5 + 2 + 10 + 50 + 1)
    assert warm.wall_seconds == pytest.approx(253.75 + 2 * 68)
    assert warm.training_limit_seconds == 150
    assert warm.breakdown == {"tuner_gap": 0, "coordinator_startup": 5, "discovery": 0, "create_pacing": 2,
                              "fold_startup": 10, "training": 50, "noticing": 1}
    # instance-seconds, billed from TrainingStartTime: coordinators all but their start-up's provisioning (a cold one
    # downloads 30 s, a reused one 4 s: the 5-s start is 1 s of provisioning); folds their downloads (30 s cold,
    # 4 s warm) and training; pools idle 8 s between trials (fold spread 2 + noticing 1 + coordinator start 5) and
    # the keep-alive after the last trial.
    hours = warm.instance_hours
    assert hours["coordinators"] * 3600 == pytest.approx(2 * (153.75 + 30 + 2 * (63 + 4)))
    assert hours["fold_jobs"] * 3600 == pytest.approx(2 * 3 * (3 * 50 + 30 + 2 * 4))
    assert hours["warm_pools_between_trials"] * 3600 == pytest.approx(2 * 3 * 2 * 8)
    assert hours["warm_pools_after_last_trial"] * 3600 == pytest.approx(2 * 3 * 600)
    assert hours["total"] * 3600 == pytest.approx(635.5 + 1128 + 96 + 3600)
    assert warm.cost == pytest.approx(hours["total"] * 2.0)
    assert (warm.jobs, warm.fold_starts_cold, warm.fold_starts_warm) == (24, 6, 12)
    assert (warm.training_instances, warm.warm_pool_instances) == (8, 6)
    assert warm.creates_per_second == pytest.approx(6 / 68)
    # one ListTrainingJobs a tick: every 5 s for the 62 s until the first end, then every 2 s over the 2 s to the last
    assert warm.lists_per_trial == pytest.approx(62 / 5 + 1 + 2 / 2)
    assert warm.describes_per_trial == 1  # itself: completed folds are read without a describe


def test_cold_estimate_by_hand():
    cold = estimate(HAND, warm=False)
    assert cold.later_trial_seconds == pytest.approx(5 + 2 + 100 + 50 + 1.75)
    assert cold.wall_seconds == pytest.approx(253.75 + 2 * 158.75)
    assert cold.instance_hours["warm_pools_between_trials"] == 0 == cold.warm_pool_instances
    assert cold.fold_starts_cold == 18


def test_the_coordinator_training_a_fold_saves_a_job_an_instance_and_a_pool_per_trial():
    from dataclasses import replace

    plain, own = estimate(HAND, warm=True), estimate(replace(HAND, coordinator_trains_fold=True), warm=True)
    assert (own.jobs, own.training_instances, own.warm_pool_instances) == (18, 6, 4)
    assert own.instance_hours["total"] < plain.instance_hours["total"]
    assert own.wall_seconds < plain.wall_seconds  # one create fewer on the critical path


def test_a_keep_alive_shorter_than_the_pause_between_trials_is_flagged():
    from dataclasses import replace

    notes = estimate(replace(HAND, keep_alive=5), warm=True).notes
    assert any("expire" in note and "keep_alive_seconds" in note for note in notes)


def test_the_assumptions_are_shown_across_their_range_and_move_the_estimate():
    rows = {a.name: a for a in assumptions(HAND)}
    coordinator = rows["coordinator start-up on an instance the tuner reuses"]
    assert [label for label, _ in coordinator.points] == ["20 s", "60 s", "cold (100 s)"]
    walls = [e.wall_seconds for _, e in coordinator.points]
    assert walls[0] < walls[1] < walls[2] and walls[1] - walls[0] == pytest.approx(2 * 40)  # N - 1 later trials
    assert coordinator.used == "5 s"
    warm = [e.wall_seconds for _, e in rows["fold start-up on a warm pool"].points]
    assert warm[0] < warm[1] < warm[2]
    downloads = [e.instance_hours["total"] for _, e in rows["billed downloads of a start-up, cold / warm"].points]
    assert downloads[0] < downloads[1] < downloads[2]
    assert len({round(e.wall_seconds, 6) for _, e in rows["billed downloads of a start-up, cold / warm"].points}) == 1


def test_runs_past_the_tuners_documented_limits_are_flagged():
    from dataclasses import replace

    notes = estimate(replace(HAND, parallel=12, rounds=100), warm=True).notes
    assert any("tuner:" in n and "1,200 trials exceed the tuner's 750" in n for n in notes)
    assert any("default of 10 parallel" in n for n in notes)
    assert not any("tuner:" in n for n in estimate(HAND, warm=True).notes)


def test_pre_finish_polls_integrate_the_backing_off_interval():
    assert polls_before_first_finish(TIMING, 50) == pytest.approx(10)  # every 5 s
    assert polls_before_first_finish(TIMING, 1000) == pytest.approx(20 + 20 * 2.302585)  # then 5 % of the time run
    assert polls_before_first_finish(TIMING, 2000) == pytest.approx(20 + 20 * 2.484907 + 800 / 60)  # then 60 s


@pytest.mark.parametrize(("text", "seconds"), [("180", 180), ("3m", 180), ("3 min", 180), ("1.5h", 5400),
                                               ("90s", 90)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_durations_say_what_is_expected():
    with pytest.raises(UserInputError, match="--train '2 weeks': expected seconds"):
        parse_duration("2 weeks", "--train")


def test_plan_command_prints_the_table_and_json(capsys):
    args = ["plan", "--parallel", "1", "--rounds", "120", "--folds", "5", "--startup", "3m", "--train", "2m"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "arithmetic cold" in text and "10.00 h" in text and "4.05 h" in text
    assert "design.md" not in text
    assert "'ml.m5.xlarge for training warm pool usage'" in text
    assert main([*args, "--json", "--price", "0.23"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["seed_model"]["cold_seconds"] == 36_000
    # By default the coordinator trains fold 0 (as the launcher does): K jobs per trial, not K + 1.
    assert data["estimates"]["warm"]["jobs"] == 600 and data["estimates"]["warm"]["cost"] > 0
    assert [a["name"] for a in data["assumptions"]][0] == "coordinator start-up on an instance the tuner reuses"
    assert [p["value"] for p in data["assumptions"][0]["points"]] == ["20 s", "60 s", "cold (180 s)"]
    assert main([*args, "--json", "--no-coordinator-trains-fold"]) == 0
    assert json.loads(capsys.readouterr().out)["estimates"]["warm"]["jobs"] == 720


def test_plan_prints_the_assumptions_next_to_the_figures(capsys):
    assert main(["plan", "-M", "4", "-N", "1200", "-K", "5", "--startup", "3m", "--train", "2m"]) == 0
    text = capsys.readouterr().out
    assert "Assumptions AWS publishes no figure for" in text
    assert "20 s: " in text and "60 s: " in text and "cold (180 s): " in text
    assert "tuner: 4,800 trials exceed the tuner's 750 training jobs per tuning job" in text


def test_plan_with_the_simulation_next_to_it(capsys):
    args = ["plan", "-M", "2", "-N", "3", "-K", "3", "--startup", "100", "--train", "50", "--simulate", "--json"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["simulations"]["warm"]["trials"]["completed"] == 6
    assert data["simulations"]["cold"]["jobs"]["fold_jobs_on_warm_pools"] == 0


def test_simulate_command_reports_where_the_time_goes(capsys, tmp_path):
    csv_path = tmp_path / "trials.csv"
    args = ["simulate", "-M", "2", "-N", "3", "-K", "3", "--startup", "100", "--train", "50", "--seed", "4",
            "--trials-csv", str(csv_path)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "Where a trial's time goes" in text and "CreateTrainingJob" in text
    assert len(csv_path.read_text().splitlines()) == 1 + 6


@pytest.mark.parametrize(("extra", "message"), [
    (["--keep-alive", "4000"], "--keep-alive 4000: SageMaker allows 0..3600"),
    (["--folds", "1"], "--folds must be at least 2"),
    (["--timing", "poll_often=1"], "WARMCV_SAGEMAKER_TIMING"),
    (["--simulate", "--create-rate", "0"], "must be above 0"),
    (["--train", "two minutes"], "--train 'two minutes': expected seconds"),
])
def test_bad_plan_input_fails_with_a_message(capsys, extra, message):
    args = ["plan", "-M", "2", "-N", "3", "-K", "3", "--startup", "100", "--train", "50", *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err


# -- the driver strategy -------------------------------------------------------------------------------------------
DRIVER = PlanInputs(parallel=2, rounds=3, folds=3, startup=100, train=50, warm_startup=10, keep_alive=600,
                    api_latency=0.0, price=2.0, timing=TIMING, download_cold=30, download_warm=4, strategy="driver",
                    coordinator_trains_fold=True)  # ignored: the driver has no coordinator


def test_driver_estimate_by_hand():
    warm = estimate(DRIVER, warm=True)
    # first trial: the driver starts cold (100) and describes itself; then 3 creates 1 s apart (2 s), folds cold
    # (100), training 50, noticing 1.75 (as a coordinator's: the first end seen ~3.75 s late, the last 2 s after)
    assert warm.first_trial_seconds == pytest.approx(100 + 2 + 100 + 50 + 1.75)
    # later: no coordinator start-up, no discovery: creates 2 + warm folds 10 + training 50 + noticing 1
    assert warm.later_trial_seconds == pytest.approx(2 + 10 + 50 + 1)
    assert warm.breakdown == {"tuner_gap": 0, "coordinator_startup": 0, "discovery": 0, "create_pacing": 2,
                              "fold_startup": 10, "training": 50, "noticing": 1}
    assert warm.wall_seconds == pytest.approx(253.75 + 2 * 63)
    hours = warm.instance_hours
    # the driver bills from its TrainingStartTime (its 30-s download) to the end; K folds per trial, none on it
    assert hours["driver"] * 3600 == pytest.approx(warm.wall_seconds - 100 + 30) and hours["coordinators"] == 0
    assert hours["fold_jobs"] * 3600 == pytest.approx(2 * 3 * (3 * 50 + 30 + 2 * 4))
    # a pool idles from its fold's end to the next trial's fold: the folds' spread (2) + noticing (1) + its place
    # among the next trial's creates (1 on average)
    assert hours["warm_pools_between_trials"] * 3600 == pytest.approx(2 * 3 * 2 * 4)
    assert (warm.jobs, warm.coordinators, warm.fold_jobs) == (2 * 3 * 3 + 1, 0, 18)
    assert warm.training_instances == 2 * 3 + 1 and warm.describes_per_trial == 0
    assert not any("tuner" in note for note in warm.notes)  # no tuning job, no tuner limits


def test_the_driver_saves_the_coordinators_start_up_in_every_trial():
    amt = estimate(PlanInputs(parallel=4, rounds=120, folds=5, startup=180, train=120, coordinator_trains_fold=True),
                   warm=True)
    driver = estimate(PlanInputs(parallel=4, rounds=120, folds=5, startup=180, train=120, strategy="driver"), warm=True)
    assert driver.later_trial_seconds < amt.later_trial_seconds - 20 + 1  # the coordinator's 20-s warm start-up
    assert driver.wall_seconds < amt.wall_seconds
    assert driver.instance_hours["total"] < amt.instance_hours["total"]
    small = PlanInputs(parallel=1, rounds=2, folds=2, startup=1, train=1, strategy="driver")
    assert assumptions(small)[0].name == "fold start-up on a warm pool"  # no coordinator to start
    assert small.fold_jobs_per_trial == 2


def test_plan_and_simulate_take_the_strategy(capsys):
    args = ["-M", "2", "-N", "3", "-K", "3", "--startup", "100", "--train", "50", "--strategy", "driver", "--json"]
    assert main(["plan", *args, "--simulate"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inputs"]["strategy"] == "driver" and data["estimates"]["warm"]["coordinators"] == 0
    simulated = data["simulations"]["warm"]
    assert simulated["strategy"] == "driver" and simulated["trials"]["completed"] == 6
    assert simulated["jobs"] == {**simulated["jobs"], "coordinators": 0, "drivers": 1, "fold_jobs": 18}
    for key in ("wall_seconds", "training_limit_seconds"):
        assert simulated[key] > 0
    assert simulated["instance_hours"]["total"] > simulated["instance_hours"]["driver"] > 0
    assert main(["simulate", *args]) == 0
    assert json.loads(capsys.readouterr().out)["jobs"]["drivers"] == 1
    assert main(["simulate", *args[:-1]]) == 0
    assert "simulated (driver strategy)" in capsys.readouterr().out
    assert main(["plan", *args, "--coordinator-trains-fold"]) == 2
    assert "--coordinator-trains-fold is for --strategy amt" in capsys.readouterr().err
