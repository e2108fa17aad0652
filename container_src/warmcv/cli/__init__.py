"""The `warmcv` command. Each group of subcommands lives in its own module with a `register` function."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from warmcv import __version__
from warmcv.errors import FoldFailed, StopRequested, UserInputError
from warmcv.logs import configure_logging

log = logging.getLogger("warmcv")

# Modules that add subcommands; a module that cannot be imported (an optional extra not installed)
# is skipped, and its commands explain what to install when called.
COMMAND_MODULES: tuple[str, ...] = (
    "warmcv.cli.data",
    "warmcv.cli.training",
    "warmcv.cli.run",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warmcv",
        description="k-fold cross-validated hyperparameter tuning for LightGBM, locally or on Amazon SageMaker.",
    )
    parser.add_argument("--version", action="version", version=f"warmcv {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        return int(args.handler(args) or 0)
    except (UserInputError, FoldFailed) as error:
        print(f"warmcv: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, UserInputError) else 1
    except (StopRequested, KeyboardInterrupt) as error:
        print(f"warmcv: stopped ({error or 'interrupted'})", file=sys.stderr)
        return 130
