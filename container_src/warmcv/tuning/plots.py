"""The run's PNG plots, drawn with matplotlib directly (headless: the Agg backend, no display needed).

Optimization history and the per-fold spread of the top trials always work; parameter importances
need enough completed trials for Optuna's fANOVA to mean anything, so with fewer the plot is skipped
and report.json says why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from warmcv.files import atomic_path
from warmcv.tuning.report import ranked

log = logging.getLogger(__name__)

MIN_TRIALS_FOR_IMPORTANCE = 5
TOP_TRIALS = 10


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> None:
    """Under a temporary name first: a full disk must not leave a truncated PNG that looks like a plot."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def optimization_history(records: Sequence[Mapping[str, Any]], metric: str, maximize: bool, path: Path) -> None:
    plt = _pyplot()
    complete = [r for r in records if r["state"] == "complete"]
    failed = [r for r in records if r["state"] == "failed"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    x = [r["number"] for r in complete]
    y = [r["value"] for r in complete]
    ax.errorbar(x, y, yerr=[r["std"] for r in complete], fmt="o", ms=4, alpha=0.6, elinewidth=0.8,
                label="trial (CV mean +/- std)")
    best, best_line = None, []
    for value in y:
        best = value if best is None or (value > best if maximize else value < best) else best
        best_line.append(best)
    ax.step(x, best_line, where="post", color="tab:red", label="best so far")
    if failed and y:
        ax.plot([r["number"] for r in failed], [min(y) if maximize else max(y)] * len(failed), "x", color="grey",
                label="failed trial")
    pruned = [r for r in records if r["state"] == "pruned"]
    if pruned and y:
        # At the worst completed score: a pruned trial has no CV mean, only the folds it ran.
        ax.plot([r["number"] for r in pruned], [min(y) if maximize else max(y)] * len(pruned), "v", color="tab:orange",
                ms=4, alpha=0.6, label="pruned trial")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"CV {metric}")
    ax.set_title("Optimization history")
    ax.legend(loc="lower right" if maximize else "upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(plt, fig, path)


def fold_spread(records: Sequence[Mapping[str, Any]], metric: str, maximize: bool, path: Path) -> None:
    plt = _pyplot()
    top = ranked(records, maximize)[:TOP_TRIALS]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    scores = [[f["validation_score"] for f in r["cv"]["folds"]] for r in top]
    ax.boxplot(scores, showmeans=True, widths=0.5)
    # One colour per fold: a fold that is hard for every trial shows up as a line of the same colour.
    n_folds = max(len(values) for values in scores)
    colours = plt.get_cmap("tab10" if n_folds <= 10 else "viridis")
    for fold in range(n_folds):
        xs = [i for i, values in enumerate(scores, start=1) if fold < len(values)]
        ys = [values[fold] for values in scores if fold < len(values)]
        ax.plot(xs, ys, ".-", color=colours(fold % 10 if n_folds <= 10 else fold / max(1, n_folds - 1)),
                alpha=0.6, lw=0.8, label=f"fold {fold}" if n_folds <= 10 else None)
    if n_folds <= 10:
        ax.legend(fontsize="small", ncol=min(n_folds, 5), loc="best")
    ax.set_xticks(range(1, len(top) + 1), [f"#{r['number']}" for r in top])
    ax.set_xlabel(f"trial (best {len(top)}, best first)")
    ax.set_ylabel(f"validation {metric} per fold")
    ax.set_title("Per-fold spread of the top trials")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    _save(plt, fig, path)


def param_importances(importances: Mapping[str, float], path: Path) -> None:
    plt = _pyplot()
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(items) + 1.5), dpi=100)
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:green")
    ax.set_xlabel("importance for the CV score (fANOVA, sums to 1)")
    ax.set_title("Hyperparameter importances")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    _save(plt, fig, path)


TOP_FEATURES = 30


def feature_importance_plot(importance: Mapping[str, Any], path: Path) -> None:
    """The best trial's features by mean gain across folds, with the folds' spread (std) as error bars."""
    plt = _pyplot()
    features = list(importance["features"])[:TOP_FEATURES][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(features) + 1.6), dpi=100)
    means = [f["gain"]["mean"] for f in features]
    ax.barh([f["feature"] for f in features], means, xerr=[f["gain"]["std"] for f in features],
            color="tab:blue", error_kw={"elinewidth": 0.8, "capsize": 2})
    for y, f in enumerate(features):
        ax.annotate(f"{f['split']['mean']:.0f} splits", (means[y], y), xytext=(4, -3), textcoords="offset points",
                    fontsize="x-small", color="dimgrey")
    shown = f"top {len(features)} of {len(importance['features'])}" if len(importance["features"]) > len(features) \
        else f"{len(features)} features"
    ax.set_xlabel(f"gain, mean over {len(importance['folds'])} folds (bars: std across folds)")
    ax.set_title(f"Feature importance of the best trial ({shown})")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def compute_importances(study: Any, n_complete: int, seed: int) -> tuple[dict[str, float] | None, str | None]:
    """fANOVA importances, or (None, why not)."""
    if n_complete < MIN_TRIALS_FOR_IMPORTANCE:
        return None, (f"{n_complete} completed trial(s); parameter importances need at least "
                      f"{MIN_TRIALS_FOR_IMPORTANCE}")
    import optuna

    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as error:
        return None, f"Optuna could not compute importances: {error}"
    if not importances:
        return None, "no parameter varied across the completed trials"
    return {k: float(v) for k, v in importances.items()}, None


def make_plots(study: Any, records: Sequence[Mapping[str, Any]], metric: str, maximize: bool, directory: Path,
               seed: int = 0) -> tuple[dict[str, dict[str, Any]], dict[str, float] | None]:
    """Draw every plot into `directory`; returns ({name: {"path"} or {"skipped"}}, importances)."""
    directory.mkdir(parents=True, exist_ok=True)
    n_complete = sum(r["state"] == "complete" for r in records)
    result: dict[str, dict[str, Any]] = {}
    if n_complete == 0:
        return {name: {"path": None, "skipped": "no completed trial"}
                for name in ("optimization_history", "fold_spread", "param_importances")}, None
    for name, draw in (("optimization_history", optimization_history), ("fold_spread", fold_spread)):
        path = directory / f"{name}.png"
        draw(records, metric, maximize, path)
        result[name] = {"path": str(path), "skipped": None}
    importances, reason = compute_importances(study, n_complete, seed)
    if importances is None:
        log.info("parameter importance plot skipped: %s", reason)
        result["param_importances"] = {"path": None, "skipped": reason}
    else:
        path = directory / "param_importances.png"
        param_importances(importances, path)
        result["param_importances"] = {"path": str(path), "skipped": None}
    return result, importances
