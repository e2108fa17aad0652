"""`warmcv run` (the whole pipeline on this machine) and `warmcv registry` (the local model registry)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warmcv.cli.common import add_prepare_options, default_run_dir, parse_assignments, prepare_options_from
from warmcv.errors import UserInputError
from warmcv.settings.choices import APPROVAL_STATUSES, PREDICT_OUTPUTS, PRUNE_BY_DEFAULT, PRUNE_RULES, SAMPLERS

if TYPE_CHECKING:
    from warmcv.settings.run import RunSettings

# Options of a new run that a resume must not be given (the run folder's run.json decides them).
_NEW_RUN_ONLY = ("data", "target", "example", "config", "search", "set", "exclude", "sampler", "seed", "out",
                 "registry", "model_group", "folds", "task", "splitter", "group_column", "time_column",
                 "categorical", "drop", "split_seed", "id_column", "mlflow", "mlflow_experiment", "no_mlflow",
                 "prune_rule", "prune_threshold")
# `warmcv run`'s exit status when the run finished but its model was not registered (no better than constant).
NOT_REGISTERED = 3
_CONFIG_KEYS = {"trials", "parallel", "workers", "timeout", "sampler", "seed", "search", "set", "exclude", "prune",
                "pruning"}
EXAMPLE_HOLDOUT = "example_holdout.csv"


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run", help="the whole pipeline on this machine: prepare, tune with k-fold CV, fit, register, predict",
        description="prepare -> Optuna search over k-fold cross-validation on warm worker processes -> final fit "
                    "on all data with the best hyperparameters -> model.tar.gz -> local registry -> predictions. "
                    "Everything goes to one run folder; Ctrl-C stops cleanly and --resume continues.")
    source = run.add_argument_group("data")
    source.add_argument("--data", type=Path, help="CSV or Parquet file, or a folder of parts")
    source.add_argument("--target", help="the column to predict")
    source.add_argument("--example", action="store_true",
                        help="use the bundled census-like example (and predict a fresh hold-out sample of it)")
    source.add_argument("--predict", type=Path, help="CSV/Parquet to predict with the final model")
    source.add_argument("--predict-output", choices=PREDICT_OUTPUTS, default=None,
                        help="classification predictions as class probabilities (default) or labels")
    search = run.add_argument_group("search")
    search.add_argument("--trials", type=int, help="trial budget (default 40); on --resume, the new total")
    search.add_argument("--parallel", type=int,
                        help="trials in flight at once (default: enough to keep every worker busy, at least 2)")
    search.add_argument("--workers", type=int, help="warm worker processes (default: one per core)")
    search.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    search.add_argument("--sampler", choices=SAMPLERS, help="Optuna sampler (default tpe)")
    search.add_argument("--seed", type=int, help="sampler seed (default 0)")
    search.add_argument("--search", action="append", metavar="NAME=SPEC",
                        help="search range: num_leaves=16:128:log, learning_rate=0.01:0.2, objective=a,b; "
                             "adds the hyperparameter if it is not searched by default")
    search.add_argument("--exclude", action="append", metavar="NAME", help="leave a hyperparameter out of the search")
    search.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="fix a hyperparameter (it is then not searched), e.g. --set metric=logloss")
    search.add_argument("--prune", action=argparse.BooleanOptionalAction, default=None,
                        help="fold-level pruning: hand each trial's folds out one at a time and stop a trial "
                             "that cannot beat the best on the same folds (recorded as pruned with the folds it "
                             f"ran; default {'on' if PRUNE_BY_DEFAULT else 'off'}); may change on --resume")
    search.add_argument("--prune-rule", choices=PRUNE_RULES, default=None,
                        help="paired-bound (default): chance to beat the best below the threshold; wilcoxon: "
                             "Optuna's WilcoxonPruner test (with 5 folds it cannot prune before the 4th)")
    search.add_argument("--prune-threshold", type=float, default=None,
                        help="pruning threshold, a probability (paired-bound) or p-value (wilcoxon); default 0.1")
    search.add_argument("--config", type=Path,
                        help="TOML or JSON file with trials/parallel/workers/timeout/sampler/seed/prune and "
                             "[search], [set], [pruning] tables and an exclude list; command-line options win")
    output = run.add_argument_group("output")
    output.add_argument("--out", type=Path, help="run folder (default runs/run-<time>)")
    output.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR (its settings are kept; --trials, --parallel, --workers, "
                             "--timeout and --predict may change)")
    output.add_argument("--registry", type=Path, help="registry folder (default: registry/ next to the run folder)")
    output.add_argument("--model-group", help="registry model group (default: <data file>-<target>)")
    output.add_argument("--approval", choices=APPROVAL_STATUSES, default=None,
                        help="approval status of the registered model (default PendingManualApproval)")
    output.add_argument("--force-register", action="store_true", default=None,
                        help="register (and predict with) the best model even if it is no better than the constant "
                             "model (by default such a model is not registered and the exit status is 3)")
    output.add_argument("--no-progress", action="store_true", help="one log line per trial instead of a progress bar")
    tracking = run.add_argument_group("tracking")
    tracking.add_argument("--mlflow", metavar="URI",
                          help="log the study to MLflow: a parent run, a nested run per trial (default: "
                               "$MLFLOW_TRACKING_URI if set); e.g. http://127.0.0.1:5000, sqlite:///mlflow.db, "
                               "file:///abs/mlruns, or a SageMaker tracking server ARN")
    tracking.add_argument("--mlflow-experiment", metavar="NAME",
                          help="MLflow experiment (default: the model group's name)")
    tracking.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow, even if "
                                                                   "MLFLOW_TRACKING_URI is set")
    add_prepare_options(run)
    # The parser itself, so a resume can tell which new-run options were actually given.
    run.set_defaults(handler=_run, run_parser=run)

    registry = commands.add_parser("registry", help="list or approve models in the local registry")
    registry.add_argument("action", choices=["list", "approve", "reject"])
    registry.add_argument("group", nargs="?", help="model group")
    registry.add_argument("version", nargs="?", type=int, help="version (approve/reject)")
    registry.add_argument("--registry", type=Path, default=Path("runs") / "registry",
                          help="registry folder (default runs/registry)")
    registry.add_argument("--json", action="store_true", help="machine-readable output (list)")
    registry.set_defaults(handler=_registry)


def _require_local_extra() -> None:
    missing = [m for m in ("optuna", "matplotlib", "tqdm") if _missing(m)]
    if missing:
        raise UserInputError(f"warmcv run needs {', '.join(missing)}: install the local extra, "
                             "pip install 'warmcv[local]'")


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def load_config(path: Path) -> dict[str, Any]:
    """A run's options from TOML or JSON; unknown keys are errors (a typo must not be silently ignored)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise UserInputError(f"cannot read config file {path}: {error}") from None
    try:
        if path.suffix.lower() == ".json":
            config = json.loads(text)
        else:
            import tomllib

            config = tomllib.loads(text)
    except (ValueError, json.JSONDecodeError) as error:
        raise UserInputError(f"config file {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: "
                             f"{error}") from None
    if not isinstance(config, dict):
        raise UserInputError(f"config file {path} must hold a table of options")
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise UserInputError(f"config file {path}: unknown key(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(sorted(_CONFIG_KEYS))}")
    for table in ("search", "set", "pruning"):
        if not isinstance(config.get(table, {}), dict):
            raise UserInputError(f"config file {path}: [{table}] must be a table of name = value")
    if not isinstance(config.get("exclude", []), list):
        raise UserInputError(f"config file {path}: exclude must be a list of names")
    return config


