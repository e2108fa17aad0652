"""The simulated SageMaker of the unit tests is the package's own (`warmcv.simulation.sagemaker`): one simulator.

Kept as an import path so the runner's timing tests and bench scripts read as before.
"""

from warmcv.simulation.sagemaker import (  # noqa: F401 - re-exported
    ACCOUNT,
    SimJob,
    SimulatedS3,
    SimulatedSageMaker,
    client_error,
    fold_summary,
    metrics_archive,
)
