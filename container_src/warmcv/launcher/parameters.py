"""Pipeline parameters: what a user changes in Studio (or at StartPipelineExecution) without a re-upsert.

The config gives every default; an execution may override the image, the instance types, K, the trial
budget (M in parallel, M x N in all), the numeric search ranges, the approval status and the baseline
the CV mean must beat for the model to be registered. Values given at execution time are not seen by
the launcher, so the jobs validate them: a bad range or K fails the first coordinator (or the Prepare
step) with the same message the launcher would have given, as its FailureReason.

Not parameters: categorical choices (a tuning job takes them as a list, which a pipeline variable
cannot be) and anything a warm pool must match across jobs other than the instance type (role, volume,
network settings), which stays in the config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from warmcv.declarations import HYPERPARAMETERS, SCORING_METRICS
from warmcv.launcher.config import LauncherConfig
from warmcv.settings.choices import APPROVAL_STATUSES

# A constant model's score where it does not depend on the data (AUC 0.5, R2 0): registering a model
# that does not beat it is never wanted. For the other metrics the baseline is the user's to give; the
# default then lets every model through (the largest float JSON holds, or its negative).
CONSTANT_MODEL_SCORE = {"auc": 0.5, "r2": 0.0}
NO_BASELINE = 1.0e308


def default_baseline(config: LauncherConfig) -> float:
    if config.pipeline.baseline_objective is not None:
        return config.pipeline.baseline_objective
    metric = config.metric
    if metric in CONSTANT_MODEL_SCORE:
        return CONSTANT_MODEL_SCORE[metric]
    return -NO_BASELINE if SCORING_METRICS[metric].direction == "Maximize" else NO_BASELINE


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


@dataclass
class PipelineParameters:
    """The SDK's parameter objects, built from the config's values (their defaults)."""

    image_uri: Any
    processing_instance_type: Any
    training_instance_type: Any
    transform_instance_type: Any
    folds: Any
    parallel_trials: Any
    max_trials: Any
    approval_status: Any
    baseline: Any
    ranges: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # hyperparameter -> (low, high)

    @classmethod
    def from_config(cls, config: LauncherConfig) -> PipelineParameters:
        from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString

        ranges = {}
        for name, dimension in sorted(config.search_space().items()):
            if dimension.range is None:
                continue
            hp = HYPERPARAMETERS[name]
            ranges[name] = (ParameterString(f"{_camel(name)}Min", default_value=hp.format(dimension.range.low)),
                            ParameterString(f"{_camel(name)}Max", default_value=hp.format(dimension.range.high)))
        return cls(
            image_uri=ParameterString("ImageUri", default_value=config.image_uri),
            processing_instance_type=ParameterString("ProcessingInstanceType",
                                                     default_value=config.prepare.instance_type),
            training_instance_type=ParameterString("TrainingInstanceType", default_value=config.training.instance_type),
            transform_instance_type=ParameterString("TransformInstanceType",
                                                    default_value=config.transform.instance_type),
            folds=ParameterInteger("Folds", default_value=config.prepare.folds),
            parallel_trials=ParameterInteger("ParallelTrials", default_value=config.tuning.parallel_trials),
            max_trials=ParameterInteger("MaxTrials", default_value=config.max_jobs),
            approval_status=ParameterString("ModelApprovalStatus", default_value=config.pipeline.approval_status,
                                            enum_values=list(APPROVAL_STATUSES)),
            baseline=ParameterFloat("BaselineObjective", default_value=default_baseline(config)),
            ranges=ranges,
        )

    def all(self) -> list[Any]:
        fixed = [self.image_uri, self.processing_instance_type, self.training_instance_type,
                 self.transform_instance_type, self.folds, self.parallel_trials, self.max_trials,
                 self.approval_status, self.baseline]
        return fixed + [p for pair in self.ranges.values() for p in pair]
