"""`warmcv.tune`: the whole `warmcv run` pipeline from Python, into the same run folder.

A notebook's run and the CLI's are the same thing: `warmcv.tune(..., out=d)` writes the run folder
`warmcv run` writes (run.json, study.db, report.json, model.tar.gz), so either can resume the other.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warmcv.api.models import Model
from warmcv.errors import UserInputError
from warmcv.settings.choices import ApprovalStatus, PredictOutput, Sampler, Splitter, Task

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"

if TYPE_CHECKING:
    import optuna
    import pandas as pd

log = logging.getLogger(__name__)
# What a searched range may be given as: "16:128:log", (16, 128), (16, 128, "log"), or a list of choices.
SearchRange = str | tuple[Any, ...] | list[Any]


@dataclass
class TuneResult:
    """The outcome of `warmcv.tune`: the best trial, every trial's scores, the final model and the study."""

    run_dir: Path
    metric: str
    direction: str  # Maximize or Minimize
    best_params: dict[str, Any]  # the searched hyperparameters of the best trial, typed
    best_hyperparameters: dict[str, str]  # every hyperparameter of the best trial, as the folds received them
    best_score: float  # the best trial's CV mean
    best_std: float
    best_trial: int
    cv_results: pd.DataFrame  # one row per trial, like scikit-learn's cv_results_
    model: Model  # trained on all rows with the best hyperparameters
    study: optuna.Study
    report: dict[str, Any]  # report.json
    # The best trial's out-of-fold predictions (oof_predictions.parquet): ID columns, target, fold, predictions.
    oof_predictions: pd.DataFrame | None = None
    # The best trial's feature importance: one row per feature (by the data's column names), gain and split
    # mean and std across folds and each fold's value, by mean gain.
    feature_importance: pd.DataFrame | None = None
    registered: bool = True  # False: no better than the constant model (report["registry"]["refused"] says why)

    def __repr__(self) -> str:
        return (f"TuneResult(best {self.metric} {self.best_score:.6f} +/- {self.best_std:.6f} at trial "
                f"#{self.best_trial} of {len(self.cv_results)}, run_dir={str(self.run_dir)!r}"
                + ("" if self.registered else ", not registered") + ")")


def _search_overrides(search: Mapping[str, SearchRange] | None) -> list[str]:
    overrides = []
    for name, spec in (search or {}).items():
        if isinstance(spec, str):
            text = spec
        elif isinstance(spec, list):
            text = ",".join(str(v) for v in spec)
        elif isinstance(spec, tuple) and len(spec) in (2, 3):
            text = ":".join(str(v) for v in spec)
        else:
            raise UserInputError(f"search[{name!r}] = {spec!r}: give 'low:high[:log]', (low, high[, 'log']) "
                                 "or a list of choices")
        overrides.append(f"{name}={text}")
    return overrides


def _fixed_strings(fixed: Mapping[str, Any] | None) -> dict[str, str]:
    """Python values as the strings a hyperparameters.json would hold (True -> "true"), under the declared
    or LightGBM name (an alias such as num_leaf becomes num_leaves)."""
    from warmcv.declarations import parse_hyperparameters

    values = dict(fixed or {})
    return parse_hyperparameters(values).to_strings() if values else {}


def cv_results_frame(records: Sequence[Mapping[str, Any]], searched: Sequence[str]) -> pd.DataFrame:
    """One row per trial that counts (interrupted-and-rerun ones do not), scikit-learn's column names.

    A pruned trial (state "pruned") shows the split scores of the folds it ran; its mean and std
    columns are NaN, as a mean over fewer folds is not comparable with the others'."""
    import pandas as pd

    rows = []
    for record in records:
        if record["state"] == "interrupted":
            continue
        cv = record["cv"] or {}
        folds = sorted(cv.get("folds", []), key=lambda f: f["fold"])
        whole = record["state"] != "pruned"
        row: dict[str, Any] = {"trial": record["number"], "state": record["state"],
                               "mean_test_score": cv.get("validation_mean", math.nan) if whole else math.nan,
                               "std_test_score": cv.get("validation_std", math.nan) if whole else math.nan}
        row.update({f"split{f['fold']}_test_score": f["validation_score"] for f in folds})
        row.update({"mean_train_score": cv.get("train_mean", math.nan) if whole else math.nan,
                    "std_train_score": cv.get("train_std", math.nan) if whole else math.nan})
        row.update({f"split{f['fold']}_train_score": f["train_score"] for f in folds})
        row["mean_fit_time"] = (sum(f["seconds"] for f in folds) / len(folds)) if folds else math.nan
        row["recommended_num_boost_round"] = cv.get("recommended_num_boost_round")
        row.update({f"param_{name}": record["params"].get(name) for name in searched})
        row["params"] = dict(record["params"])
        row["error"] = record.get("error")
        row["folds_run"] = len(folds)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.set_index("trial")


