"""Out-of-fold predictions and fold feature importances, against what scikit-learn and LightGBM compute.

The folds send back the running predictions they were scored with (no second pass); these tests check that
what comes out, put back in row order, is exactly each fold model's prediction of the rows it did not train
on (scikit-learn's cross_val_predict with the same folds), and that the importances are the fold models'
own, under the data's column names.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

import warmcv

PARAMS = {"num_leaves": 15, "learning_rate": 0.08, "min_data_in_leaf": 12, "num_boost_round": 40,
          "feature_fraction": 0.8, "lambda_l2": 0.5, "seed": 3}


def classifier() -> LGBMClassifier:
    return LGBMClassifier(num_leaves=15, learning_rate=0.08, min_child_samples=12, n_estimators=40,
                          colsample_bytree=0.8, reg_lambda=0.5, seed=3, n_jobs=1, deterministic=True,
                          feature_pre_filter=False, verbose=-1)


@pytest.mark.parametrize("classes", [2, 3])
def test_oof_predictions_equal_cross_val_predict(classes: int) -> None:
    X, y = make_classification(n_samples=600, n_features=6, n_informative=4, n_classes=classes, random_state=5)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    df.insert(0, "row_id", [f"r{i}" for i in range(len(df))])
    df["target"] = y
    result = warmcv.cross_validate(df, target="target", params=PARAMS, id_columns=["row_id"],
                                   task="binary" if classes == 2 else "multiclass")
    expected = cross_val_predict(classifier(), df[[f"x{i}" for i in range(6)]], y,
                                 cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")
    oof = result.oof_predictions
    assert list(oof.columns) == ["row_id", "target", "fold", *[f"probability_{c}" for c in range(classes)]]
    assert (oof["row_id"] == df["row_id"]).all() and (oof["target"] == y).all()
    folds = np.empty(len(df), dtype=np.int64)
    for fold, (_, valid) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)):
        folds[valid] = fold
    assert (oof["fold"].to_numpy() == folds).all()
    np.testing.assert_allclose(oof[[f"probability_{c}" for c in range(classes)]].to_numpy(), expected, atol=1e-12)


def test_oof_predictions_with_early_stopping_are_each_fold_models_best_round() -> None:
    X, y = make_regression(n_samples=500, n_features=5, noise=8.0, random_state=2)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    df["target"] = y
    params = {**PARAMS, "num_boost_round": 300, "early_stopping_rounds": 10, "learning_rate": 0.2}
    result = warmcv.cross_validate(df, target="target", params=params)
    oof = result.oof_predictions
    assert list(oof.columns) == ["target", "fold", "prediction"]
    lgb_params = {"objective": "regression", "num_leaves": 15, "learning_rate": 0.2, "min_data_in_leaf": 12,
                  "feature_fraction": 0.8, "lambda_l2": 0.5, "seed": 3, "num_threads": 1, "deterministic": True,
                  "verbosity": -1, "feature_pre_filter": False, "metric": "rmse"}
    for fold, (train, valid) in enumerate(KFold(5, shuffle=True, random_state=0).split(X)):
        booster = lgb.train(lgb_params, lgb.Dataset(df.iloc[train, :5], y[train]), num_boost_round=300,
                            valid_sets=[lgb.Dataset(df.iloc[valid, :5], y[valid])],
                            callbacks=[lgb.early_stopping(10, first_metric_only=True, verbose=False)])
        assert booster.best_iteration == result.best_iterations[fold]
        expected = booster.predict(df.iloc[valid, :5], num_iteration=booster.best_iteration)
        assert (oof["fold"].to_numpy()[valid] == fold).all()
        np.testing.assert_allclose(oof["prediction"].to_numpy()[valid], expected, rtol=1e-9, atol=1e-9)


def test_fold_importances_are_the_fold_models_own_under_the_datas_column_names() -> None:
    X, y = make_classification(n_samples=500, n_features=4, n_informative=3, n_redundant=0, random_state=1)
    names = ["age in years", "Unnamed: 0", "x", "income"]  # two names LightGBM trains under safe names
    df = pd.DataFrame(X, columns=names)
    df["target"] = y
    result = warmcv.cross_validate(df, target="target", params=PARAMS)
    importance = result.feature_importance
    assert set(importance.index) == set(names)
    safe = df[names].set_axis(["age_in_years", "Unnamed__0", "x", "income"], axis=1)
    gains, splits = [], []
    for train, _ in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        model = classifier().fit(safe.iloc[train], y[train])
        gains.append(model.booster_.feature_importance("gain"))
        splits.append(model.booster_.feature_importance("split"))
    gains, splits = np.array(gains), np.array(splits)
    for position, name in enumerate(names):
        row = importance.loc[name]
        # The same trees (equal split counts, equal predictions); LightGBM keeps each split's gain as a float32,
        # and warmcv's row-wise histograms add in another order than the column-wise ones here (7e-7 apart).
        np.testing.assert_allclose([row[f"gain_fold{f}"] for f in range(5)], gains[:, position], rtol=1e-5)
        assert [row[f"split_fold{f}"] for f in range(5)] == list(splits[:, position])
        folds = np.array([row[f"gain_fold{f}"] for f in range(5)])
        assert row["gain_mean"] == pytest.approx(folds.mean(), rel=1e-12)
        assert row["gain_std"] == pytest.approx(folds.std(), rel=1e-12)  # population std, like the CV scores
        assert row["split_mean"] == pytest.approx(splits[:, position].mean())
    assert list(importance.index) == sorted(names, key=lambda n: -importance.loc[n, "gain_mean"])
    assert result.summary.constant_model is False
    assert all(f.splits == int(splits[f.fold].sum()) for f in result.summary.folds)


def test_a_model_without_splits_is_reported_as_constant() -> None:
    X, y = make_classification(n_samples=200, n_features=4, random_state=0)
    df = pd.DataFrame(X, columns=list("abcd"))
    df["target"] = y
    result = warmcv.cross_validate(df, target="target", params={"min_data_in_leaf": 500, "num_boost_round": 5})
    assert result.summary.constant_model is True
    assert result.scores == [0.5] * 5
    assert (result.feature_importance[["gain_mean", "split_mean"]] == 0).all().all()
