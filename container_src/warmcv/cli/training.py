"""`warmcv train | cv | fit | predict | hyperparameters`: the image's modes, runnable from a shell."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from warmcv.cli.common import add_prepare_options, default_run_dir, parse_assignments, prepare_options_from
from warmcv.openmp import prefer_passive_openmp


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="run a training job on the SageMaker container contract (what the image does)",
        description="Read hyperparameters.json and the channels under --base-dir (default $SAGEMAKER_BASE_DIR "
                    "or /opt/ml) and run mode=worker or mode=coordinator; failures go to output/failure.")
    train.add_argument("--base-dir", type=Path, help="the contract's base directory (default /opt/ml)")
    train.set_defaults(handler=_train)

    cv = commands.add_parser(
        "cv", help="cross-validate one hyperparameter combination, then fit the final model on all data",
        description="prepare (unless --prepared) -> coordinator over K folds on warm local workers -> "
                    "worker on the full data set. Prints the CV score and writes everything to --out.")
    source = cv.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="raw CSV/Parquet file or folder (needs --target)")
    source.add_argument("--prepared", type=Path, help="a folder written by `warmcv prepare`")
    source.add_argument("--example", action="store_true", help="use the bundled census-like example")
    cv.add_argument("--target", help="the column to predict (with --data)")
    cv.add_argument("--out", type=Path, help="run folder (default runs/cv-<time>)")
    cv.add_argument("--set", action="append", metavar="NAME=VALUE", help="a hyperparameter, e.g. --set num_leaves=63")
    cv.add_argument("--no-fit", action="store_true", help="skip the final fit on all data")
    add_prepare_options(cv)
    cv.set_defaults(handler=_cv)

    fit = commands.add_parser("fit", help="train on the full prepared data set and save the model")
    fit.add_argument("--prepared", type=Path, required=True, help="a folder written by `warmcv prepare`")
    fit.add_argument("--out", type=Path, required=True, help="model folder (model.txt + model.json)")
    fit.add_argument("--set", action="append", metavar="NAME=VALUE", help="a hyperparameter")
    fit.set_defaults(handler=_fit)

    predict = commands.add_parser("predict", help="predict a CSV/Parquet file with a saved model")
    predict.add_argument("--model", type=Path, required=True, help="model folder (model.txt + model.json)")
    predict.add_argument("--data", type=Path, required=True, help="CSV/Parquet file or folder to predict")
    predict.add_argument("--out", type=Path, required=True, help="output CSV")
    predict.add_argument("--output", choices=["probabilities", "labels"], default="probabilities",
                         help="classification output (regression always gives values)")
    predict.set_defaults(handler=_predict)

    hps = commands.add_parser("hyperparameters", help="list every hyperparameter with its type, range and default")
    hps.add_argument("--json", action="store_true", help="machine-readable output")
    hps.set_defaults(handler=_hyperparameters)


def _train(args: argparse.Namespace) -> int:
    from warmcv.contract import ContainerPaths
    from warmcv.modes.entry import run_training_job

    return run_training_job(ContainerPaths(args.base_dir) if args.base_dir else None)


def _resolve_prepared(args: argparse.Namespace, out: Path) -> Path:
    """The prepared data folder: given, or prepared now from --data / --example into <out>/prepared."""
    from warmcv.data.prepare import prepare
    from warmcv.errors import UserInputError
    from warmcv.examples import EXAMPLE_TARGET, example_path

    if args.prepared:
        return args.prepared
    data, target = (example_path(), EXAMPLE_TARGET) if args.example else (args.data, args.target)
    if not target:
        raise UserInputError("--data needs --target (the column to predict)")
    prepared = out / "prepared"
    manifest = prepare(data, prepared, prepare_options_from(args, target))
    print(f"prepared {manifest.rows} rows: task {manifest.task}, {manifest.n_folds} folds ({manifest.splitter}), "
          f"{len(manifest.schema.features)} features ({len(manifest.schema.categorical_names)} categorical)")
    return prepared


def _cv(args: argparse.Namespace) -> int:
    prefer_passive_openmp()
    from warmcv.cv import check_n_folds, cross_validate, final_fit_hyperparameters, train_and_save
    from warmcv.data.manifest import PreparedData, read_manifest
    from warmcv.declarations import parse_hyperparameters
    from warmcv.modes.coordinator import report, write_summary
    from warmcv.modes.signals import stop_on_signals
    from warmcv.runners.local import LocalFoldRunner

    out = args.out or default_run_dir("cv")
    given = parse_assignments(args.set)
    hps = parse_hyperparameters({**given, "mode": "coordinator"})
    with stop_on_signals():
        prepared = _resolve_prepared(args, out)
        manifest = read_manifest(prepared)
        check_n_folds(hps, manifest)
        with LocalFoldRunner(prepared, n_folds=manifest.n_folds) as runner:
            summary = cross_validate(runner, hps, manifest)
        report(summary)
        write_summary(summary, out)
        _print_folds(summary)
        if args.no_fit:
            return 0
        final = final_fit_hyperparameters(given, summary)
        outcome = train_and_save(PreparedData.load(prepared), parse_hyperparameters(final), out / "model",
                                 out / "final", cross_validation=summary.to_dict())
    print(f"CV {summary.metric}: {summary.validation_mean:.6f} +/- {summary.validation_std:.6f} "
          f"({summary.n_folds} folds, {summary.seconds:.1f} s); final model ({outcome.best_iteration} rounds, "
          f"train {summary.metric} {outcome.train_score:.6f}) in {out / 'model'}")
    return 0


def _print_folds(summary) -> None:
    print(f"{'fold':>4}  {'validation':>12}  {'train':>12}  {'best iter':>9}  {'seconds':>8}")
    for r in summary.folds:
        print(f"{r.fold:>4}  {r.validation_score:>12.6f}  {r.train_score:>12.6f}  {r.best_iteration:>9}  "
              f"{r.seconds:>8.2f}")


def _fit(args: argparse.Namespace) -> int:
    prefer_passive_openmp()
    from warmcv.cv import train_and_save
    from warmcv.data.manifest import PreparedData
    from warmcv.declarations import parse_hyperparameters

    hps = parse_hyperparameters({**parse_assignments(args.set), "mode": "worker", "fold": "all"})
    outcome = train_and_save(PreparedData.load(args.prepared), hps, args.out, args.out / "metrics")
    print(f"model with {outcome.best_iteration} rounds written to {args.out}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    prefer_passive_openmp()
    from warmcv.model.artifacts import TrainedModel
    from warmcv.model.batch import predict_file

    rows = predict_file(TrainedModel.load(args.model), args.data, args.out, output=args.output)
    print(f"wrote {rows} predictions to {args.out}")
    return 0


def _hyperparameters(args: argparse.Namespace) -> int:
    from warmcv.declarations import HYPERPARAMETERS

    rows = []
    for hp in HYPERPARAMETERS.values():
        tuning = getattr(hp, "tuning", None)
        rows.append({
            "name": hp.name, "type": type(hp).__name__.replace("Hyperparameter", "").lower(),
            "default": hp.format(hp.default), "allowed": hp.allowed(),
            "tuning": f"{tuning.low:g}..{tuning.high:g} {tuning.scaling}" if tuning else "",
            "help": hp.help,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']:<24} {row['type']:<12} default {row['default']:<12} {row['allowed']}"
              + (f"; tuned over {row['tuning']}" if row["tuning"] else ""))
        print(f"{'':<24} {row['help']}")
    return 0
