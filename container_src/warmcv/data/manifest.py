"""The prepared data set: one Parquet file with a fold column, and the manifest that says how to read it.

Every fold job and the final training read this one data set through the same channel (no K copies);
the manifest fixes the schema, the classes and the fold semantics so all of them see the same data
the same way. The manifest is written last and carries the data file's hash: a half-written or
swapped data file is caught at load time instead of training on it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from warmcv.data.schema import FeatureSchema
from warmcv.declarations import ALL_FOLDS
from warmcv.errors import UserInputError

FOLD_COLUMN = "__fold__"
DATA_FILE = "data.parquet"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    target: str
    task: str  # binary | multiclass | regression
    classes: list[Any] | None
    schema: FeatureSchema
    n_folds: int
    splitter: str  # stratified | kfold | group | stratified_group | time
    # kfold: fold i validates on rows of fold i and trains on the rest.
    # forward (time series): fold i trains on blocks 0..i and validates on block i+1.
    fold_kind: str
    seed: int
    rows: int
    rows_per_fold: list[int]
    source: dict[str, Any]
    data_sha256: str
    group_column: str | None = None
    time_column: str | None = None
    # Row identifiers kept beside the features in data.parquet (never trained on): predictions carry them.
    id_columns: list[str] = field(default_factory=list)
    format_version: int = FORMAT_VERSION
    warmcv_version: str = field(default="")

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes is not None else 0

    @property
    def smallest_training_set(self) -> int:
        """Rows the smallest fold trains on (a fold's rows are held out; a forward fold trains on the blocks
        before it, so fold 0 trains on block 0 alone)."""
        if self.fold_kind == "forward":
            return self.rows_per_fold[0]
        return self.rows - max(self.rows_per_fold[: self.n_folds])

    def check_fold(self, fold: int | str) -> None:
        if fold == ALL_FOLDS:
            return
        if not isinstance(fold, int) or not 0 <= fold < self.n_folds:
            raise UserInputError(
                f"hyperparameter fold={fold!r} is out of range: the prepared data has {self.n_folds} folds "
                f"(0..{self.n_folds - 1}), or use fold=all"
            )

    def fold_masks(self, fold_column: np.ndarray, fold: int | str) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks (train, validation) of fold `fold`; for `all`, every row trains and none validates."""
        self.check_fold(fold)
        if fold == ALL_FOLDS:
            return np.ones(len(fold_column), dtype=bool), np.zeros(len(fold_column), dtype=bool)
        assert isinstance(fold, int)  # check_fold let only ALL_FOLDS or an int through
        if self.fold_kind == "forward":
            return fold_column <= fold, fold_column == fold + 1
        valid = fold_column == fold
        return ~valid, valid

    def to_json(self) -> str:
        data = asdict(self)
        data["schema"] = self.schema.to_list()
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if data.get("format_version") != FORMAT_VERSION:
            raise UserInputError(
                f"prepared data format {data.get('format_version')!r} is not supported "
                f"(this warmcv reads format {FORMAT_VERSION}); prepare the data again"
            )
        data["schema"] = FeatureSchema.from_list(data["schema"])
        return cls(**data)


def find_prepared_dir(directory: Path) -> Path:
    """The folder holding manifest.json: `directory` itself, or its single subfolder that has one."""
    directory = Path(directory)
    if (directory / MANIFEST_FILE).is_file():
        return directory
    nested = sorted(p.parent for p in directory.glob(f"*/{MANIFEST_FILE}"))
    if len(nested) == 1:
        return nested[0]
    raise UserInputError(
        f"no prepared data in {directory}: expected {MANIFEST_FILE} and {DATA_FILE} written by `warmcv prepare`"
        + (f" (found {len(nested)} candidate folders; pass exactly one)" if nested else "")
    )


def read_manifest(directory: Path) -> Manifest:
    path = find_prepared_dir(directory) / MANIFEST_FILE
    try:
        return Manifest.from_json(path.read_text())
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise UserInputError(f"{path} is not a valid warmcv manifest: {error}") from None


@dataclass
class PreparedData:
    """The prepared data as training needs it, and nothing more: the features with the schema applied (named as
    LightGBM knows them), encoded labels and fold ids. The group and time columns stay on disk."""

    manifest: Manifest
    features: pd.DataFrame
    label: np.ndarray
    folds: np.ndarray
    directory: Path

    @classmethod
    def load(cls, directory: Path | str, verify: bool = True) -> PreparedData:
        directory = find_prepared_dir(Path(directory))
        manifest = read_manifest(directory)
        data_path = directory / DATA_FILE
        if not data_path.is_file():
            raise UserInputError(f"{data_path} is missing: the manifest is there but the prepared data is not")
        if verify and file_sha256(data_path) != manifest.data_sha256:
            raise UserInputError(
                f"{data_path} does not match its manifest (sha256 differs): the data was changed or only partly "
                "copied; prepare it again"
            )
        # Only what training needs: the features, the target and the folds (not the group or time columns).
        wanted = [*manifest.schema.names, manifest.target, FOLD_COLUMN]
        try:
            columns = set(pq.read_schema(data_path).names)
            frame = pd.read_parquet(data_path, columns=[c for c in dict.fromkeys(wanted) if c in columns])
        except Exception as error:  # noqa: BLE001 - pyarrow raises many types for a broken file
            raise UserInputError(f"cannot read {data_path}: {error}") from None
        if len(frame) != manifest.rows or FOLD_COLUMN not in frame.columns:
            raise UserInputError(f"{data_path} does not match its manifest (rows or fold column differ)")
        features = manifest.schema.apply(frame, context=str(data_path))
        label = encode_target(frame[manifest.target], manifest)
        folds = frame[FOLD_COLUMN].to_numpy()
        return cls(manifest, features, label, folds, directory)


def encode_target(values: pd.Series, manifest: Manifest) -> np.ndarray:
    """Class indices (0..C-1, in the manifest's class order) for classification, floats for regression."""
    if manifest.classes is None:
        return values.to_numpy(dtype=np.float64)
    codes = pd.Categorical(values, categories=manifest.classes).codes
    if (codes < 0).any():
        unknown = values[codes < 0].iloc[0]
        unknown = unknown.item() if isinstance(unknown, np.generic) else unknown
        raise UserInputError(
            f"target {manifest.target!r} holds {unknown!r}, which is not among the classes {manifest.classes}"
        )
    return codes.astype(np.int64)
