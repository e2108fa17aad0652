"""The training job's entry point, and the one place that turns any outcome into the container contract.

The image runs the sagemaker-training toolkit's `train` with SAGEMAKER_TRAINING_MODULE=
warmcv.modes.entry:train, so this code runs inside PID 1's process and our SIGTERM handler works
(the toolkit does not forward signals to a child, aws/sagemaker-training-toolkit#125).

Failure is reported by raising, never by `sys.exit`: the toolkit's `finally` exits with its own code,
so a `SystemExit(1)` from here would end the job with 0 and SageMaker would mark a failed trial
Completed. We write the failure file ourselves (the toolkit keeps an existing one) and raise a
subclass of the toolkit's ClientError, which makes it exit 1 without adding a traceback.
"""

from __future__ import annotations

import logging
import traceback

from warmcv.contract import ContainerPaths, data_channel, read_hyperparameters, write_failure
from warmcv.data.manifest import read_manifest
from warmcv.declarations import HyperparameterValues, parse_hyperparameters
from warmcv.errors import FoldFailed, StopRequested, UserInputError
from warmcv.logs import configure_logging
from warmcv.modes.signals import stop_on_signals

log = logging.getLogger(__name__)


def dispatch(paths: ContainerPaths, hps: HyperparameterValues) -> None:
    if hps["mode"] == "worker":
        from warmcv.modes.worker import run_worker

        run_worker(paths, hps)
        return
    if hps["mode"] == "driver":
        from warmcv.modes.driver import run_driver

        run_driver(paths, hps)
        return
    from warmcv.cv import check_n_folds
    from warmcv.modes.coordinator import run_coordinator
    from warmcv.runners.select import select_runner

    data_dir = data_channel(paths)
    manifest = read_manifest(data_dir)
    check_n_folds(hps, manifest)
    with select_runner(hps, paths, manifest, data_dir) as runner:
        run_coordinator(paths, hps, runner, manifest, data_dir)


def failure_message(error: BaseException) -> str:
    """What the failure file says: the user's problem plainly, our own bugs with their traceback."""
    if isinstance(error, (UserInputError, FoldFailed)):
        return str(error)
    if isinstance(error, StopRequested):
        return f"Stopped: {error}; every fold still running was stopped"
    if isinstance(error, KeyboardInterrupt):
        return "Stopped: interrupted"
    return f"Internal error: {type(error).__name__}: {error}\n{traceback.format_exc()}"


def run_training_job(paths: ContainerPaths | None = None) -> int:
    """Run the job described by the contract under `paths`; returns the exit code (failure file written)."""
    paths = paths or ContainerPaths.from_env()
    try:
        with stop_on_signals():
            dispatch(paths, parse_hyperparameters(read_hyperparameters(paths)))
        return 0
    except BaseException as error:  # noqa: BLE001 - every outcome must end in the failure file
        message = failure_message(error)
        log.error("training failed: %s", message)
        write_failure(paths, message)
        return 1


def train() -> None:
    """SAGEMAKER_TRAINING_MODULE entry point (called by the toolkit with no arguments)."""
    configure_logging()
    if run_training_job() != 0:
        from sagemaker_training.errors import ClientError

        class TrainingFailed(ClientError):
            """Tells the toolkit to exit 1 without a traceback; the failure file is already written."""

        raise TrainingFailed("training failed; see the failure file")
