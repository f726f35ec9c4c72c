"""The example notebooks run top to bottom in a real kernel, as a user would run them."""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_yolosnap.manifest import loads

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "example-notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.name for n in NOTEBOOKS])
def test_notebook_runs_clean(notebook, project):
    copy = project / notebook.name
    shutil.copy(notebook, copy)
    nb = nbformat.read(copy, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(project)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("data", {}).get("text/plain", "") for o in outputs)  # the same table as text
    assert "Saved snapshot 'yolo-v5-base'" in text and "this kernel: identical" in text
    manifest = loads((project / ".yolosnap" / "yolo-v5-base" / "snapshot.json").read_text())
    assert manifest["name"] == "yolo-v5-base"
