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


def _stored_pair(directory: Path) -> tuple[Path, Path]:
    [train] = directory.glob("*.train.bin")
    return train, train.with_name(train.name.replace(".train.", ".valid."))


def test_a_damaged_file_that_lightgbm_would_load_is_not_used_but_binned_again(tmp_path, data, caplog):
    """LightGBM trusts its binary files: damaged bin data loads and trains, on the wrong bins."""
    import hashlib

    import lightgbm as lgb

    reference = train_fold(data, _setup(data), 0)
    directory = tmp_path / "datasets"
    train_fold(data, _setup(data), 0, cache=DatasetCache(store=DatasetStore(directory)))
    train_path, _ = _stored_pair(directory)
    original = train_path.read_bytes()
    damaged = bytearray(original)
    damaged[-272:-16] = bytes(256)  # the last rows' bins of the last feature group set to bin 0
    train_path.write_bytes(bytes(damaged))
    lgb.Dataset(str(train_path), params=_setup(data).dataset_params).construct()  # LightGBM sees nothing wrong

    outcome = train_fold(data, _setup(data), 0, cache=DatasetCache(store=DatasetStore(directory)))
    assert outcome.booster.model_to_string() == reference.booster.model_to_string()
    assert "failed the checksum check" in caplog.text
    # Binned again and stored again, with its checksum: the next worker loads a good pair.
    assert train_path.read_bytes() == original
    checksum = train_path.with_name(f"{train_path.name}.sha256")  # beside the file
    assert checksum.read_text().strip() == hashlib.sha256(original).hexdigest()


def test_a_file_without_its_checksum_is_not_trusted(tmp_path, data, caplog):
    from warmcv.model.dataset_store import checksum_path

    directory = tmp_path / "datasets"
    train_fold(data, _setup(data), 0, cache=DatasetCache(store=DatasetStore(directory)))
    train_path, valid_path = _stored_pair(directory)
    checksum_path(valid_path).unlink()
    train_fold(data, _setup(data), 0, cache=DatasetCache(store=DatasetStore(directory)))
    assert "failed the checksum check" in caplog.text and checksum_path(valid_path).is_file()


# Finds, in a child process per attempt, a span of a stored train file whose overwriting kills the
# process that loads and trains on it (LightGBM reads its header's offsets without checking them).
# Searched rather than hard-coded, so the test holds across LightGBM's binary format versions.
FIND_FATAL_DAMAGE = r"""
import os, sys
import lightgbm as lgb
train, valid = sys.argv[1], sys.argv[2]
original = open(train, "rb").read()
trial = train + ".try"
for start in range(48, min(len(original), 4096), 8):
    for width in (8, 72):
        damaged = bytearray(original)
        damaged[start:start + width] = b"\xff" * len(damaged[start:start + width])
        with open(trial, "wb") as handle:
            handle.write(damaged)
        pid = os.fork()
        if pid == 0:
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            try:
                t = lgb.Dataset(trial, params={"verbose": -1})
                v = lgb.Dataset(valid, reference=t, params={"verbose": -1})
                t.construct()
                v.construct()
                lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, t, 5, valid_sets=[v])
            except Exception:
                pass
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            print(start, width, os.WTERMSIG(status))
            sys.exit(0)
sys.exit(1)
"""


def test_a_damaged_file_that_would_kill_every_worker_loading_it_is_binned_again(tmp_path, data, prepared_census):
    """The issue: a damaged shared file crashed every later trial on its fold (exit -11), run after run."""
    import signal
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    directory = tmp_path / "datasets"
    reference = train_fold(data, _setup(data), 1, cache=DatasetCache(store=DatasetStore(directory)))
    train_path, valid_path = _stored_pair(directory)
    original = train_path.read_bytes()
    found = subprocess.run([sys.executable, "-c", FIND_FATAL_DAMAGE, str(train_path), str(valid_path)],
                           capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert found.returncode == 0, f"no damage found that kills a process: {found.stderr[-2000:]}"
    start, width, signum = map(int, found.stdout.split())
    damaged = bytearray(original)
    damaged[start:start + width] = b"\xff" * width
    train_path.write_bytes(bytes(damaged))

    with WarmWorkerPool(workers=1, threads=1, dataset_dir=directory) as pool:
        result = pool.submit(0, WorkRequest(str(prepared_census), HPS, 1)).result(timeout=120)
        assert pool.crashes == 0, f"a worker died ({signal.Signals(signum).name} when loading the damaged file)"
        assert result["validation_score"] == reference.validation_score
        assert train_path.read_bytes() == original  # replaced by a good pair
