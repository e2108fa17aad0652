"""Argument helpers shared by the subcommand modules."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from warmcv.errors import UserInputError
from warmcv.settings.choices import SPLITTERS, TASKS

if TYPE_CHECKING:
    from warmcv.settings.run import PrepareOptions


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """`--set name=value` pairs as the string mapping hyperparameters.json would hold."""
    values: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserInputError(f"--set {item!r}: expected name=value, e.g. --set num_leaves=63")
        values[name.strip()] = value.strip()
    return values


def default_run_dir(prefix: str) -> Path:
    return Path("runs") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def add_prepare_options(parser: argparse.ArgumentParser) -> None:
    """Options that shape preparation; shared by `prepare`, `cv` and `run`."""
    group = parser.add_argument_group("preparation")
    group.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    group.add_argument("--task", default="auto", choices=TASKS)
    group.add_argument("--splitter", default="auto", choices=SPLITTERS,
                       help="auto: stratified for classes, k-fold for regression, grouped with --group-column, "
                            "time-ordered with --time-column")
    group.add_argument("--group-column", help="rows sharing a value stay in one fold (GroupKFold)")
    group.add_argument("--time-column", help="order rows by this column and validate forward (TimeSeriesSplit)")
    group.add_argument("--categorical", help="comma-separated columns to treat as categorical "
                                             "(default: every non-numeric column)")
    group.add_argument("--drop", help="comma-separated columns to leave out of the features (leaks, junk)")
    group.add_argument("--id-column", action="append", metavar="COLUMN",
                       help="a row identifier (repeatable): not a feature, checked unique, and the first column(s) "
                            "of predictions and out-of-fold predictions")
    group.add_argument("--split-seed", type=int, default=0, help="seed of the fold assignment (default 0)")


def prepare_options_from(args: argparse.Namespace, target: str) -> PrepareOptions:
    from warmcv.settings.run import PrepareOptions

    def columns(text: str | None) -> tuple[str, ...] | None:
        return tuple(c.strip() for c in text.split(",") if c.strip()) if text else None

    return PrepareOptions(
        target=target, folds=args.folds, task=args.task, splitter=args.splitter, group_column=args.group_column,
        time_column=args.time_column, categorical=columns(args.categorical), drop=columns(args.drop) or (),
        id_columns=tuple(args.id_column or ()), seed=args.split_seed,
    )
