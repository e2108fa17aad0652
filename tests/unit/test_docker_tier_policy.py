"""The docker tier's rule: a missing prerequisite skips the tests, except under CI=true, where it fails them."""

from __future__ import annotations

import pytest

from tests.docker.helpers import require


def test_missing_prerequisite_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no engine"):
        require(False, "no engine")


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_missing_prerequisite_fails_in_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"no engine \(CI=true: the docker tier must run in CI\)"):
        require(False, "no engine")


def test_present_prerequisite_passes(monkeypatch):
    monkeypatch.setenv("CI", "true")
    require(True, "unused")
