"""The coordinator's average equals scikit-learn's cross_validate of LGBMClassifier/LGBMRegressor on the same folds.

The coordinator runs for real (local fold runner, warm worker processes); scikit-learn runs the
LightGBM estimator on the same folds with the same parameters (warmcv name -> sklearn alias).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.model_selection import cross_validate

from warmcv.cv import cross_validate as coordinator_cross_validate
from warmcv.data.manifest import PreparedData, read_manifest
from warmcv.data.prepare import PrepareOptions, prepare
from warmcv.declarations import parse_hyperparameters
from warmcv.examples import make_census_like
from warmcv.runners.local import LocalFoldRunner
from warmcv.runners.pool import WarmWorkerPool

PARAMS = {"num_leaves": "15", "learning_rate": "0.08", "min_data_in_leaf": "12", "num_boost_round": "40",
          "feature_fraction": "0.8", "bagging_fraction": "0.7", "bagging_freq": "1", "lambda_l2": "0.5",
          "max_bin": "127", "seed": "3"}


def sklearn_estimator(cls, **extra):
    return cls(num_leaves=15, learning_rate=0.08, min_child_samples=12, n_estimators=40, colsample_bytree=0.8,
               subsample=0.7, subsample_freq=1, reg_lambda=0.5, max_bin=127, seed=3, n_jobs=1, deterministic=True,
               feature_pre_filter=False, verbose=-1, **extra)


@pytest.fixture(scope="module")
def pool():
    with WarmWorkerPool(workers=2, threads=1) as shared:
        yield shared


def run_coordinator(prepared, pool, **extra):
    hps = parse_hyperparameters({**PARAMS, "mode": "coordinator", **extra})
    runner = LocalFoldRunner(prepared, pool=pool)
    return coordinator_cross_validate(runner, hps, read_manifest(prepared))


def folds_of(data: PreparedData):
    return [(np.flatnonzero(data.folds != i), np.flatnonzero(data.folds == i)) for i in range(data.manifest.n_folds)]


def test_binary_auc_equals_sklearn(prepared_census, pool):
    summary = run_coordinator(prepared_census, pool)
    data = PreparedData.load(prepared_census)
    expected = cross_validate(sklearn_estimator(LGBMClassifier), data.features, data.label, cv=folds_of(data),
                              scoring="roc_auc", return_train_score=True)
    assert summary.validation_mean == pytest.approx(expected["test_score"].mean(), abs=1e-9)
    assert summary.train_mean == pytest.approx(expected["train_score"].mean(), abs=1e-9)
    assert summary.validation_std == pytest.approx(expected["test_score"].std(), abs=1e-9)
    assert [r.fold for r in summary.folds] == [0, 1, 2]


def test_multiclass_logloss_equals_sklearn(tmp_path, pool):
    frame = make_census_like(1500, seed=4)
    frame["education"] = frame["education"].where(frame["education"].isin(["HS-grad", "Some-college", "Bachelors"]),
                                                  "Other")
    frame.to_csv(tmp_path / "m.csv", index=False)
    prepare(tmp_path / "m.csv", tmp_path / "p", PrepareOptions(target="education", folds=3, seed=2))
    summary = run_coordinator(tmp_path / "p", pool)
    data = PreparedData.load(tmp_path / "p")
    assert data.manifest.task == "multiclass" and summary.metric == "logloss"
    expected = cross_validate(sklearn_estimator(LGBMClassifier), data.features, data.label, cv=folds_of(data),
                              scoring="neg_log_loss")
    assert summary.validation_mean == pytest.approx(-expected["test_score"].mean(), abs=1e-9)


def test_regression_rmse_equals_sklearn(tmp_path, pool):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.normal(size=900), "x2": rng.uniform(size=900),
                          "city": rng.choice(["a", "b", "c", None], size=900)})
    frame["y"] = 3 * frame.x1 + np.sin(6 * frame.x2) + (frame.city == "a") + rng.normal(0, 0.3, 900)
    frame.to_parquet(tmp_path / "r.parquet")
    prepare(tmp_path / "r.parquet", tmp_path / "p", PrepareOptions(target="y", folds=3, seed=9))
    summary = run_coordinator(tmp_path / "p", pool)
    data = PreparedData.load(tmp_path / "p")
    expected = cross_validate(sklearn_estimator(LGBMRegressor), data.features, data.label, cv=folds_of(data),
                              scoring="neg_root_mean_squared_error", return_train_score=True)
    assert summary.metric == "rmse"
    assert summary.validation_mean == pytest.approx(-expected["test_score"].mean(), abs=1e-9)
    assert summary.train_mean == pytest.approx(-expected["train_score"].mean(), abs=1e-9)


def test_cached_datasets_give_the_same_scores_as_fresh_ones(prepared_census, pool):
    """Warm workers reuse binned Datasets across trials; the scores must not depend on that."""
    first = run_coordinator(prepared_census, pool, num_leaves="7")
    run_coordinator(prepared_census, pool, max_bin="63")  # another dataset key in between
    again = run_coordinator(prepared_census, pool, num_leaves="7")
    with WarmWorkerPool(workers=1, threads=1) as fresh_pool:
        fresh = run_coordinator(prepared_census, fresh_pool, num_leaves="7")
    # Which worker gets which fold depends on timing; at least the first fold finds its Dataset again.
    assert any(r.dataset_cached for r in again.folds) and not any(r.dataset_cached for r in fresh.folds)
    assert [r.validation_score for r in first.folds] == [r.validation_score for r in again.folds]
    assert [r.validation_score for r in first.folds] == [r.validation_score for r in fresh.folds]
