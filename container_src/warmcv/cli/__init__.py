"""The `warmcv` command. Each group of subcommands lives in its own module with a `register` function."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from warmcv import __version__
from warmcv.errors import FoldFailed, StopRequested, UserInputError
from warmcv.logs import configure_logging

log = logging.getLogger("warmcv")

# Modules that add subcommands. Each imports its heavy or optional dependencies (Optuna, the SageMaker
# SDK, gunicorn) only when its command runs, so `warmcv --help` works with the core install alone and a
# command whose extra is missing says what to install.
COMMAND_MODULES: tuple[str, ...] = (
    "warmcv.cli.data",
    "warmcv.cli.training",
    "warmcv.cli.launcher",
    "warmcv.cli.serving",
    "warmcv.cli.planning",
    "warmcv.cli.run",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warmcv",
        description="k-fold cross-validated hyperparameter tuning for LightGBM, locally or on Amazon SageMaker.",
    )
    parser.add_argument("--version", action="version", version=f"warmcv {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    parser.add_argument("--failure-file", type=Path,
                        help="on failure, also write the reason here (a Processing job shows "
                             "/opt/ml/output/message as its ExitMessage)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)  # inside: a Ctrl-C while the command modules import is a stop too
        configure_logging(args.log_level)
        return int(args.handler(args) or 0)
    except (UserInputError, FoldFailed) as error:
        return _fail(args, f"error: {error}", 2 if isinstance(error, UserInputError) else 1)
    except (StopRequested, KeyboardInterrupt) as error:
        return _fail(args, f"stopped ({str(error) or 'interrupted'})", 130)
    except Exception as error:
        # Faults of the surroundings (no AWS credentials, a full disk) are one line; anything else is
        # our bug and keeps its traceback.
        from warmcv.cli.faults import user_facing_fault

        fault = user_facing_fault(error)
        if fault is None:
            raise
        return _fail(args, f"error: {fault}", 2)


def _fail(args: argparse.Namespace | None, message: str, code: int) -> int:
    print(f"warmcv: {message}", file=sys.stderr)
    if args is not None and args.failure_file:
        from warmcv.contract import failure_reason

        args.failure_file.parent.mkdir(parents=True, exist_ok=True)
        args.failure_file.write_text(failure_reason(message))
    return code
