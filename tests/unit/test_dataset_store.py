"""Binned fold Datasets shared between warm workers: loaded pairs train exactly like freshly binned ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from warmcv.data.manifest import PreparedData
from warmcv.declarations import parse_hyperparameters
from warmcv.model import training
from warmcv.model.dataset_store import DatasetStore
from warmcv.model.params import training_setup
from warmcv.model.training import DatasetCache, train_fold
from warmcv.runners.pool import WarmWorkerPool
from warmcv.runners.worker_process import WorkRequest

# Bagging and feature sampling too, so any difference in the loaded Dataset shows in the trees.
HPS = {"num_boost_round": "40", "learning_rate": "0.2", "bagging_fraction": "0.8", "bagging_freq": "1",
       "feature_fraction": "0.7", "max_bin": "63"}


@pytest.fixture(scope="module")
def data(prepared_census: Path) -> PreparedData:
    return PreparedData.load(prepared_census)


def _setup(data: PreparedData):
    return training_setup(parse_hyperparameters(HPS), data.manifest, num_threads=1)


def test_a_second_worker_loads_the_pair_and_trains_the_same_model(tmp_path, data, monkeypatch):
    store = DatasetStore(tmp_path / "datasets")
    first = train_fold(data, _setup(data), 1, cache=DatasetCache(store=store))
    assert len(list((tmp_path / "datasets").glob("*.bin"))) == 2

    def no_binning(*args, **kwargs):
        raise AssertionError("binned again although the store holds the pair")

    monkeypatch.setattr(training, "_build_datasets", no_binning)
    second = train_fold(data, _setup(data), 1, cache=DatasetCache(store=store))  # another worker's cache
    assert second.booster.model_to_string() == first.booster.model_to_string()
    assert (second.validation_metrics, second.train_metrics) == (first.validation_metrics, first.train_metrics)
    # Category lists are not in the binary file; restored, predictions on raw frames stay the same.
    assert second.booster.pandas_categorical == first.booster.pandas_categorical is not None
    _, valid_mask = data.manifest.fold_masks(data.folds, 1)
    rows = data.features[valid_mask]
    np.testing.assert_array_equal(second.booster.predict(rows), first.booster.predict(rows))


def test_the_full_set_is_not_stored(tmp_path, data):
    store = DatasetStore(tmp_path / "datasets")
    train_fold(data, _setup(data), "all", cache=DatasetCache(store=store))
    assert not list((tmp_path / "datasets").glob("*"))


def test_an_unreadable_store_falls_back_to_binning(tmp_path, data, caplog):
    reference = train_fold(data, _setup(data), 0)
    store = DatasetStore(tmp_path / "datasets")
    train_fold(data, _setup(data), 0, cache=DatasetCache(store=store))
    for path in (tmp_path / "datasets").glob("*.bin"):
        path.write_bytes(b"not a LightGBM binary file")
    outcome = train_fold(data, _setup(data), 0, cache=DatasetCache(store=store))
    assert outcome.booster.model_to_string() == reference.booster.model_to_string()
    assert "binning again" in caplog.text


def test_an_unwritable_store_is_skipped(tmp_path, data, caplog):
    (tmp_path / "blocked").write_text("a file where the store's directory should be")
    outcome = train_fold(data, _setup(data), 0, cache=DatasetCache(store=DatasetStore(tmp_path / "blocked")))
    assert outcome.validation_score == train_fold(data, _setup(data), 0).validation_score
    assert "each worker bins its own" in caplog.text


def test_pool_workers_share_a_store_that_goes_away_with_the_pool(prepared_census):
    with WarmWorkerPool(workers=2, threads=1) as pool:
        directory = Path(pool.dataset_dir)
        scores = [pool.submit(n, WorkRequest(str(prepared_census), HPS, 2)).result(timeout=120)["validation_score"]
                  for n in range(2)]
        assert len(list(directory.glob("*.bin"))) == 2
    assert scores[0] == scores[1]
    assert not directory.exists()
    with WarmWorkerPool(workers=1, threads=1, share_datasets=False) as pool:
        assert pool.dataset_dir is None
        assert pool.submit(0, WorkRequest(str(prepared_census), HPS, 2)).result(timeout=120)["validation_score"] == scores[0]


def test_a_given_store_directory_is_created_and_removed_with_the_pool(tmp_path, prepared_census):
    directory = tmp_path / "run" / ".datasets"
    with WarmWorkerPool(workers=1, threads=1, dataset_dir=directory) as pool:
        assert pool.dataset_dir == str(directory)
        pool.submit(0, WorkRequest(str(prepared_census), HPS, 0)).result(timeout=120)
        assert len(list(directory.glob("*.bin"))) == 2
    assert not directory.exists()
