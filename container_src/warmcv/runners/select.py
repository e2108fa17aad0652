"""Choosing the coordinator's fold runner, and saying in the log which one and why."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from warmcv.contract import ContainerPaths
from warmcv.cv import FoldRunner
from warmcv.data.manifest import Manifest
from warmcv.declarations import HyperparameterValues
from warmcv.runners.local import LocalFoldRunner

log = logging.getLogger(__name__)


def inside_sagemaker_job() -> bool:
    """SageMaker sets TRAINING_JOB_ARN in every training container; local mode and laptops do not."""
    return bool(os.environ.get("TRAINING_JOB_ARN"))


def select_runner(hps: HyperparameterValues, paths: ContainerPaths, manifest: Manifest, data_dir: Path) -> FoldRunner:
    choice = hps["fold_runner"]
    if choice == "auto":
        choice = "sagemaker" if inside_sagemaker_job() else "local"
        reason = ("TRAINING_JOB_ARN is set, so this is a SageMaker training job" if choice == "sagemaker"
                  else "TRAINING_JOB_ARN is not set, so this is not a SageMaker training job")
        log.info("fold_runner=auto picked %s: %s", choice, reason)
    else:
        log.info("fold_runner=%s (set explicitly)", choice)
    if choice == "local":
        return LocalFoldRunner(data_dir, n_folds=manifest.n_folds)
    from warmcv.runners.sagemaker import SageMakerFoldRunner

    return SageMakerFoldRunner.from_environment(hps, paths)