def _config_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def settings_from_args(args: argparse.Namespace, out: Path) -> RunSettings:
    """RunSettings for a new run: config file first, then the command line over it."""
    from warmcv.examples import EXAMPLE_TARGET, example_path
    from warmcv.model.registry import check_group_name
    from warmcv.settings.run import PruningOptions
    from warmcv.tuning.run_settings import new_run_settings

    config = load_config(args.config) if args.config else {}
    if args.example:
        if args.data or args.target:
            raise UserInputError("--example brings its own data and target; drop --data/--target")
        data, target = example_path(), EXAMPLE_TARGET
    else:
        if not args.data or not args.target:
            raise UserInputError("give --data FILE and --target COLUMN (or --example to try the bundled data set)")
        data, target = args.data, args.target
    overrides = {**{n: f"{n}={_config_value(v)}" for n, v in config.get("search", {}).items()},
                 **{text.partition("=")[0].strip(): text for text in args.search or []}}
    fixed = {**{n: _config_value(v) for n, v in config.get("set", {}).items()}, **parse_assignments(args.set)}

    def pick(name: str, default: Any) -> Any:
        value = getattr(args, name)
        return value if value is not None else config.get(name, default)

    flags = {k: v for k, v in (("rule", args.prune_rule), ("threshold", args.prune_threshold)) if v is not None}
    pruning = {**config.get("pruning", {}), **flags}
    pruning_source = " and ".join([*([f"[pruning] of {args.config}"] if config.get("pruning") else []),
                                   *(["--prune-rule/--prune-threshold"] if flags else [])])
    predict = args.predict
    _check_predict_source(predict)
    if args.example and predict is None:
        predict = _write_example_holdout(out)
    if args.model_group:
        check_group_name(args.model_group)
    return new_run_settings(
        data, target, prepare_options_from(args, target), search=overrides.values(),
        exclude=[*config.get("exclude", []), *(args.exclude or [])], fixed=fixed,
        trials=pick("trials", 40), parallel=pick("parallel", None), workers=pick("workers", None),
        timeout=pick("timeout", None), sampler=pick("sampler", "tpe"), seed=pick("seed", 0), predict=predict,
        predict_output=args.predict_output or "probabilities", registry=args.registry,
        model_group=args.model_group or ("census-income-example" if args.example else None),
        approval=args.approval or "PendingManualApproval", force_register=bool(args.force_register),
        mlflow_tracking_uri=tracking_uri(args.mlflow, off=args.no_mlflow), mlflow_experiment=args.mlflow_experiment,
        prune=pick("prune", None),
        **({"pruning": PruningOptions.parse(pruning, pruning_source)} if pruning else {}),
    )


