"""Install and remove the kernelspec of a snapshot in the user's Jupyter data folder.

The kernelspec names the snapshot's kernel provisioner (``metadata.kernel_provisioner``, see :mod:`.provisioner`)
with the snapshot, its project and the manifest digest restored; the snapshot's image holds the environment, so
nothing about it is copied here. Users still pick the kernel as any other: ``yolosnap-<name>`` in the picker.

``argv``, which jupyter_client requires, is never run by a client that knows provisioners (Jupyter Server,
nbclient, papermill, ``jupyter console``): the provisioner runs the kernel command in the container instead. It is
what a client *without* provisioner support would run, so it must not start a kernel on the host that looks like
the snapshot's: ``python -m jupyter_yolosnap.kernelspec NAME ...`` says, in one line, which provisioner the
kernel needs, and exits 2.

Kernelspec names are per user, not per project: restoring a snapshot of the same name from another project
replaces it.
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

PROVISIONER = "yolosnap-docker-provisioner"  # the entry point (pyproject.toml) of provisioner.SnapshotProvisioner


def _kernels_dir() -> Path:
    from jupyter_client.kernelspec import KernelSpecManager

    return Path(KernelSpecManager().user_kernel_dir)


def spec(name: str, project: str | os.PathLike, digest: str) -> dict:
    """The kernel.json of snapshot ``name``: its provisioner and what it starts, SIGINT for interrupts."""
    project = str(Path(project).resolve())
    return {
        "argv": [sys.executable, "-m", "jupyter_yolosnap.kernelspec", name, "--project", project,
                 "-f", "{connection_file}"],
        "display_name": display_name(name),
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"kernel_provisioner": {"provisioner_name": PROVISIONER,
                                            "config": {"snapshot": name, "project": project, "digest": digest}}},
    }


def provisioner_config(kernel_json: dict | None) -> dict:
    """The provisioner's config in a kernel.json ({} when it is not one of ours)."""
    stanza = ((kernel_json or {}).get("metadata") or {}).get("kernel_provisioner") or {}
    return dict(stanza.get("config") or {}) if stanza.get("provisioner_name") == PROVISIONER else {}


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
        found = installed(name) or {}
        owner = (provisioner_config(found).get("project")
                 or ((found.get("metadata") or {}).get("yolosnap") or {}).get("project"))  # before provisioners
        if owner is not None and owner != str(Path(project).resolve()):
            return False
    shutil.rmtree(folder, ignore_errors=True)
    return True
