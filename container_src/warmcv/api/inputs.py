"""What the API accepts as data: a pandas DataFrame or a path (CSV or Parquet, a file or a folder of parts).

The whole engine reads data from files (prepare streams them; a SageMaker Processing job gets a
channel), so a DataFrame is written once as Parquet, which keeps its dtypes (strings, categories,
nullable integers) exactly. Its fingerprint is kept beside it, so resuming a run with different rows
is refused instead of silently tuning on the old ones.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from warmcv.errors import UserInputError
from warmcv.files import atomic_path

INPUT_FILE = "input.parquet"
FINGERPRINT_FILE = "input.json"


def fingerprint(frame: Any) -> str:
    """sha256 over the frame's column names, dtypes and every value (pandas' own row hashing)."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def is_frame(data: Any) -> bool:
    import pandas as pd

    return isinstance(data, pd.DataFrame)


def data_path(data: Any, folder: Path, *, same_as_before: bool = True) -> Path:
    """A path the engine can read: `data` itself, or the DataFrame written into `folder`.

    With `same_as_before`, a DataFrame written there earlier must be the same one (a run's training
    data); without it, a new one replaces it (rows to predict, which a resume may change)."""
    if not is_frame(data):
        if not isinstance(data, (str, os.PathLike)):
            raise UserInputError(f"data must be a pandas DataFrame or a path to CSV/Parquet, not {type(data).__name__}")
        path = Path(data)
        if not path.exists():
            raise UserInputError(f"data {path}: no such file or folder")
        return path
    if data.empty:
        raise UserInputError("empty data: the DataFrame has no rows")
    path = folder / INPUT_FILE
    marker = folder / FINGERPRINT_FILE
    digest = fingerprint(data)
    if same_as_before and path.is_file() and marker.is_file():
        if json.loads(marker.read_text()).get("sha256") != digest:
            raise UserInputError(f"{folder} was started with a different DataFrame (its rows or columns differ); "
                                 "resume with the same data, or start a new run in another folder")
        return path
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:  # removed on any failure (a full disk too)
            data.to_parquet(tmp, index=False)
    except (ValueError, TypeError) as error:  # pyarrow's ArrowInvalid and friends are ValueErrors
        raise UserInputError(f"the DataFrame cannot be stored as Parquet: {error}") from None
    marker.write_text(json.dumps({"sha256": digest, "rows": len(data), "columns": [str(c) for c in data.columns]}))
    return path
