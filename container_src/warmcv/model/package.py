"""model.tar.gz in SageMaker's layout: the model directory's files at the archive root.

SageMaker tars /opt/ml/model into `<output>/<job>/output/model.tar.gz` with the files at the root and
untars it into /opt/ml/model for hosting and batch transform; a model packaged here drops into the
same places (a SageMaker Model, the registry, `warmcv serve`) without repacking.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from warmcv.data.manifest import file_sha256
from warmcv.errors import UserInputError
from warmcv.files import atomic_path
from warmcv.model.artifacts import METADATA_FILE, MODEL_FILE

ARCHIVE_NAME = "model.tar.gz"


def package_model(model_dir: Path, archive: Path) -> str:
    """Write `archive` from `model_dir` (atomically); returns its sha256."""
    model_dir, archive = Path(model_dir), Path(archive)
    for required in (MODEL_FILE, METADATA_FILE):
        if not (model_dir / required).is_file():
            raise UserInputError(f"cannot package {model_dir}: {required} is missing")
    archive.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
            tar.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)
    return file_sha256(archive)


def unpack_model(archive: Path, model_dir: Path) -> None:
    """Extract a model.tar.gz the way SageMaker does before serving (refusing paths that leave `model_dir`)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(model_dir, filter="data")