def importance_frame(importance: Mapping[str, Any] | None) -> pd.DataFrame | None:
    """report.json's feature_importance as a table: a row per feature, `gain_mean`, `gain_std`, `split_mean`,
    `split_std`, then `gain_fold<i>` and `split_fold<i>`."""
    import pandas as pd

    if not importance:
        return None
    rows = []
    for entry in importance["features"]:
        row: dict[str, Any] = {"feature": entry["feature"]}
        for kind in ("gain", "split"):
            row[f"{kind}_mean"], row[f"{kind}_std"] = entry[kind]["mean"], entry[kind]["std"]
        for kind in ("gain", "split"):
            row.update({f"{kind}_fold{fold}": value for fold, value in zip(importance["folds"], entry[kind]["folds"],
                                                                           strict=True)})
        rows.append(row)
    return pd.DataFrame(rows).set_index("feature")


def _pruning_options(prune: bool | Mapping[str, Any] | None) -> dict[str, Any]:
    """`prune` given as a mapping of PruningOptions fields: {"pruning": PruningOptions(...)}, checked."""
    if isinstance(prune, Mapping):
        from warmcv.settings.run import PruningOptions

        return {"pruning": PruningOptions(**prune)}
    if prune is not None and not isinstance(prune, bool):
        raise UserInputError(f"prune={prune!r}: give True, False or a mapping of pruning options")
    return {}


