"""The example notebooks run top to bottom in a real kernel against the real engine, as a user would run them.

Each cell must run clean, except the one cell per notebook tagged ``raises-exception``: the error it shows on
purpose, whose message must say what to do. The outputs must show what each notebook promises.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_yolosnap.engine import labels
from jupyter_yolosnap.snapshot.manifest import loads

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "example-notebooks").glob("*.ipynb"))
#: What each notebook must show in its outputs (text), beyond running without unplanned errors.
EXPECTED = {
    "01-quickstart.ipynb": ["Saved snapshot 'dev-kernel'", "Built yolosnap/dev-kernel:",
                            "no drift: the image holds the snapshot's environment", "GPU fit: ", "FROM python:",
                            "in a container: True Python 3.11.7 host ", "'best': 0.4",
                            "Stopped 1 container(s) of snapshot 'dev-kernel'"],
    "02-yolo-training.ipynb": ["torch 2.14.1+cu130 ultralytics 8.4.190", "Built yolosnap/yolo-v8:", "GPU fit: ",
                               "12 images, data.yaml written", "2 epochs completed",
                               "python train.py --img 64 --batch 4 --epochs 2 --data data.yaml: succeeded",
                               "runs/train/exp/results.csv (2 rows; epoch 2", "2 epochs; box loss",
                               "# snapshot yolo-v8  manifest sha256:", "# image sha256:", "# code ",
                               "# command python train.py --img 64 --batch 4 --epochs 2 --data data.yaml  (cwd "],
    "03-drift.ipynb": ["packaging 21.3: newest checkpoint ckpt-1.1",
                       "failed: packaging.version.InvalidVersion: Invalid version: 'nightly'",
                       "packages  packaging  changed  21.3", "python evaluate.py: succeeded", "eval-env@2"],
}
#: The error each notebook shows on purpose, in its ``raises-exception`` cell.
ERRORS = {
    "01-quickstart.ipynb": "no snapshot named 'dev-kernal'",
    "02-yolo-training.ipynb": "exited with code 1 in snapshot 'yolo-v8'; its log: ",
    "03-drift.ipynb": None,  # the drift itself is the failure it shows, and the snapshot brings the result back
}
#: Figures (image/png outputs), and plots inside HTML results (a run's metrics plot: the loss curves; on a GPU
#: machine, the GPU telemetry under them).
FIGURES = {"01-quickstart.ipynb": (1, 0), "02-yolo-training.ipynb": (0, 1), "03-drift.ipynb": (0, 0)}


@pytest.fixture
def cleanup_images(project):
    yield
    import docker

    client = docker.from_env()
    for folder in (project / ".yolosnap").glob("*/snapshot.json"):
        for image in client.images.list(filters={"label": f"{labels.SNAPSHOT}={folder.parent.name}"}):
            client.images.remove(image.id, force=True)


def text_of(output) -> str:
    return output.get("text", "") + output.get("data", {}).get("text/plain", "") + output.get("evalue", "")


def test_every_notebook_is_tested_and_stored_without_outputs():
    assert sorted(n.name for n in NOTEBOOKS) == sorted(EXPECTED) == sorted(ERRORS) == sorted(FIGURES)
    for notebook in NOTEBOOKS:
        nb = nbformat.read(notebook, as_version=4)
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")  # says what it shows
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (notebook.name, cell.source[:40])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.name for n in NOTEBOOKS])
def test_notebook_runs_clean(notebook, project, cleanup_images):
    copy = project / notebook.name
    shutil.copy(notebook, copy)
    nb = nbformat.read(copy, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(project)}}).execute()
    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    planned = [cell for cell in cells if "raises-exception" in cell.metadata.get("tags", [])]
    for cell in cells:
        if cell not in planned:
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.source
    if ERRORS[notebook.name] is None:
        assert not planned
    else:
        [failing] = planned
        shown = "".join(text_of(o) for o in failing.outputs)
        said = shown.split("UsageError: ", 1)[-1].rstrip("\n")  # the tool's own line (a script's traceback
        assert ERRORS[notebook.name] in said and "\n" not in said, shown  # is the script's output above it)
    outputs = [o for cell in cells for o in cell.outputs]
    text = "".join(text_of(o) for o in outputs)
    for expected in EXPECTED[notebook.name]:
        assert expected in text, expected
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    plots = [o for o in outputs if "data:image/png;base64," in o.get("data", {}).get("text/html", "")]
    assert (len(figures), len(plots)) == FIGURES[notebook.name]
    for saved in (project / ".yolosnap").glob("*/snapshot.json"):
        assert loads(saved.read_text())["name"] == saved.parent.name


def test_the_notebooks_are_what_their_script_writes(tmp_path):
    """tools/make_example_notebooks.py is their source: an edit to one without the other fails here."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "tools" / "make_example_notebooks.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True)
    for notebook in NOTEBOOKS:
        assert (tmp_path / notebook.name).read_text() == notebook.read_text(), notebook.name
