"""Install and remove the kernelspec of a snapshot in the user's Jupyter data folder.

The kernelspec starts this package's launcher with the server's own Python, naming the snapshot and its
project; the snapshot's image holds the environment, so nothing about it is copied here. Kernelspec names are
per user, not per project: restoring a snapshot of the same name from another project replaces it.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..snapshot.names import display_name, kernel_name
from ..snapshot.store import open_store

def _kernels_dir() -> Path:
    from jupyter_client.kernelspec import KernelSpecManager

    return Path(KernelSpecManager().user_kernel_dir)


def spec(name: str, project: str | os.PathLike, digest: str) -> dict:
    """The kernel.json of snapshot ``name``: the launcher, SIGINT for interrupts, the snapshot in metadata."""
    project = str(Path(project).resolve())
    return {
        "argv": [sys.executable, "-m", "jupyter_yolosnap.kernelspec", name, "--project", project,
                 "-f", "{connection_file}"],
        "display_name": display_name(name),
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"yolosnap": {"snapshot": name, "digest": digest, "project": project}},
    }


def install(name: str, project: str | os.PathLike | None = None, manifest: dict | None = None) -> str:
    """Install (or replace) the kernelspec of snapshot ``name``; returns its kernel name."""
    store = open_store(project)
    manifest = manifest or store.load(name)
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory(prefix="yolosnap-kernelspec-") as tmp:
        Path(tmp, "kernel.json").write_text(json.dumps(spec(manifest["name"], store.project, manifest["digest"]),
                                                       indent=1))
        KernelSpecManager().install_kernel_spec(tmp, kernel_name(manifest["name"]), user=True)
    return kernel_name(manifest["name"])


def installed(name: str) -> dict | None:
    """The installed kernel.json of snapshot ``name``, or None."""
    try:
        return json.loads((_kernels_dir() / kernel_name(name) / "kernel.json").read_text())
    except (OSError, ValueError):
        return None


def remove(name: str, project: str | os.PathLike | None = None) -> bool:
    """Remove the kernelspec of snapshot ``name``; with ``project``, only when it belongs to that project."""
    folder = _kernels_dir() / kernel_name(name)
    if not folder.is_dir():
        return False
    if project is not None:
        owner = ((installed(name) or {}).get("metadata") or {}).get("yolosnap", {}).get("project")
        if owner is not None and owner != str(Path(project).resolve()):
            return False
    shutil.rmtree(folder, ignore_errors=True)
    return True
