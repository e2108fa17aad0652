"""The settings of a preparation and of a local tuning run (`warmcv run`, `warmcv.tune`, run.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from warmcv.errors import UserInputError
from warmcv.files import write_text_atomic
from warmcv.settings.base import Settings
from warmcv.settings.choices import (
    MAX_FOLDS,
    MIN_FOLDS,
    ApprovalStatus,
    PredictOutput,
    PruneRule,
    Sampler,
    Splitter,
    Task,
)

SETTINGS_FILE = "run.json"
RUN_FORMAT_VERSION = 1


class PrepareOptions(Settings):
    """How raw data becomes folds: the target, K, the task and the splitter (and what shapes them)."""

    what: ClassVar[str] = "preparation settings"

    target: str = Field(min_length=1)
    folds: int = Field(5, ge=MIN_FOLDS, le=MAX_FOLDS)
    task: Task = "auto"
    splitter: Splitter = "auto"
    group_column: str | None = None
    time_column: str | None = None
    categorical: tuple[str, ...] | None = None  # None: every non-numeric column
    drop: tuple[str, ...] = ()
    # Row identifiers: not features, unique (together), and the first columns of predictions and OOF predictions.
    id_columns: tuple[str, ...] = ()
    seed: int = Field(0, ge=0, le=2**32 - 1)  # scikit-learn's random_state range

    @field_validator("group_column", "time_column", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        """A TOML file has no null: an empty string means no such column."""
        return None if value == "" else value


class PruningOptions(Settings):
    """How fold-level pruning decides and stages a trial's folds (warmcv.cv.pruning), when it is on."""

    what: ClassVar[str] = "pruning settings"

    rule: PruneRule = "paired-bound"
    # paired-bound: prune below this chance to beat the best; wilcoxon: below this p-value.
    threshold: float = Field(0.1, gt=0, lt=1)
    first_folds: int = Field(1, ge=1)  # folds a trial runs before its first check
    step_folds: int = Field(1, ge=1)  # folds handed out per stage after that
    min_trials: int = Field(5, ge=1)  # completed trials before any trial is pruned


class RunSettings(Settings):
    """Everything a run needs, saved as run.json so --resume continues with exactly these."""

    what: ClassVar[str] = "run settings"

    data: str
    target: str = Field(min_length=1)
    prepare: PrepareOptions
    space: dict[str, dict[str, Any]]  # describe(SearchSpace)
    fixed: dict[str, str]
    trials: int = Field(40, ge=1)
    parallel: int | None = Field(None, ge=1)  # None: enough trials in flight to keep every worker busy
    workers: int | None = Field(None, ge=1)  # None: one per core
    timeout: float | None = Field(None, gt=0, allow_inf_nan=False)  # seconds after which no trial starts
    sampler: Sampler = "tpe"
    seed: int = Field(0, ge=0, le=2**32 - 1)
    predict: str | None = None
    predict_output: PredictOutput = "probabilities"
    registry: str | None = None  # None: <run folder's parent>/registry
    model_group: str | None = None
    approval: ApprovalStatus = "PendingManualApproval"
    # Register (and predict with) a best model even when it is no better than the constant model.
    force_register: bool = False
    # Hyperparameters whose default ranges are fitted to the training rows per fold once the data is prepared
    # (the ones the user gave no range for); empty in run folders of earlier versions, which keep their space.
    fit_to_data: tuple[str, ...] = ()
    # MLflow: the tracking URI (None: no tracking) and the experiment (None: the model group's name).
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str | None = None
    # Absent from a run.json written before pruning existed, so such a run resumes unpruned; a new
    # run gets PRUNE_BY_DEFAULT unless the user says (tuning/run_settings.py).
    prune: bool = False
    pruning: PruningOptions = Field(default_factory=PruningOptions)
    format_version: int = RUN_FORMAT_VERSION

    @classmethod
    def load(cls, run_dir: Path) -> RunSettings:
        path = run_dir / SETTINGS_FILE
        if not path.is_file():
            raise UserInputError(f"nothing to resume in {run_dir}: it has no {SETTINGS_FILE} (not a warmcv run folder)")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise UserInputError(f"cannot read {path}: {error}") from None
        if not isinstance(data, dict):
            raise UserInputError(f"{path} does not hold a run's settings")
        return cls.parse(data, str(path))

    def save(self, run_dir: Path) -> None:
        write_text_atomic(run_dir / SETTINGS_FILE, json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True))