def tracking_uri(given: str | None, off: bool = False) -> str | None:
    """--mlflow URI, else $MLFLOW_TRACKING_URI (MLflow's own variable), unless tracking is turned off."""
    import os

    if off:
        if given:
            raise UserInputError("--mlflow and --no-mlflow contradict each other; give one")
        return None
    return given or os.environ.get("MLFLOW_TRACKING_URI") or None


def _check_predict_source(path: Path | None) -> None:
    """Checked before the search, not found missing after an hour of it."""
    if path is not None and not path.exists():
        raise UserInputError(f"--predict {path}: no such file or folder")


def _write_example_holdout(out: Path) -> Path:
    """Fresh rows from the example's generator (another seed, no target): something honest to predict."""
    from warmcv.examples import EXAMPLE_TARGET, make_census_like
    from warmcv.files import check_writable_folder

    check_writable_folder(out, "run folder")
    path = out / EXAMPLE_HOLDOUT
    make_census_like(rows=1000, seed=20240).drop(columns=[EXAMPLE_TARGET]).to_csv(path, index=False)
    return path


def _run(args: argparse.Namespace) -> int:
    from warmcv.openmp import prefer_passive_openmp

    prefer_passive_openmp()
    _require_local_extra()
    from warmcv.tuning.pipeline import new_run_folder
    from warmcv.tuning.report import summary_table

    if args.resume:
        given = [name for name in _NEW_RUN_ONLY if getattr(args, name) != args.run_parser.get_default(name)]
        if given:
            raise UserInputError(f"--resume continues {args.resume} with its saved settings; drop "
                                 + ", ".join("--" + g.replace("_", "-") for g in given))
        run_dir = args.resume
    else:
        run_dir = args.out or default_run_dir("run")
    # A new run folder that ends up without run.json (bad settings, Ctrl-C at the wrong moment) is removed.
    with new_run_folder(run_dir, resume=bool(args.resume)):
        result = _run_in(run_dir, args)
    print()
    print(summary_table(result.report))
    registry = result.report["registry"]
    if not registry["registered"]:
        print(f"warmcv: not registered: {registry['refused']}; the run folder keeps the model and report "
              f"(resume with --force-register to register it: warmcv run --resume {run_dir} --force-register)",
              file=sys.stderr)
        return NOT_REGISTERED
    return 0


