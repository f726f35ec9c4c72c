"""The example notebooks run top to bottom in a real kernel, as a user would run them."""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_yolosnap.engine import labels
from jupyter_yolosnap.snapshot.manifest import loads

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "example-notebooks").glob("*.ipynb"))
#: What each notebook must show in its outputs (text/plain), beyond running without errors.
EXPECTED = {
    "01-snapshot-and-drift.ipynb": ["Saved snapshot 'yolo-v5-base'", "this kernel: identical", "yolo-v5-base@1"],
    "02-build-check-and-run.ipynb": ["Built yolosnap/dev-kernel:", "already built and verified",
                                     "no drift: the image holds the snapshot's environment", "FROM python:",
                                     "in a container: True Python 3.11.7", "'best': 0.4",
                                     "python train.py --epochs 5: succeeded", "results.csv (5 rows; epoch 4",
                                     "epoch 4/4 done", "Stopped 1 container(s) of snapshot 'dev-kernel'"],
}


@pytest.fixture
def cleanup_images(project):
    yield
    import docker

    client = docker.from_env()
    for folder in (project / ".yolosnap").glob("*/snapshot.json"):
        for image in client.images.list(filters={"label": f"{labels.SNAPSHOT}={folder.parent.name}"}):
            client.images.remove(image.id, force=True)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.name for n in NOTEBOOKS])
def test_notebook_runs_clean(notebook, project, cleanup_images):
    copy = project / notebook.name
    shutil.copy(notebook, copy)
    nb = nbformat.read(copy, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(project)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in outputs)
    for expected in EXPECTED[notebook.name]:
        assert expected in text
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == (1 if notebook.name.startswith("02-") else 0)  # the plot from inside the container
    for saved in (project / ".yolosnap").glob("*/snapshot.json"):
        assert loads(saved.read_text())["name"] == saved.parent.name
