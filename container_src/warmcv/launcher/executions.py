"""The jobs a pipeline execution ran, for `warmcv release-warm-pools --execution ARN`.

Kept out of `warm_pools` because the Lambda zip ships that module, and the Lambda's role need not
read pipeline executions.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from warmcv.launcher.warm_pools import ReleaseReport, RunSelector, names


def execution_selector(client: Any, execution_arn: str,
                       report: ReleaseReport | None = None) -> tuple[RunSelector, _dt.datetime | None]:
    """The tuning and training jobs a pipeline execution ran, and when its first step started."""
    report = report or ReleaseReport()
    tuning: set[str] = set()
    training: set[str] = set()
    started: list[_dt.datetime] = []
    kwargs: dict[str, Any] = {"PipelineExecutionArn": execution_arn, "MaxResults": 100}
    while True:
        report.count("ListPipelineExecutionSteps")
        page = client.list_pipeline_execution_steps(**kwargs)
        for step in page.get("PipelineExecutionSteps", []):
            metadata = step.get("Metadata", {})
            if "TuningJob" in metadata:
                tuning.add(metadata["TuningJob"]["Arn"])
            if "TrainingJob" in metadata:
                training.add(metadata["TrainingJob"]["Arn"])
            if step.get("StartTime"):
                started.append(step["StartTime"])
        token = page.get("NextToken")
        if not token:
            break
        kwargs["NextToken"] = token
    if not (tuning or training):
        raise ValueError(f"pipeline execution {execution_arn} has no tuning or training step yet")
    return RunSelector(tuning_jobs=names(tuning), training_jobs=names(training)), min(started, default=None)
