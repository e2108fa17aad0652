"""report.json and the closing summary table, both built from the study (so a resumed run reports every trial)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from warmcv.cv import CrossValidationSummary
from warmcv.files import write_text_atomic
from warmcv.tuning.search import CV_ATTR, ERROR_ATTR, HYPERPARAMETERS_ATTR, PRUNED_ATTR
from warmcv.tuning.study import retried_numbers

REPORT_FILE = "report.json"


def trial_records(study: Any) -> list[dict[str, Any]]:
    """Every trial that ran, oldest first: state, CV result with per-fold scores, parameters, timing, error.

    A pruned trial's "cv" holds the folds it ran (its partial summary), "pruned" why it stopped."""
    from optuna.trial import TrialState

    retried = retried_numbers(study)
    records = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (TrialState.WAITING, TrialState.RUNNING):
            continue
        state = {TrialState.COMPLETE: "complete", TrialState.FAIL: "failed"}.get(trial.state, trial.state.name.lower())
        if trial.state == TrialState.FAIL and trial.number in retried:
            state = "interrupted"
        seconds = ((trial.datetime_complete - trial.datetime_start).total_seconds()
                   if trial.datetime_complete and trial.datetime_start else None)
        cv = trial_summary(trial)
        records.append({
            "number": trial.number, "state": state,
            "value": trial.value if trial.state == TrialState.COMPLETE else None,
            "std": cv["validation_std"] if cv else None,
            "params": dict(trial.params),
            "hyperparameters": trial.user_attrs.get(HYPERPARAMETERS_ATTR, {}),
            "cv": cv,
            "constant_model": CrossValidationSummary.from_dict(cv).constant_model if cv else None,
            "error": trial.user_attrs.get(ERROR_ATTR),
            "pruned": trial.user_attrs.get(PRUNED_ATTR) if trial.state == TrialState.PRUNED else None,
            "retry_of": trial.system_attrs.get("failed_trial"),
            "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
            "seconds": seconds,
        })
    return records


def trial_summary(trial: Any) -> dict[str, Any] | None:
    """A trial's cross-validation summary as stored (CrossValidationSummary.to_dict), or None."""
    stored = trial.user_attrs.get(CV_ATTR)
    return CrossValidationSummary.from_dict(stored).to_dict() if stored else None


def pruning_savings(records: Sequence[Mapping[str, Any]], n_folds: int) -> dict[str, Any]:
    """What pruning saved: folds the pruned trials never trained, of all folds the counted trials would have."""
    pruned = [r for r in records if r["state"] == "pruned"]
    trained = sum(len(r["cv"]["folds"]) for r in pruned if r["cv"])
    counted = sum(r["state"] in ("complete", "pruned") for r in records)
    return {"pruned_trials": len(pruned), "folds_skipped": len(pruned) * n_folds - trained,
            "folds_of_counted_trials": counted * n_folds}


def ranked(records: Sequence[Mapping[str, Any]], maximize: bool) -> list[Mapping[str, Any]]:
    """Completed trials, best first (ties: the earlier trial first)."""
    complete = [r for r in records if r["state"] == "complete"]
    return sorted(complete, key=lambda r: (-r["value"] if maximize else r["value"], r["number"]))


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(report, indent=2, sort_keys=False, default=_jsonable, allow_nan=False))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
            return f"{value:.4g}"
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def summary_table(report: Mapping[str, Any], top: int = 5) -> str:
    """What a user reads at the end of a run: the best trials, the chosen parameters, where everything is."""
    metric = report["metric"]["name"]
    maximize = report["metric"]["direction"] == "Maximize"
    best_first = ranked(report["trials"], maximize)[:top]
    lines = []
    counts = report["search"]["counts"]
    pruned = counts.get("pruned", 0)
    pruning = report["search"].get("pruning") or {}
    lines.append(f"{counts['complete']} trials completed"
                 + (f", {pruned} pruned ({pruning['folds_skipped']} of {pruning['folds_of_counted_trials']} folds "
                    "skipped)" if pruned and "folds_skipped" in pruning else f", {pruned} pruned" if pruned else "")
                 + f", {counts['failed']} failed"
                 + (f", {counts['interrupted']} interrupted and re-run" if counts["interrupted"] else "")
                 + f"; {report['search']['folds']}-fold CV, {metric} ({'higher' if maximize else 'lower'} is better)")
    header = ["rank", "trial", f"CV {metric}", "std", "folds min..max", "rounds", "seconds"]
    rows = []
    for i, r in enumerate(best_first):
        folds = [f["validation_score"] for f in r["cv"]["folds"]]
        rows.append([str(i + 1), f"#{r['number']}", f"{r['value']:.6f}", f"{r['std']:.6f}",
                     f"{min(folds):.4f}..{max(folds):.4f}", str(r["cv"]["recommended_num_boost_round"]),
                     f"{r['seconds']:.1f}" if r["seconds"] is not None else ""])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines.append("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    lines.extend("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    best = report.get("best")
    if best:
        lines.append("")
        lines.append(f"best: trial #{best['trial']}, CV {metric} {best['cv_mean']:.6f} +/- {best['cv_std']:.6f}")
        width = max(len(n) for n in best["hyperparameters"])
        for name, value in sorted(best["hyperparameters"].items()):
            searched = " (searched)" if name in report["search"]["space"] else ""
            lines.append(f"  {name:<{width}}  {_fmt(best['params'].get(name, value)) if searched else value}{searched}")
    final = report.get("final_model")
    if final:
        lines.append(f"final model: {final['best_iteration']} rounds on all {report['data']['rows']} rows -> "
                     f"{final['archive']}")
    oof = report.get("oof_predictions")
    if oof and oof.get("path"):
        lines.append(f"out-of-fold predictions: {oof['rows']} rows of trial #{oof['trial']} -> {oof['path']}")
    importance = report.get("feature_importance")
    if importance:
        leading = ", ".join(f"{f['feature']} {f['gain']['mean']:.4g}" for f in importance["features"][:5])
        lines.append(f"feature importance (gain, mean over folds): {leading}")
    registry = report.get("registry")
    if registry and registry.get("registered"):
        lines.append(f"registered: {registry['group']} version {registry['version']} "
                     f"({registry['status']}) in {registry['path']}"
                     + (f"; forced: {registry['refused']}" if registry.get("forced") else ""))
    elif registry:
        lines.append(f"NOT registered: {registry['refused']} (--force-register registers it anyway)")
    predictions = report.get("predictions")
    if predictions and predictions.get("path"):
        lines.append(f"predictions: {predictions['rows']} rows -> {predictions['path']}")
    elif predictions:
        lines.append(f"no predictions: {predictions['skipped']}")
    tracked = report.get("mlflow")
    if tracked:
        lines.append(f"MLflow: run {tracked['run_id']} (experiment {tracked['experiment_id']}) at "
                     f"{tracked['tracking_uri']}")
    plots = [p for p in report.get("plots", {}).values() if p.get("path")]
    if plots:
        lines.append("plots: " + ", ".join(p["path"] for p in plots))
    timings = report["timings"]
    lines.append("time: " + ", ".join(f"{k.removesuffix('_seconds')} {v:.1f} s" for k, v in timings.items()
                                      if k.endswith("_seconds") and v is not None and math.isfinite(v)))
    return "\n".join(lines)