def tune(data: Any = None, target: str | None = None, *, folds: int = 5, trials: int = 40,
         search: Mapping[str, SearchRange] | None = None, fixed: Mapping[str, Any] | None = None,
         exclude: Sequence[str] = (), out: str | Path | None = None, resume: bool = False,
         timeout: float | None = None, seed: int = 0, sampler: Sampler = "tpe", parallel: int | None = None,
         workers: int | None = None, task: Task = "auto", splitter: Splitter = "auto", group_column: str | None = None,
         time_column: str | None = None, categorical: Sequence[str] | None = None, drop: Sequence[str] = (),
         split_seed: int = 0, id_columns: Sequence[str] = (), predict: Any = None,
         predict_output: PredictOutput | None = None, registry: str | Path | None = None,
         model_group: str | None = None, approval: ApprovalStatus | None = None,
         force_register: bool | None = None, mlflow: str | bool | None = None, mlflow_experiment: str | None = None,
         prune: bool | Mapping[str, Any] | None = None,
         progress: bool = True) -> TuneResult:
    """Tune LightGBM with k-fold cross-validation; fit, package and register the best model.

    `data`: a pandas DataFrame or a CSV/Parquet path (a file or a folder of parts). `search` changes the
    searched ranges (`{"num_leaves": (16, 128, "log"), "objective": ["binary"]}`), `fixed` fixes
    hyperparameters (they are then not searched), `exclude` leaves some out of the search.
    `predict` (a DataFrame or path) is predicted by the final model into predictions.csv
    (`predict_output` "probabilities", the default, or "labels"); the model is registered in the local
    registry with status `approval` (default PendingManualApproval).
    `id_columns` name row identifiers: not features, checked unique, and the first columns of predictions and
    of `TuneResult.oof_predictions`. A best model no better than the constant model is not registered (nor
    used for `predict`) unless `force_register=True`; `TuneResult.registered` says which.
    `mlflow` logs the study to MLflow (a parent run, a nested run per trial): a tracking URI, or None for
    $MLFLOW_TRACKING_URI if it is set, or False for no tracking; `mlflow_experiment` names the experiment.
    `out` is the run folder (default runs/run-<time>); with `resume=True` an existing run folder
    continues: finished trials are kept, `trials` may raise the budget, and `data` and the search
    settings, if given, must be the ones the run was started with. `prune=True` stops a trial whose
    first folds show it cannot beat the best trial on the same folds (recorded as pruned, with the
    scores of the folds it ran); a mapping both turns it on and sets its options (`{"rule":
    "wilcoxon", "threshold": 0.05}`, see `warmcv.settings.run.PruningOptions`); None is the default
    (`warmcv.settings.choices.PRUNE_BY_DEFAULT`). A first Ctrl-C (KeyboardInterrupt
    in Jupyter) stops the search cleanly and raises `warmcv.StopRequested`; resume it later.
    """
    from warmcv.api.inputs import data_path
    from warmcv.settings.run import PrepareOptions, RunSettings
    from warmcv.tuning.pipeline import Run, new_run_folder
    from warmcv.tuning.progress import TrialProgress
    from warmcv.tuning.run_settings import differences, new_run_settings, resume_settings
    from warmcv.tuning.search import stop_flag_on_signals

    if out is None:
        if resume:
            raise UserInputError("resume=True needs out=<the run folder to continue>")
        import time

        out = Path("runs") / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(out)
    # A new run folder that ends up without run.json (bad settings, Ctrl-C at the wrong moment) is removed.
    with new_run_folder(run_dir, resume=resume):
        pruning = _pruning_options(prune)
        resumable: dict[str, Any] = {"trials": trials, "parallel": parallel, "workers": workers, "timeout": timeout,
                                     "predict_output": predict_output, "approval": approval,
                                     "force_register": force_register,
                                     "prune": None if prune is None else isinstance(prune, Mapping) or bool(prune)}
        if mlflow is True:
            raise UserInputError("mlflow=True: give the tracking URI (or None to use $MLFLOW_TRACKING_URI)")
        tracking = {"mlflow_tracking_uri": (mlflow or os.environ.get(TRACKING_URI_ENV) or None)
                    if mlflow is not False else None, "mlflow_experiment": mlflow_experiment}
        if resume:
            saved = RunSettings.load(run_dir)
            if data is not None:
                given = new_run_settings(
                    data_path(data, run_dir), target or saved.target,
                    PrepareOptions(target=target or saved.target, folds=folds, task=task, splitter=splitter,
                                   group_column=group_column, time_column=time_column,
                                   categorical=tuple(categorical) if categorical else None, drop=tuple(drop),
                                   id_columns=tuple(id_columns), seed=split_seed),
                    search=_search_overrides(search), exclude=exclude, fixed=_fixed_strings(fixed), sampler=sampler,
                    seed=seed, registry=registry, model_group=model_group,
                    pruning=pruning.get("pruning", saved.pruning),
                    **{k: v for k, v in resumable.items() if v is not None},
                    **({"mlflow_tracking_uri": saved.mlflow_tracking_uri, "mlflow_experiment": saved.mlflow_experiment}
                       if mlflow is None and mlflow_experiment is None else tracking))
                changed = differences(saved, given)
                if changed:
                    raise UserInputError(f"resume continues {run_dir} with its saved settings, but these differ: "
                                         + "; ".join(changed))
            predict_source = (data_path(predict, run_dir / "predict", same_as_before=False)
                              if predict is not None else None)
            settings = resume_settings(saved, predict=predict_source, **resumable)
        else:
            if data is None or not target:
                raise UserInputError("give data (a DataFrame or a path) and target (the column to predict)")
            prepare = PrepareOptions(target=target, folds=folds, task=task, splitter=splitter,
                                     group_column=group_column, time_column=time_column,
                                     categorical=tuple(categorical) if categorical else None, drop=tuple(drop),
                                     id_columns=tuple(id_columns), seed=split_seed)
            settings = new_run_settings(
                data_path(data, run_dir), target, prepare, search=_search_overrides(search), exclude=exclude,
                fixed=_fixed_strings(fixed), sampler=sampler, seed=seed,
                predict=data_path(predict, run_dir / "predict", same_as_before=False) if predict is not None else None,
                registry=registry, model_group=model_group, **tracking, **pruning,
                **{k: v for k, v in resumable.items() if v is not None})

        display = TrialProgress(bar=True) if progress else None
        with stop_flag_on_signals() as stop:
            result = Run(run_dir, settings, resume=resume, on_trial=display, stop=stop,
                         on_stage=display.say if display else None,
                         on_search_start=display.start if display else None).execute()
        if display is not None:
            display.close()
    registry_entry = result.report["registry"]
    if not registry_entry["registered"]:
        warnings.warn(f"warmcv: the model was not registered: {registry_entry['refused']}; "
                      "tune(..., resume=True, force_register=True) registers it anyway", stacklevel=2)
    return _result(run_dir, result.report)


def _result(run_dir: Path, report: dict[str, Any]) -> TuneResult:
    import pandas as pd

    from warmcv.api.models import load_model
    from warmcv.tuning.study import open_study

    best = report["best"]
    study = open_study(run_dir, report["metric"]["direction"], sampler=None, create=False)
    oof = (report.get("oof_predictions") or {}).get("path")
    return TuneResult(
        run_dir=run_dir, metric=report["metric"]["name"], direction=report["metric"]["direction"],
        best_params=dict(best["params"]), best_hyperparameters=dict(best["hyperparameters"]),
        best_score=best["cv_mean"], best_std=best["cv_std"], best_trial=best["trial"],
        cv_results=cv_results_frame(report["trials"], sorted(report["search"]["space"])),
        model=load_model(run_dir / "model"), study=study, report=report,
        oof_predictions=pd.read_parquet(oof) if oof else None,
        feature_importance=importance_frame(report.get("feature_importance")),
        registered=bool(report["registry"]["registered"]))
