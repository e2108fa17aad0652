"""A finished fold job's scores: its metrics.json from output.tar.gz, or its log metrics as a fallback.

The worker writes output/data/metrics.json, which SageMaker uploads as
`<S3OutputPath>/<job>/output/output.tar.gz`. That file carries the full result (both scores at full
precision, best iteration, row counts, every metric). FinalMetricDataList is only what the metric
definitions' regexes scraped from the log; it is used when the archive cannot be read, and then the
fields it cannot supply are filled conservatively and said so in the log.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from collections.abc import Mapping
from typing import Any

from warmcv.cv import METRICS_FILE, PREDICTIONS_FILE, VALIDATION_PREDICTIONS, FoldResult
from warmcv.declarations import parse_hyperparameters
from warmcv.declarations.metrics import FOLD_TRAINING_SCORE, FOLD_VALIDATION_SCORE

log = logging.getLogger(__name__)


def output_archive_uri(description: Mapping[str, Any]) -> str:
    """Where SageMaker put the job's output/data archive (next to model.tar.gz)."""
    model = (description.get("ModelArtifacts") or {}).get("S3ModelArtifacts") or ""
    if model.endswith("/model.tar.gz"):
        return model[: -len("model.tar.gz")] + "output.tar.gz"
    output_path = description["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    return f"{output_path}/{description['TrainingJobName']}/output/output.tar.gz"


def _member(archive: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.lstrip("./") == name:
                handle = tar.extractfile(member)
                if handle is not None:
                    return handle.read()
    raise KeyError(f"{name} is not in the archive")


def metrics_from_archive(archive: bytes) -> dict[str, Any]:
    """metrics.json out of output.tar.gz (gzip or plain tar); KeyError if it is not there."""
    return json.loads(_member(archive, METRICS_FILE).decode("utf-8"))


def summary_from_archive(archive: bytes) -> dict[str, Any]:
    """metrics.json, with the fold's validation predictions added when the archive has them (a fold job of
    this warmcv writes them; one of an older image does not, and its trial then has no out-of-fold predictions)."""
    summary = metrics_from_archive(archive)
    try:
        raw = _member(archive, PREDICTIONS_FILE)
    except KeyError:
        return summary
    import numpy as np

    try:
        summary[VALIDATION_PREDICTIONS] = np.load(io.BytesIO(raw), allow_pickle=False)
    except ValueError as error:
        log.warning("%s in the fold's output is not readable (%s); the trial keeps no out-of-fold predictions",
                    PREDICTIONS_FILE, error)
    return summary


def result_from_metrics(summary: Mapping[str, Any], fold: int, **extra: Any) -> FoldResult:
    result = FoldResult.from_summary(summary, **extra)
    if result.fold != fold:
        raise ValueError(f"{METRICS_FILE} is for fold {result.fold}, expected fold {fold}")
    return result


def result_from_final_metrics(description: Mapping[str, Any], fold: int, **extra: Any) -> FoldResult:
    """From FinalMetricDataList (the log lines' last values). Best iteration falls back to num_boost_round."""
    values = {m["MetricName"]: float(m["Value"]) for m in description.get("FinalMetricDataList") or []}
    missing = [m.name for m in (FOLD_VALIDATION_SCORE, FOLD_TRAINING_SCORE) if m.name not in values]
    if missing:
        raise KeyError(f"FinalMetricDataList lacks {', '.join(missing)}")
    hps = parse_hyperparameters(description.get("HyperParameters") or {})
    return FoldResult(
        fold=fold, train_score=values[FOLD_TRAINING_SCORE.name], validation_score=values[FOLD_VALIDATION_SCORE.name],
        best_iteration=int(hps["num_boost_round"]), n_train=0, n_valid=0,
        seconds=float(description.get("TrainingTimeInSeconds") or 0), **extra,
    )
