"""Training one fold, the saved model (text + JSON, no pickle) and prediction with the training schema."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier

from warmcv.cv import train_and_save
from warmcv.data.manifest import PreparedData
from warmcv.declarations import parse_hyperparameters
from warmcv.errors import UserInputError
from warmcv.examples import make_census_like
from warmcv.model.artifacts import TrainedModel
from warmcv.model.params import training_setup
from warmcv.model.training import train_fold


@pytest.fixture(scope="module")
def data(prepared_census):
    return PreparedData.load(prepared_census)


def test_early_stopping_keeps_the_best_iteration_and_scores_it(data):
    hps = parse_hyperparameters({"num_boost_round": "500", "learning_rate": "0.3", "early_stopping_rounds": "5"})
    outcome = train_fold(data, training_setup(hps, data.manifest, num_threads=1), 0)
    assert 1 <= outcome.best_iteration < 500
    # The booster may keep early stopping's patience trees; predict and save_model use the best round's.
    assert outcome.booster.current_iteration() >= outcome.best_iteration == outcome.booster.best_iteration
    _, valid = data.manifest.fold_masks(data.folds, 0)
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(data.label[valid], outcome.booster.predict(data.features[valid]))
    assert outcome.validation_score == expected


def test_saved_model_predicts_like_the_booster_and_loads_without_pickle(tmp_path, data):
    hps = parse_hyperparameters({"num_boost_round": "30", "fold": "all"})
    outcome = train_and_save(data, hps, tmp_path / "model", tmp_path / "out")
    model = TrainedModel.load(tmp_path / "model")
    metadata = json.loads((tmp_path / "model" / "model.json").read_text())
    assert metadata["classes"] == ["<=50K", ">50K"] and metadata["best_iteration"] == 30
    assert {f["name"]: f["kind"] for f in metadata["features"]}["occupation"] == "categorical"
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["model.json", "model.txt"]

    raw = make_census_like(200, seed=99)
    probabilities = model.predict(raw)
    assert list(probabilities.columns) == ["probability_<=50K", "probability_>50K"]
    expected = outcome.booster.predict(model.features(raw))
    np.testing.assert_allclose(probabilities["probability_>50K"], expected, rtol=0, atol=1e-12)
    labels = model.predict(raw, output="labels")["prediction"]
    assert set(labels) <= {"<=50K", ">50K"}
    assert ((probabilities["probability_>50K"] > 0.5) == (labels == ">50K")).all()


def test_prediction_reorders_columns_drops_extras_and_maps_unseen_categories(tmp_path, data):
    hps = parse_hyperparameters({"num_boost_round": "10", "fold": "all"})
    train_and_save(data, hps, tmp_path / "model", tmp_path / "out")
    model = TrainedModel.load(tmp_path / "model")
    raw = make_census_like(50, seed=5)
    shuffled = raw[list(reversed(raw.columns))].assign(row_id=range(50))
    pd.testing.assert_frame_equal(model.predict(raw), model.predict(shuffled))
    unseen = raw.assign(occupation="Astronaut")
    as_missing = raw.assign(occupation=None)
    pd.testing.assert_frame_equal(model.predict(unseen), model.predict(as_missing))


def test_numeric_codes_for_categorical_columns_are_consistent():
    """A category read as 5.0 in one file and 5 in another must be the same category."""
    from warmcv.data.schema import FeatureSchema

    schema = FeatureSchema.infer(pd.DataFrame({"zip": [1.0, 5.0, None]}), ["zip"], categorical=["zip"])
    assert schema.features[0].categories == ("1", "5")
    applied = schema.apply(pd.DataFrame({"zip": [5, 1, 7]}))
    assert list(applied["zip"].astype(object)) == ["5", "1", np.nan]


def test_objective_that_does_not_fit_the_task(data):
    with pytest.raises(UserInputError, match="objective='poisson' does not fit the prepared data's task binary"):
        training_setup(parse_hyperparameters({"objective": "poisson"}), data.manifest)


def test_lightgbm_errors_become_user_errors(data):
    hps = parse_hyperparameters({"num_boost_round": "5", "bagging_fraction": "0.5", "bagging_freq": "1"})
    setup = training_setup(hps, data.manifest, num_threads=1)
    setup.params["num_class"] = 3  # binary objective with num_class=3: LightGBM refuses
    with pytest.raises(UserInputError, match="LightGBM rejected the training parameters"):
        train_fold(data, setup, 0)


def test_sklearn_parity_for_the_full_fit(data):
    hps = parse_hyperparameters({"num_boost_round": "25", "fold": "all", "num_leaves": "9"})
    outcome = train_fold(data, training_setup(hps, data.manifest, num_threads=1), "all")
    estimator = LGBMClassifier(n_estimators=25, num_leaves=9, n_jobs=1, deterministic=True, seed=0,
                               feature_pre_filter=False, verbose=-1).fit(data.features, data.label)
    np.testing.assert_array_equal(outcome.booster.predict(data.features), estimator.predict_proba(data.features)[:, 1])


def test_a_fit_alone_on_small_data_uses_one_thread():
    """Waking a second passive OpenMP thread at every barrier costs more than it saves on small data
    (warmcv.model.params.SINGLE_THREAD_CELLS: Adult's final fit 1.27 s on one thread, 4.48 s on two)."""
    from warmcv.model.params import SINGLE_THREAD_CELLS, default_threads, fit_threads

    assert fit_threads(48_842, 14) == 1
    assert fit_threads(200_000, 40) == default_threads()
    assert fit_threads(SINGLE_THREAD_CELLS // 10, 10) == default_threads()
    assert fit_threads(SINGLE_THREAD_CELLS // 10 - 1, 10) == 1