def _run_in(run_dir: Path, args: argparse.Namespace) -> Any:
    import logging

    from warmcv.settings.run import RunSettings
    from warmcv.tuning.pipeline import Run
    from warmcv.tuning.progress import TrialProgress
    from warmcv.tuning.run_settings import resume_settings
    from warmcv.tuning.search import stop_flag_on_signals

    if args.resume:
        _check_predict_source(args.predict)
        settings = resume_settings(RunSettings.load(run_dir), trials=args.trials, parallel=args.parallel,
                                   workers=args.workers, timeout=args.timeout, predict=args.predict,
                                   predict_output=args.predict_output, approval=args.approval,
                                   force_register=args.force_register, prune=args.prune)
    else:
        settings = settings_from_args(args, run_dir)
    progress = TrialProgress(bar=not args.no_progress and sys.stderr.isatty())
    # Fold-by-fold and step-by-step lines would drown the progress display; the stages are announced
    # below and the report keeps every fold's score.
    for name in ("warmcv.cv", "warmcv.data.prepare"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with stop_flag_on_signals() as stop:
            from tqdm.contrib.logging import logging_redirect_tqdm

            with logging_redirect_tqdm():
                return Run(run_dir, settings, resume=bool(args.resume), on_trial=progress, stop=stop,
                           on_stage=progress.say, on_search_start=progress.start).execute()
    finally:
        progress.close()


def _registry(args: argparse.Namespace) -> int:
    from warmcv.model.registry import LocalModelRegistry

    registry = LocalModelRegistry(args.registry)
    if args.action == "list":
        versions = registry.versions(args.group)
        if args.json:
            print(json.dumps(versions, indent=2))
            return 0
        if not versions:
            print(f"no models registered in {registry.path}" + (f" for group {args.group}" if args.group else ""))
            return 0
        for v in versions:
            print(f"{v['ModelPackageGroupName']:<30} v{v['ModelPackageVersion']:<4} {v['ModelApprovalStatus']:<22} "
                  f"{_cv_text(v['ModelMetrics'])}  {v['CreationTime']}  {v['ModelDataUrl']}")
        return 0
    if not args.group or args.version is None:
        raise UserInputError(f"warmcv registry {args.action} needs GROUP and VERSION")
    status = "Approved" if args.action == "approve" else "Rejected"
    entry = registry.set_status(args.group, args.version, status)
    print(f"{entry['ModelPackageGroupName']} version {entry['ModelPackageVersion']}: {entry['ModelApprovalStatus']}")
    return 0


def _cv_text(metrics: dict[str, Any]) -> str:
    """A version's CV score for the listing; entries registered by other tools may lack some metrics."""
    try:
        return f"CV {metrics['metric']} {float(metrics['cv_mean']):.6f} +/- {float(metrics['cv_std']):.6f}"
    except (KeyError, TypeError, ValueError):
        return "CV (not recorded)"
