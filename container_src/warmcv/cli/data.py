"""`warmcv prepare` and `warmcv example`: getting data into the prepared form every mode reads."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from warmcv.cli.common import add_prepare_options, prepare_options_from


def register(commands: argparse._SubParsersAction) -> None:
    prepare = commands.add_parser("prepare", help="validate raw data, assign folds, write the prepared data set",
                                  description="Read CSV/Parquet (a file or a folder of parts), check the target, "
                                              "fix the schema, assign folds; write data.parquet + manifest.json.")
    prepare.add_argument("--data", required=True, type=Path, help="CSV or Parquet file, or a folder of parts")
    prepare.add_argument("--target", required=True, help="the column to predict")
    prepare.add_argument("--out", required=True, type=Path, help="output folder for the prepared data set")
    add_prepare_options(prepare)
    prepare.set_defaults(handler=_prepare)

    example = commands.add_parser("example", help="write the bundled example data set (census-like income)")
    example.add_argument("--out", type=Path, default=Path("census.csv.gz"), help="where to write it")
    example.set_defaults(handler=_example)


def _prepare(args: argparse.Namespace) -> int:
    from warmcv.data.prepare import prepare

    manifest = prepare(args.data, args.out, prepare_options_from(args, args.target))
    print(f"prepared {manifest.rows} rows into {args.out}: task {manifest.task}, {manifest.n_folds} folds "
          f"({manifest.splitter}), {len(manifest.schema.features)} features "
          f"({len(manifest.schema.categorical_names)} categorical), rows per fold {manifest.rows_per_fold}")
    return 0


def _example(args: argparse.Namespace) -> int:
    from warmcv.examples import EXAMPLE_TARGET, example_path

    args.out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(example_path(), args.out)
    print(f"wrote {args.out} (target column: {EXAMPLE_TARGET})")
    return 0
