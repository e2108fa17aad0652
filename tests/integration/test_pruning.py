"""Fold-level pruning on the real engine: folds handed out in stages to the warm pool, a pruned trial's later
folds never reaching a worker, pruned trials recorded in the study with their fold scores, counted, resumed
and reported (report.json, the summary table, the progress lines, warmcv.tune's cv_results)."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Hashable
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

import warmcv
from warmcv.cli import main
from warmcv.cv import cross_validate
from warmcv.cv.pruning import PruningDecision, StagedFolds, TrialPruned, rotated_order
from warmcv.data.manifest import read_manifest
from warmcv.declarations import parse_hyperparameters
from warmcv.errors import StopRequested
from warmcv.runners.local import LocalFoldRunner
from warmcv.runners.pool import WarmWorkerPool
from warmcv.runners.worker_process import WorkRequest
from warmcv.settings.run import PruningOptions, RunSettings
from warmcv.tuning.search import CV_ATTR, PRUNED_ATTR, Search
from warmcv.tuning.space import make_sampler, resolve_space
from warmcv.tuning.study import STUDY_NAME, open_study, recover_interrupted, storage_url

QUICK = {"num_boost_round": "20", "early_stopping_rounds": "0"}
# Eager pruning (prune whenever the trial is behind the best on its folds so far) after 3 completed trials,
# so that a short search on small data surely prunes.
EAGER = {"threshold": 0.45, "min_trials": 3}


class RecordingPool(WarmWorkerPool):
    """The real pool, noting every fold handed to it (what its workers are given to train) in `events`."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.events: list[tuple[str, object]] = []

    def submit(self, group: Hashable, request: WorkRequest):  # type: ignore[no-untyped-def]
        self.events.append(("handed", request.fold))
        return super().submit(group, request)


def _decide(events: list[tuple[str, object]], prune_at: int):
    def check(scores):
        events.append(("check", sorted(scores)))
        return PruningDecision(len(scores) >= prune_at, "test", len(scores), 3, 0.5, reason=f"{len(scores)} folds")
    return check


def test_folds_go_out_stage_by_stage_and_a_pruned_trials_last_fold_reaches_no_worker(prepared_census: Path) -> None:
    manifest = read_manifest(prepared_census)
    hps = parse_hyperparameters({**QUICK, "mode": "coordinator"})
    with RecordingPool(workers=2, threads=1) as pool:
        staged = StagedFolds(rotated_order(3, 1), _decide(pool.events, prune_at=2))
        with pytest.raises(TrialPruned) as pruned:
            cross_validate(LocalFoldRunner(prepared_census, pool=pool), hps, manifest, staged=staged)
        # One fold, a check on it, the next fold, a check on both: pruned, so fold 0 is never handed out.
        assert pool.events == [("handed", 1), ("check", [1]), ("handed", 2), ("check", [1, 2])]
        assert pool.busy() == []
    summary = pruned.value.summary
    assert [f.fold for f in summary.folds] == [1, 2] and summary.n_folds == 2
    assert pruned.value.decision.prune and pruned.value.decision.folds_seen == 2


def test_a_staged_cross_validation_that_goes_on_equals_the_unstaged_one(prepared_census: Path) -> None:
    manifest = read_manifest(prepared_census)
    hps = parse_hyperparameters({**QUICK, "mode": "coordinator"})
    with RecordingPool(workers=2, threads=1) as pool:
        staged = StagedFolds(rotated_order(3, 2), _decide(pool.events, prune_at=99), first=2)
        stepwise = cross_validate(LocalFoldRunner(prepared_census, pool=pool), hps, manifest, staged=staged)
        assert pool.events == [("handed", 2), ("handed", 0), ("check", [0, 2]), ("handed", 1)]
        whole = cross_validate(LocalFoldRunner(prepared_census, pool=pool), hps, manifest)
    assert [f.fold for f in stepwise.folds] == [0, 1, 2]
    assert stepwise.fold_scores == whole.fold_scores
    assert stepwise.validation_mean == whole.validation_mean and stepwise.validation_std == whole.validation_std


def test_a_stopped_runner_hands_out_no_further_stage(prepared_census: Path) -> None:
    manifest = read_manifest(prepared_census)
    hps = parse_hyperparameters({**QUICK, "mode": "coordinator"})
    with RecordingPool(workers=1, threads=1) as pool:
        runner = LocalFoldRunner(prepared_census, pool=pool)

        def stop_after_the_first_stage(scores):
            runner.stop()  # what the search does to the trials in flight on Ctrl-C
            return PruningDecision(False, "test", len(scores), 3, 0.5)

        staged = StagedFolds(range(3), stop_after_the_first_stage)
        with pytest.raises(StopRequested):
            cross_validate(runner, hps, manifest, staged=staged)
        assert [e for e in pool.events if e[0] == "handed"] == [("handed", 0)]


