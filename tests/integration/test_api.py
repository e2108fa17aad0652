"""The Python API (`import warmcv`) from a script, from `python -` and against scikit-learn.

Real runs on small data: the same engine, run folder and resume as `warmcv run`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.datasets import make_classification
from sklearn.model_selection import StratifiedKFold, cross_val_score

import warmcv
from tests.conftest import subprocess_env
from warmcv.cli import main


def frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    X, y = make_classification(n_samples=rows, n_features=6, n_informative=4, random_state=seed)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    df["target"] = y
    return df


FAST = {"fixed": {"num_boost_round": 30, "early_stopping_rounds": 0}}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("api") / "run"
    first = warmcv.tune(frame(), target="target", folds=5, trials=6, out=out, progress=False, **FAST)
    return out, first


def test_tune_returns_the_best_trial_its_scores_and_a_model(tuned) -> None:
    out, r = tuned
    assert r.metric == "auc" and r.direction == "Maximize"
    assert len(r.cv_results) == 6 and set(r.cv_results["state"]) == {"complete"}
    best_row = r.cv_results.loc[r.best_trial]
    assert best_row["mean_test_score"] == r.best_score == r.cv_results["mean_test_score"].max()
    assert best_row["std_test_score"] == r.best_std
    splits = [best_row[f"split{i}_test_score"] for i in range(5)]
    assert np.mean(splits) == pytest.approx(r.best_score, abs=1e-12)
    assert np.std(splits) == pytest.approx(r.best_std, abs=1e-12)
    assert set(r.best_params) == {c.removeprefix("param_") for c in r.cv_results.columns if c.startswith("param_")}
    assert r.best_hyperparameters["num_boost_round"] == "30"
    assert len(r.study.trials) == 6 and r.study.best_trial.number == r.best_trial
    assert r.report["best"]["trial"] == r.best_trial and (out / "report.json").is_file()
    probabilities = r.model.predict(frame(50, seed=1).drop(columns="target"))
    assert list(probabilities.columns) == ["probability_0", "probability_1"]
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_resume_continues_to_the_new_budget_and_keeps_every_trial(tuned) -> None:
    out, first = tuned
    again = warmcv.tune(frame(), target="target", folds=5, trials=8, out=out, resume=True, progress=False, **FAST)
    assert len(again.cv_results) == 8
    pd.testing.assert_frame_equal(again.cv_results.loc[list(first.cv_results.index)].drop(columns="mean_fit_time"),
                                  first.cv_results.drop(columns="mean_fit_time"))
    with pytest.raises(warmcv.UserInputError, match="started with a different DataFrame"):
        warmcv.tune(frame(seed=5), target="target", trials=9, out=out, resume=True, progress=False, **FAST)
    with pytest.raises(warmcv.UserInputError, match=r"prepare \(the run has"):
        warmcv.tune(frame(), target="target", folds=3, trials=9, out=out, resume=True, progress=False, **FAST)


def test_the_cli_resumes_a_notebook_run(tuned, capsys: pytest.CaptureFixture) -> None:
    out, _ = tuned
    assert main(["run", "--resume", str(out), "--trials", "9", "--no-progress"]) == 0
    reopened = warmcv.tune(out=out, resume=True, trials=9, progress=False)
    assert len(reopened.cv_results) == 9


def test_load_model_from_the_archive_predicts_what_the_result_does(tuned) -> None:
    out, r = tuned
    X = frame(80, seed=2).drop(columns="target")
    model = warmcv.load_model(out / "model.tar.gz")
    pd.testing.assert_frame_equal(model.predict(X), r.model.predict(X))
    labels = model.predict_labels(X)
    assert set(labels) <= {0, 1} and len(labels) == 80
    assert (labels == r.model.predict(X).to_numpy().argmax(axis=1)).all()
    assert warmcv.load_model(out / "model").predict(X).equals(model.predict(X))


def test_cross_validate_equals_scikit_learns_cross_val_score() -> None:
    df = frame(700, seed=3)
    params = {"num_leaves": 15, "learning_rate": 0.08, "min_data_in_leaf": 12, "num_boost_round": 40,
              "feature_fraction": 0.8, "lambda_l2": 0.5, "seed": 3}
    result = warmcv.cross_validate(df, target="target", params=params)
    estimator = LGBMClassifier(num_leaves=15, learning_rate=0.08, min_child_samples=12, n_estimators=40,
                               colsample_bytree=0.8, reg_lambda=0.5, seed=3, n_jobs=1, deterministic=True,
                               feature_pre_filter=False, verbose=-1)
    expected = cross_val_score(estimator, df.drop(columns="target"), df["target"],
                               cv=StratifiedKFold(5, shuffle=True, random_state=0), scoring="roc_auc")
    assert result.metric == "auc" and len(result.scores) == 5
    assert result.scores == pytest.approx(list(expected), abs=1e-9)
    assert result.mean == pytest.approx(expected.mean(), abs=1e-9)
    assert result.std == pytest.approx(expected.std(), abs=1e-9)


def test_cross_validate_uses_declared_defaults_with_no_early_stopping() -> None:
    result = warmcv.cross_validate(frame(300), target="target", folds=3)
    assert result.best_iterations == [100, 100, 100]  # num_boost_round's declared default, never stopped early


@pytest.mark.parametrize("call, message", [
    (lambda: warmcv.cross_validate(frame(), target="tagret"), "target column 'tagret' not found"),
    (lambda: warmcv.cross_validate(frame(), target="target", params={"num_leaves": 1}), "num_leaves=1"),
    (lambda: warmcv.cross_validate(frame(), target="target", params={"num_leafs": 8}), "did you mean 'num_leaves'"),
    (lambda: warmcv.cross_validate(frame(), target="target", folds=1), "folds = 1: must be at least 2"),
    (lambda: warmcv.tune(frame(), target="target", trials=0, out=None, progress=False),
     "trials = 0: must be at least 1"),
    (lambda: warmcv.cross_validate(42, target="target"), "data must be a pandas DataFrame or a path"),
    (lambda: warmcv.load_model("/nonexistent/model.tar.gz"), "no such model folder"),
])
def test_bad_input_raises_a_user_input_error_with_the_clis_message(call, message: str) -> None:
    with pytest.raises(warmcv.UserInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_import_warmcv_is_light() -> None:
    code = "import sys, warmcv; print(sorted(m for m in ('lightgbm', 'pandas', 'optuna', 'pydantic') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(),
                            check=True)
    assert result.stdout.strip() == "[]"
    assert callable(warmcv.tune) and "tune" in dir(warmcv)


SCRIPT = """
import pandas as pd, warmcv
from sklearn.datasets import make_classification
X, y = make_classification(n_samples=300, n_features=5, random_state=0)
df = pd.DataFrame(X, columns=list("abcde")); df["target"] = y
r = warmcv.tune(df, target="target", folds=3, trials=2, out={out!r}, progress=False,
                fixed={{"num_boost_round": 20}})
r = warmcv.tune(df, target="target", folds=3, trials=3, out={out!r}, resume=True, progress=False,
                fixed={{"num_boost_round": 20}})
cv = warmcv.cross_validate(df, target="target", folds=3, params={{"num_boost_round": 20}})
m = warmcv.load_model({out!r} + "/model.tar.gz")
print("rows", len(r.cv_results), "cv", round(cv.mean, 6), "same", m.predict(df).equals(r.model.predict(df)))
"""


@pytest.mark.parametrize("how", ["stdin", "unguarded script"])
def test_works_from_python_stdin_and_from_an_unguarded_script(tmp_path: Path, how: str) -> None:
    """Worker processes must not re-run the parent's main module (python - has none on disk)."""
    code = textwrap.dedent(SCRIPT.format(out=str(tmp_path / "run")))
    if how == "stdin":
        result = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, cwd=tmp_path,
                                env=subprocess_env(), timeout=300)
    else:
        (tmp_path / "script.py").write_text(code)
        result = subprocess.run([sys.executable, "script.py"], capture_output=True, text=True, cwd=tmp_path,
                                env=subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rows 3 cv 0." in result.stdout and "same True" in result.stdout
    assert "Traceback" not in result.stderr
