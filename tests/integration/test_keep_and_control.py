"""What users keep and control, end to end from the command line (issue 14's must-holds).

- `warmcv run --id-column patient_id --trials 5 --predict new.csv --mlflow file://...`: predictions carry the
  IDs in order, oof_predictions.parquet has every training row and a pooled AUC within 0.02 of the CV mean,
  report.json holds the feature importances without the ID, MLflow holds 5 nested runs under one parent
  (and --resume continues that parent);
- a best model no better than the constant model is not registered (exit status 3) unless forced;
- scikit-learn's wine (178 rows) with 2 trials gives a model better than chance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine, make_classification
from sklearn.metrics import roc_auc_score

from warmcv.cli import main
from warmcv.model.artifacts import TrainedModel
from warmcv.model.registry import LocalModelRegistry


@pytest.fixture(scope="module")
def patients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("patients")
    X, y = make_classification(n_samples=1500, n_features=8, n_informative=5, random_state=3)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)])
    ids = np.random.default_rng(0).permutation(100_000)[:1500]
    df.insert(3, "patient_id", [f"P{n:05d}" for n in ids])  # not first: the ID may be anywhere in the data
    df["target"] = y
    df.iloc[:1200].to_csv(folder / "train.csv", index=False)
    df.iloc[1200:].drop(columns="target").sample(frac=1.0, random_state=1).to_csv(folder / "new.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def tracked_run(patients: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # warmcv sets it for a file store; undone after
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = tmp_path_factory.mktemp("mlflow") / "mlruns"
    run_dir = patients / "runs" / "tracked"
    code = main(["run", "--data", str(patients / "train.csv"), "--target", "target", "--id-column", "patient_id",
                 "--trials", "5", "--predict", str(patients / "new.csv"), "--mlflow", store.as_uri(),
                 "--out", str(run_dir), "--no-progress"])
    yield run_dir, store, code
    mp.undo()


def mlflow_runs(store: Path, report: dict) -> tuple[object, list]:
    from mlflow import MlflowClient

    client = MlflowClient(store.as_uri())
    runs = client.search_runs([report["mlflow"]["experiment_id"]], max_results=1000)
    [parent] = [r for r in runs if r.data.tags.get("warmcv.role") == "study"]
    return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def test_predictions_carry_the_ids_in_the_inputs_order(tracked_run, patients: Path) -> None:
    run_dir, _, code = tracked_run
    assert code == 0
    predictions = pd.read_csv(run_dir / "predictions.csv")
    new = pd.read_csv(patients / "new.csv")
    assert list(predictions.columns) == ["patient_id", "probability_0", "probability_1"]
    assert predictions["patient_id"].tolist() == new["patient_id"].tolist()
    expected = TrainedModel.load(run_dir / "model").predict(new)
    np.testing.assert_allclose(predictions[["probability_0", "probability_1"]].to_numpy(), expected.to_numpy(),
                               rtol=1e-9)


def test_oof_predictions_cover_every_training_row_and_agree_with_the_cv_mean(tracked_run, patients: Path) -> None:
    run_dir, _, _ = tracked_run
    oof = pd.read_parquet(run_dir / "oof_predictions.parquet")
    train = pd.read_csv(patients / "train.csv")
    report = json.loads((run_dir / "report.json").read_text())
    assert list(oof.columns) == ["patient_id", "target", "fold", "probability_0", "probability_1"]
    assert len(oof) == len(train) and oof["patient_id"].tolist() == train["patient_id"].tolist()
    assert (oof["target"] == train["target"]).all()
    assert sorted(oof["fold"].unique()) == [0, 1, 2, 3, 4] and oof["probability_1"].notna().all()
    pooled = roc_auc_score(oof["target"], oof["probability_1"])
    assert abs(pooled - report["best"]["cv_mean"]) < 0.02
    # each fold's own AUC is the fold score the search recorded
    for fold in report["best"]["folds"]:
        rows = oof[oof["fold"] == fold["fold"]]
        assert roc_auc_score(rows["target"], rows["probability_1"]) == pytest.approx(fold["validation_score"],
                                                                                    abs=1e-12)
    assert report["oof_predictions"] == {"trial": report["best"]["trial"], "rows": 1200, "skipped": None,
                                         "path": str(run_dir / "oof_predictions.parquet")}
    kept = sorted(p.name for p in (run_dir / ".best_trial").iterdir())
    assert kept == [f"trial-{report['best']['trial']}.json", f"trial-{report['best']['trial']}.parquet"]


def test_report_holds_feature_importance_without_the_id(tracked_run) -> None:
    run_dir, _, _ = tracked_run
    report = json.loads((run_dir / "report.json").read_text())
    importance = report["feature_importance"]
    assert importance["trial"] == report["best"]["trial"] and importance["folds"] == [0, 1, 2, 3, 4]
    assert sorted(f["feature"] for f in importance["features"]) == [f"x{i}" for i in range(8)]
    for feature in importance["features"]:
        for kind in ("gain", "split"):
            assert len(feature[kind]["folds"]) == 5
            assert feature[kind]["mean"] == pytest.approx(np.mean(feature[kind]["folds"]))
            assert feature[kind]["std"] == pytest.approx(np.std(feature[kind]["folds"]))
    gains = [f["gain"]["mean"] for f in importance["features"]]
    assert gains == sorted(gains, reverse=True) and gains[0] > 0
    assert Path(report["plots"]["feature_importance"]["path"]).read_bytes()[:4] == b"\x89PNG"
    model = TrainedModel.load(run_dir / "model")
    assert "patient_id" not in [f["name"] for f in model.metadata.features]
    assert model.metadata.id_columns == ["patient_id"]


def test_mlflow_holds_five_nested_runs_under_one_parent(tracked_run) -> None:
    run_dir, store, _ = tracked_run
    report = json.loads((run_dir / "report.json").read_text())
    parent, trials = mlflow_runs(store, report)
    assert parent.info.run_id == report["mlflow"]["run_id"] and parent.info.status == "FINISHED"
    assert len(trials) == 5 and {r.info.status for r in trials} == {"FINISHED"}
    assert sorted(int(r.data.tags["warmcv.trial"]) for r in trials) == [0, 1, 2, 3, 4]
    by_number = {int(r.data.tags["warmcv.trial"]): r for r in trials}
    for record in report["trials"]:
        run = by_number[record["number"]]
        assert run.data.metrics["auc_cv_mean"] == pytest.approx(record["value"], abs=1e-12)
        assert run.data.metrics["auc_cv_std"] == pytest.approx(record["std"], abs=1e-12)
        for fold in record["cv"]["folds"]:
            assert run.data.metrics[f"auc_fold_{fold['fold']}"] == pytest.approx(fold["validation_score"], abs=1e-12)
        assert run.data.metrics["seconds"] > 0
        assert run.data.params["num_leaves"] == record["hyperparameters"]["num_leaves"]
    best = [r for r in trials if r.data.tags.get("warmcv.best") == "true"]
    assert [int(r.data.tags["warmcv.trial"]) for r in best] == [report["best"]["trial"]]
    assert parent.data.metrics["auc_cv_mean"] == report["best"]["cv_mean"]
    assert parent.data.params["fixed.num_boost_round"] == "1000" and parent.data.params["id_columns"] == "patient_id"
    from mlflow import MlflowClient

    artifacts = {a.path for a in MlflowClient(store.as_uri()).list_artifacts(parent.info.run_id)}
    assert {"model.tar.gz", "report.json", "plots"} <= artifacts


def test_resume_continues_the_same_parent_run(tracked_run, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, store, _ = tracked_run
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = json.loads((run_dir / "report.json").read_text())
    assert json.loads((run_dir / "mlflow.json").read_text())["run_id"] == first["mlflow"]["run_id"]
    assert main(["run", "--resume", str(run_dir), "--trials", "7", "--no-progress"]) == 0
    report = json.loads((run_dir / "report.json").read_text())
    assert report["mlflow"]["run_id"] == first["mlflow"]["run_id"]
    parent, trials = mlflow_runs(store, report)
    assert len(trials) == 7 and parent.info.status == "FINISHED"
    assert [int(r.data.tags["warmcv.trial"]) for r in trials if r.data.tags.get("warmcv.best") == "true"] == [
        report["best"]["trial"]]


def test_a_constant_best_model_is_not_registered_unless_forced(patients: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "constant"
    args = ["run", "--data", str(patients / "train.csv"), "--target", "target", "--id-column", "patient_id",
            "--trials", "2", "--set", "min_data_in_leaf=5000", "--predict", str(patients / "new.csv"),
            "--out", str(run_dir), "--no-progress", "--no-mlflow"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "not registered: the best trial #" in err and "constant model (no split in any tree" in err
    assert f"warmcv run --resume {run_dir} --force-register" in err
    report = json.loads((run_dir / "report.json").read_text())
    assert report["best"]["constant_model"] is True and report["constant_model"]["cv_mean"] == 0.5
    assert report["registry"]["registered"] is False and "constant model" in report["registry"]["refused"]
    assert report["predictions"]["path"] is None and not (run_dir / "predictions.csv").exists()
    assert all(t["constant_model"] for t in report["trials"])
    registry = LocalModelRegistry(run_dir.parent / "registry")
    assert registry.versions("train-target") == []
    assert (run_dir / "model.tar.gz").is_file()  # kept for inspection

    assert main(["run", "--resume", str(run_dir), "--force-register", "--no-progress"]) == 0
    report = json.loads((run_dir / "report.json").read_text())
    assert report["registry"]["registered"] is True and report["registry"]["forced"] is True
    assert len(registry.versions("train-target")) == 1 and (run_dir / "predictions.csv").is_file()


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    load_wine(as_frame=True).frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("extra, metric", [([], "rmse"), (["--task", "multiclass", "--set", "metric=auc"], "auc"),
                                           (["--task", "multiclass"], "logloss")])
def test_wine_with_two_trials_gives_a_model_better_than_chance(wine_csv: Path, tmp_path: Path, extra: list[str],
                                                              metric: str, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "wine"
    assert main(["run", "--data", str(wine_csv), "--target", "target", "--trials", "2", "--out", str(run_dir),
                 "--no-progress", "--no-mlflow", *extra]) == 0
    report = json.loads((run_dir / "report.json").read_text())
    out = capsys.readouterr().out
    assert "min_data_in_leaf: searching 1..7 instead of 5..200 (142 training rows in the smallest fold)" in out
    assert report["metric"]["name"] == metric and report["registry"]["registered"] is True
    assert report["best"]["constant_model"] is False and report["constant_model"]["beaten"] is True
    baseline, best = report["constant_model"]["cv_mean"], report["best"]["cv_mean"]
    if metric == "auc":
        assert baseline == 0.5 and best > 0.9
    else:  # lower is better: well below the constant model's error
        assert best < 0.5 * baseline
    assert report["search"]["space"]["num_leaves"] == {"low": 4, "high": 17, "scaling": "Logarithmic"}
    for trial in report["trials"]:
        assert trial["params"]["num_leaves"] <= 2 ** trial["params"]["max_depth"]


def test_any_lightgbm_parameter_trains_and_a_misspelt_one_is_refused(patients: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """`--set extra_trees=true` trains with extra trees (the final model's parameters show it, and so do the
    folds': the best trial's hyperparameters carry it); `--set extra_tress=true` is refused naming extra_trees."""
    run_dir = tmp_path / "extra"
    common = ["run", "--data", str(patients / "train.csv"), "--target", "target", "--id-column", "patient_id",
              "--trials", "2", "--no-progress", "--no-mlflow", "--set", "num_boost_round=20"]
    assert main([*common, "--out", str(run_dir), "--set", "extra_trees=true", "--set", "cat_l2=5"]) == 0
    model = TrainedModel.load(run_dir / "model")
    text = model.booster.model_to_string()
    assert "[extra_trees: 1]" in text and "[cat_l2: 5]" in text
    report = json.loads((run_dir / "report.json").read_text())
    assert report["best"]["hyperparameters"]["extra_trees"] == "true"
    assert all(t["hyperparameters"]["extra_trees"] == "true" for t in report["trials"])

    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "typo"), "--set", "extra_tress=true"]) == 2
    err = capsys.readouterr().err
    assert "unknown hyperparameter 'extra_tress' (did you mean 'extra_trees'?)" in err
    assert not (tmp_path / "typo").exists()  # nothing half-written looks like a run