def _search(study, prepared: Path, pool: WarmWorkerPool, trials: int, **kwargs) -> Search:
    manifest = read_manifest(prepared)
    return Search(study, resolve_space(), QUICK, prepared, manifest, pool, trials=trials, parallel=3,
                  pruning=PruningOptions(**EAGER), **kwargs)


def test_pruned_trials_are_told_as_pruned_with_their_fold_scores_and_count_towards_the_budget(
        tmp_path: Path, prepared_census: Path) -> None:
    study = open_study(tmp_path, "Maximize", make_sampler("tpe", 0), create=True)
    reports = []
    with WarmWorkerPool(workers=2, threads=1) as pool:
        outcome = _search(study, prepared_census, pool, trials=14, on_trial=reports.append).run()
    assert outcome.completed + outcome.pruned == 14 and outcome.failed == 0
    assert outcome.pruned >= 1 and outcome.completed >= EAGER["min_trials"]
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(pruned) == outcome.pruned
    for trial in pruned:
        folds = trial.user_attrs[CV_ATTR]["folds"]
        assert 1 <= len(folds) < 3
        assert trial.intermediate_values == {f["fold"]: f["validation_score"] for f in folds}
        decision = trial.user_attrs[PRUNED_ATTR]
        assert decision["prune"] and decision["folds_seen"] == len(folds) and decision["rule"] == "paired-bound"
        assert decision["best_trial"] in {t.number for t in complete}
        # The trial's first fold is fold (trial number mod K): trials start their folds in turn.
        assert trial.number % 3 in trial.intermediate_values
    for trial in complete:  # a completed trial's per-fold scores are in Optuna's place for them too
        assert trial.intermediate_values == {f["fold"]: f["validation_score"] for f in trial.user_attrs[CV_ATTR]["folds"]}
    states = [r.state for r in reports]
    assert states.count("pruned") == outcome.pruned and states.count("complete") == outcome.completed
    assert all(r.pruned is not None for r in reports if r.state == "pruned")
    assert reports[-1].counted == 14 and reports[-1].pruned_so_far == outcome.pruned


def test_a_stop_mid_search_requeues_the_trials_in_flight_and_keeps_the_pruned_ones(
        tmp_path: Path, prepared_census: Path) -> None:
    study = open_study(tmp_path, "Maximize", make_sampler("tpe", 0), create=True)
    stop = threading.Event()
    seen = []

    def stop_once_one_is_pruned(report) -> None:
        seen.append(report.state)
        if report.state == "pruned":
            stop.set()

    with WarmWorkerPool(workers=2, threads=1) as pool:
        first = _search(study, prepared_census, pool, trials=40, stop=stop, on_trial=stop_once_one_is_pruned).run()
    assert first.stopped and first.pruned >= 1
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    kept = {t.number: dict(t.intermediate_values) for t in study.trials if t.state == TrialState.PRUNED}

    resumed = open_study(tmp_path, "Maximize", make_sampler("tpe", 1), create=False)
    assert recover_interrupted(resumed) == []
    counted = first.completed + first.pruned
    with WarmWorkerPool(workers=2, threads=1) as pool:
        second = _search(resumed, prepared_census, pool, trials=counted + 3).run()
    assert second.completed + second.pruned == counted + 3
    after = {t.number: dict(t.intermediate_values) for t in resumed.trials if t.state == TrialState.PRUNED}
    assert {n: after[n] for n in kept} == kept  # the pruned trials stay as they were, not run again
    retried = {t.system_attrs.get("failed_trial") for t in resumed.trials}
    assert not retried & set(kept)


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory: pytest.TempPathFactory, census_csv: Path):
    run_dir = tmp_path_factory.mktemp("pruned") / "run"
    result = warmcv.tune(census_csv, target="income", folds=3, trials=12, out=run_dir, progress=False,
                         fixed={"num_boost_round": 20, "early_stopping_rounds": 0}, prune=EAGER)
    return run_dir, result


def test_tune_reports_pruned_trials_in_cv_results_and_report_json(pruned_run) -> None:
    run_dir, result = pruned_run
    report = json.loads((run_dir / "report.json").read_text())
    counts = report["search"]["counts"]
    assert counts["pruned"] >= 1 and counts["complete"] + counts["pruned"] == 12
    pruning = report["search"]["pruning"]
    assert pruning["on"] and pruning["rule"] == "paired-bound" and pruning["threshold"] == 0.45
    assert pruning["pruned_trials"] == counts["pruned"] and pruning["folds_of_counted_trials"] == 36
    records = [r for r in report["trials"] if r["state"] == "pruned"]
    assert pruning["folds_skipped"] == sum(3 - len(r["cv"]["folds"]) for r in records)
    for record in records:
        assert record["value"] is None and record["pruned"]["prune"] and record["cv"]["n_folds"] < 3

    frame = result.cv_results
    rows = frame[frame["state"] == "pruned"]
    assert len(rows) == counts["pruned"]
    assert rows["mean_test_score"].isna().all() and rows["std_test_score"].isna().all()
    for number, row in rows.iterrows():
        record = next(r for r in records if r["number"] == number)
        ran = {f["fold"]: f["validation_score"] for f in record["cv"]["folds"]}
        assert row["folds_run"] == len(ran)
        for fold in range(3):
            value = row[f"split{fold}_test_score"]
            assert value == ran[fold] if fold in ran else math.isnan(value)
    complete = frame[frame["state"] == "complete"]
    assert complete["mean_test_score"].notna().all() and (complete["folds_run"] == 3).all()
    assert result.best_trial in complete.index and result.best_score == complete["mean_test_score"].max()


