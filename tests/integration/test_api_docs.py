"""docs/api.md runs as written, cell by cell, in a real Jupyter kernel (nbclient + ipykernel).

So the Python API works from Jupyter (worker processes started from a kernel, a progress-free run,
objects displayed), and the walkthrough never drifts from the code.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO, subprocess_env

DOC = REPO / "docs" / "api.md"


def code_cells(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


@pytest.mark.timeout(900)
def test_the_api_walkthrough_runs_in_a_jupyter_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cells = code_cells(DOC.read_text())
    assert len(cells) >= 8
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    # The kernel imports warmcv from this checkout, like every other subprocess of the suite.
    for name, value in subprocess_env().items():
        monkeypatch.setenv(name, value)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
                   allow_errors=False).execute()
    outputs = {i: "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)
               for i, cell in enumerate(notebook.cells)}
    text = "\n".join(outputs.values())
    assert "CrossValidationResult(auc" in text
    assert "unknown hyperparameter 'num_leafs' (did you mean 'num_leaves'?)" in text
    assert "TuneResult(best auc" in text
    assert outputs[next(i for i, c in enumerate(cells) if c.strip().endswith("len(result.cv_results)"))] == "8"
    assert outputs[next(i for i, c in enumerate(cells) if ".equals(" in c)] == "True"
    assert (tmp_path / "runs" / "census" / "model.tar.gz").is_file()
