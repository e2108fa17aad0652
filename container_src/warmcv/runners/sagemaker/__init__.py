"""The SageMaker fold runner: one training job per fold, on the coordinator's own image and settings.

Split by job:

- `timing`: every interval the runner waits on (`Timing`, WARMCV_SAGEMAKER_TIMING) and how each wait is
  drawn (`Pacer`: jitter, full-jitter backoff, the poll schedule);
- `discovery`: the coordinator finds its own job (name, region, settings, tags, deadline);
- `folds`: one trial's fold jobs through their lives (create or adopt, watch, read, stop);
- `runner`: `SageMakerFoldRunner`, the loop that paces creates, waits for quota, polls and stops.

docs/sagemaker-fold-runner.md describes what it guarantees and how it is tested.
"""

from warmcv.runners.sagemaker.discovery import REQUIRED_PERMISSIONS, Coordinator, region_from_arn
from warmcv.runners.sagemaker.folds import FoldJob, FoldJobs
from warmcv.runners.sagemaker.runner import CreateGate, FoldsTimedOut, LocalFold, SageMakerFoldRunner
from warmcv.runners.sagemaker.timing import TIMING_ENV, Pacer, Timing

__all__ = ["REQUIRED_PERMISSIONS", "TIMING_ENV", "Coordinator", "CreateGate", "FoldJob", "FoldJobs", "FoldsTimedOut",
           "LocalFold", "Pacer", "SageMakerFoldRunner", "Timing", "region_from_arn"]