def test_the_summary_table_and_progress_lines_show_pruned_trials(pruned_run, capsys: pytest.CaptureFixture) -> None:
    run_dir, _ = pruned_run
    assert main(["run", "--resume", str(run_dir), "--trials", "15", "--no-progress"]) == 0
    out = capsys.readouterr().out
    report = json.loads((run_dir / "report.json").read_text())
    pruned = report["search"]["counts"]["pruned"]
    assert f"{pruned} pruned (" in out and "folds skipped)" in out
    lines = [line for line in out.splitlines() if line.startswith("trial #")]
    assert len(lines) == 3  # only the 3 new trials ran
    for line in lines:
        if "pruned after" in line:
            assert " of 3 folds: auc " in line and "on the same fold" in line


def test_a_resumed_run_keeps_its_pruned_trials_and_does_not_redo_them(pruned_run) -> None:
    run_dir, result = pruned_run
    before = {t.number: dict(t.intermediate_values) for t in result.study.trials if t.state == TrialState.PRUNED}
    main(["run", "--resume", str(run_dir), "--trials", "17", "--no-progress"])
    study = optuna.load_study(storage=storage_url(run_dir), study_name=STUDY_NAME)
    after = {t.number: dict(t.intermediate_values) for t in study.trials if t.state == TrialState.PRUNED}
    assert {n: after[n] for n in before} == before
    counted = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == 17 and len(study.trials) == 17  # nothing re-run, nothing failed


def test_pruning_can_be_switched_on_a_resume_but_not_its_rule(tmp_path: Path, census_csv: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    common = ["--folds", "3", "--set", "num_boost_round=10", "--set", "early_stopping_rounds=0", "--no-progress"]
    assert main(["run", "--data", str(census_csv), "--target", "income", "--out", str(run_dir), "--trials", "2",
                 "--no-prune", *common]) == 0
    assert RunSettings.load(run_dir).prune is False
    capsys.readouterr()
    assert main(["run", "--resume", str(run_dir), "--prune-rule", "wilcoxon"]) == 2
    assert "drop --prune-rule" in capsys.readouterr().err
    assert main(["run", "--resume", str(run_dir), "--trials", "3", "--prune", "--no-progress"]) == 0
    assert "fold-level pruning (paired-bound)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["--prune-threshold", "1.5"], "invalid pruning settings in --prune-rule/--prune-threshold: threshold = 1.5: "
                                   "must be less than 1"),
    (["--prune-threshold", "0"], "threshold = 0.0: must be more than 0"),
])
def test_bad_pruning_settings_fail_before_any_trial(tmp_path: Path, census_csv: Path, capsys: pytest.CaptureFixture,
                                                    argv: list[str], words: str) -> None:
    run_dir = tmp_path / "run"
    assert main(["run", "--data", str(census_csv), "--target", "income", "--out", str(run_dir), "--prune",
                 *argv]) == 2
    assert words in capsys.readouterr().err
    assert not (run_dir / "study.db").exists()


def test_tune_refuses_a_prune_value_it_cannot_read(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": range(40), "y": [0, 1] * 20})
    with pytest.raises(warmcv.UserInputError, match=r"prune='yes': give True, False or a mapping"):
        warmcv.tune(frame, target="y", out=tmp_path / "r", prune="yes")  # type: ignore[arg-type]
    with pytest.raises(warmcv.UserInputError, match="min_trials = 0: must be at least 1"):
        warmcv.tune(frame, target="y", out=tmp_path / "r", prune={"min_trials": 0})


def test_a_run_json_from_before_pruning_resumes_unpruned() -> None:
    saved = {"data": "/d.csv", "target": "y", "prepare": {"target": "y"}, "space": {}, "fixed": {}}
    settings = RunSettings.parse(saved, "run.json")
    assert settings.prune is False and settings.pruning == PruningOptions()


def test_stages_must_name_every_fold_once(prepared_census: Path) -> None:
    manifest = read_manifest(prepared_census)
    hps = parse_hyperparameters({**QUICK, "mode": "coordinator"})
    with RecordingPool(workers=1, threads=1) as pool:
        staged = StagedFolds([0, 1], _decide(pool.events, prune_at=99))
        with pytest.raises(ValueError, match=r"each of the 3 folds once, got \[0, 1\]"):
            cross_validate(LocalFoldRunner(prepared_census, pool=pool), hps, manifest, staged=staged)
        assert pool.events == []
