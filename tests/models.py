"""Small trained models for the serving tests (real LightGBM models written by the worker mode's code)."""

from __future__ import annotations

from pathlib import Path


def train_model(prepared: Path, out: Path, **hyperparameters: str) -> Path:
    """Train on the full prepared set and return the model folder (model.txt + model.json)."""
    from warmcv.data.manifest import PreparedData
    from warmcv.declarations import parse_hyperparameters
    from warmcv.modes.worker import train_and_save

    hps = parse_hyperparameters({"mode": "worker", "fold": "all", "num_boost_round": "20", **hyperparameters})
    train_and_save(PreparedData.load(prepared), hps, out / "model", out / "metrics")
    return out / "model"
