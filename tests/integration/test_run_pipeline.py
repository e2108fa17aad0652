"""`warmcv run` end to end on real (census-like) data: every output it promises, checked for content."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from warmcv.cli import main
from warmcv.model.artifacts import TrainedModel
from warmcv.model.registry import LocalModelRegistry
from warmcv.tuning.pipeline import Run, RunSettings
from warmcv.tuning.space import describe, resolve_space

PNG = b"\x89PNG\r\n\x1a\n"


def _settings(data: Path, **changes) -> RunSettings:
    space = resolve_space(["num_leaves=8:64:log", "learning_rate=0.05:0.3:log"],
                          exclude=["max_depth", "min_gain_to_split", "lambda_l1"])
    base = dict(data=str(data), target="income", prepare={"target": "income", "folds": 3, "seed": 1},
                space=describe(space), fixed={"num_boost_round": "200", "early_stopping_rounds": "10"},
                trials=6, parallel=2, workers=2, seed=3, predict=str(data))
    return RunSettings(**{**base, **changes})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, census_csv: Path):
    run_dir = tmp_path_factory.mktemp("runs") / "census"
    seen = []
    result = Run(run_dir, _settings(census_csv), resume=False, on_trial=seen.append).execute()
    return run_dir, result, seen


def test_report_has_every_trial_with_its_fold_scores(finished_run) -> None:
    run_dir, result, seen = finished_run
    report = json.loads((run_dir / "report.json").read_text())
    assert report == json.loads(json.dumps(result.report))
    assert report["metric"] == {"name": "auc", "direction": "Maximize"}
    assert report["search"]["counts"] == {"complete": 6, "pruned": 0, "failed": 0, "interrupted": 0}
    assert len(report["trials"]) == 6 and len(seen) == 6
    for trial in report["trials"]:
        folds = trial["cv"]["folds"]
        assert [f["fold"] for f in folds] == [0, 1, 2]
        assert trial["value"] == pytest.approx(sum(f["validation_score"] for f in folds) / 3, abs=1e-12)
        assert 0.5 < trial["value"] < 1.0 and trial["std"] >= 0
        assert set(trial["params"]) == set(report["search"]["space"])
        assert trial["hyperparameters"]["num_boost_round"] == "200"
        assert trial["seconds"] > 0
    best = max(report["trials"], key=lambda t: t["value"])
    assert report["best"]["trial"] == best["number"] and report["best"]["cv_mean"] == best["value"]
    assert report["best"]["folds"] == best["cv"]["folds"]
    for key in ("prepare_seconds", "search_seconds", "final_fit_seconds", "predict_seconds", "total_seconds"):
        assert report["timings"][key] > 0
    assert 0 < report["timings"]["worker_utilisation"] <= 1.0
    assert report["search"]["workers"] == 2 and report["search"]["threads_per_worker"] == 1


def test_final_model_is_trained_on_all_rows_with_the_best_parameters(finished_run, census_csv: Path) -> None:
    run_dir, result, _ = finished_run
    report = result.report
    model = TrainedModel.load(run_dir / "model")
    meta = model.metadata
    assert meta.fold == "all"
    assert meta.cross_validation["validation_mean"] == report["best"]["cv_mean"]
    assert meta.cross_validation["trial"] == report["best"]["trial"]
    rounds = report["best"]["recommended_num_boost_round"]
    assert meta.hyperparameters["num_boost_round"] == str(rounds)
    for name, value in report["best"]["params"].items():
        assert meta.params[name] == pytest.approx(value)
    with tarfile.open(run_dir / "model.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["model.json", "model.txt"]  # SageMaker's layout: files at the root


def test_registry_entry_carries_the_cv_metrics(finished_run) -> None:
    run_dir, result, _ = finished_run
    registry = LocalModelRegistry(run_dir.parent / "registry")
    [entry] = registry.versions("census-income")
    assert entry["ModelApprovalStatus"] == "PendingManualApproval"
    assert entry["ModelMetrics"]["cv_mean"] == result.report["best"]["cv_mean"]
    assert entry["ModelMetrics"]["cv_std"] == result.report["best"]["cv_std"]
    assert entry["ModelDataUrl"] == (run_dir / "model.tar.gz").resolve().as_uri()
    assert entry["ModelDataSha256"] == result.report["final_model"]["sha256"]


def test_predictions_file_matches_the_model(finished_run, census_csv: Path) -> None:
    run_dir, _, _ = finished_run
    predictions = pd.read_csv(run_dir / "predictions.csv")
    raw = pd.read_csv(census_csv)
    assert len(predictions) == len(raw)
    expected = TrainedModel.load(run_dir / "model").predict(raw)
    pd.testing.assert_frame_equal(predictions, expected.reset_index(drop=True), check_exact=False, rtol=1e-9)


def test_the_workers_shared_datasets_are_gone_after_the_run(finished_run) -> None:
    run_dir, _, _ = finished_run
    assert not (run_dir / ".datasets").exists()


def test_plots_are_pngs(finished_run) -> None:
    run_dir, result, _ = finished_run
    for name in ("optimization_history", "fold_spread", "param_importances"):
        entry = result.report["plots"][name]
        assert entry["skipped"] is None
        assert Path(entry["path"]).read_bytes()[:8] == PNG
    assert set(result.report["param_importances"]) == set(result.report["search"]["space"])


def test_few_trials_skip_the_importance_plot_with_a_reason(tmp_path: Path, census_csv: Path) -> None:
    result = Run(tmp_path / "run", _settings(census_csv, trials=2, predict=None), resume=False).execute()
    plots = result.report["plots"]
    assert plots["param_importances"] == {"path": None, "skipped": "2 completed trial(s); parameter importances need at least 5"}
    assert Path(plots["optimization_history"]["path"]).read_bytes()[:8] == PNG
    assert result.report["predictions"] is None and not (tmp_path / "run" / "predictions.csv").exists()


def test_example_runs_end_to_end_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "--example", "--trials", "3", "--folds", "3", "--out", str(tmp_path / "ex"), "--no-progress",
                 "--search", "learning_rate=0.1:0.3:log"])  # keeps the rounds (and the test) short
    out = capsys.readouterr().out
    assert code == 0
    assert "3 trials completed, 0 failed; 3-fold CV, auc" in out
    assert "registered: census-income-example version 1" in out
    report = json.loads((tmp_path / "ex" / "report.json").read_text())
    assert report["predictions"]["rows"] == 1000  # the generated hold-out sample, without the target
    assert "income" not in pd.read_csv(tmp_path / "ex" / "example_holdout.csv").columns


def test_regression_minimises_and_predicts_values(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x1": rng.normal(size=600), "x2": rng.uniform(size=600),
                          "city": rng.choice(["a", "b", None], size=600)})
    frame["price"] = 3 * frame.x1 + np.sin(6 * frame.x2) + (frame.city == "a") + rng.normal(0, 0.3, 600)
    frame.to_parquet(tmp_path / "houses.parquet")
    space = resolve_space(["learning_rate=0.1:0.3:log"], exclude=["max_depth", "min_gain_to_split"])
    settings = RunSettings(data=str(tmp_path / "houses.parquet"), target="price",
                           prepare={"target": "price", "folds": 3, "seed": 0}, space=describe(space),
                           fixed={"num_boost_round": "300", "early_stopping_rounds": "10"}, trials=4,
                           predict=str(tmp_path / "houses.parquet"))
    report = Run(tmp_path / "run", settings, resume=False).execute().report
    assert report["metric"] == {"name": "rmse", "direction": "Minimize"}
    assert report["best"]["cv_mean"] == min(t["value"] for t in report["trials"])
    assert report["registry"]["group"] == "houses-price"
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert list(predictions.columns) == ["prediction"] and len(predictions) == 600
    rmse = float(np.sqrt(((predictions["prediction"] - frame["price"]) ** 2).mean()))
    assert rmse < frame["price"].std()  # it learned something


def test_progress_bar_shows_the_best_score(capsys: pytest.CaptureFixture) -> None:
    from warmcv.tuning.progress import TrialProgress
    from warmcv.tuning.search import TrialReport

    progress = TrialProgress(bar=True)
    progress.start("auc", budget=3, done=1)
    progress(TrialReport(4, "complete", 0.81, 0.01, 1.0, None, 0.81, 4, 2, 3))
    progress(TrialReport(5, "failed", None, None, 1.0, "fold 1 failed: worker died\ntraceback", 0.81, 4, 3, 3))
    progress.close()
    captured = capsys.readouterr()
    assert "best auc 0.810000 (#4)" in captured.err and "3/3" in captured.err  # the bar, on stderr
    assert "trial #5 failed: fold 1 failed: worker died" in captured.out and "traceback" not in captured.out


def test_registry_command_lists_and_approves(finished_run, capsys: pytest.CaptureFixture) -> None:
    run_dir, _, _ = finished_run
    registry = str(run_dir.parent / "registry")
    assert main(["registry", "list", "--registry", registry]) == 0
    assert "census-income" in capsys.readouterr().out
    assert main(["registry", "approve", "census-income", "1", "--registry", registry]) == 0
    assert main(["registry", "list", "--json", "--registry", registry]) == 0
    [entry] = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert entry["ModelApprovalStatus"] == "Approved"
    assert main(["registry", "reject", "census-income", "7", "--registry", registry]) == 2
    assert "has no version 7" in capsys.readouterr().err
