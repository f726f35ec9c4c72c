"""The image a snapshot's kernel runs in: the verified image itself, or it plus ipykernel in a layer of its own.

A snapshot without ipykernel still deserves a notebook kernel, but installing ipykernel into its site-packages
would change the environment the image proves. So ipykernel and its dependencies go into
``/opt/yolosnap/kernel`` (``pip install --target``) in one extra layer, and the kernel starts with that folder
at the END of ``sys.path``: wherever the snapshot has its own copy of a package (traitlets, pyzmq...), the
snapshot's copy wins. Wheels are collected on the host and served on loopback, as builds do (credentials stay
on the host, the image gets no wheel files), constrained to the snapshot's own pins so the kernel's
dependencies agree with what the snapshot already holds.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..snapshot.names import image_tag
from . import wheelhouse
from ..engine.build import build_image
from ..engine import images, labels
from ..engine.client import ENGINE_ERRORS, explain
from ..events import Event, Listener, ignore
from ..exceptions import RecipeError
from ..recipe.dockerfile import label_line

KERNEL_PATH = "/opt/yolosnap/kernel"
KERNEL_LABEL = labels.KERNEL_PATH
PIP_ENV = "PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore"


@dataclass(frozen=True)
class KernelImage:
    """An image that can run an IPython kernel for a snapshot."""

    image: str                 # tag to run
    snapshot_image: str        # the verified snapshot image it rests on
    kernel_path: str | None    # folder to append to sys.path; None when the snapshot has its own ipykernel
    built: bool = False        # made by this call


def verified_image(client: Any, manifest: dict) -> str:
    """The verified tag of the manifest (:func:`..engine.images.require_verified`: tag and digest label), or
    ``NoVerifiedImage`` saying how to build it."""
    images.require_verified(client, manifest)
    return image_tag(manifest)


def has_ipykernel(manifest: dict) -> bool:
    return any(p.get("name") == "ipykernel" for p in manifest.get("packages", []))


def kernel_tag(manifest: dict) -> str:
    return f"{image_tag(manifest)}-kernel"


def ensure(client: Any, manifest: dict, listener: Listener = ignore) -> KernelImage:
    """A kernel image for the snapshot ``manifest``: reused when present, built (one layer, no snapshot change)
    when not. Callers hold the manifest already (for GPU checks, kernelspecs), so it is not read again here."""
    base = verified_image(client, manifest)
    if has_ipykernel(manifest):
        return KernelImage(base, base, None)
    tag = kernel_tag(manifest)
    if images.labelled_image(client, tag, {labels.DIGEST: manifest["digest"], KERNEL_LABEL: KERNEL_PATH}):
        return KernelImage(tag, base, KERNEL_PATH)  # a tag on anything else is rebuilt (and moved) below
    listener(Event("phase", f"adding ipykernel to {base} (its own layer, in {KERNEL_PATH})"))
    folder, constraints = collect_kernel_wheels(manifest, listener)
    with tempfile.TemporaryDirectory(prefix="yolosnap-kernel-") as tmp:
        served = Path(tmp, "served")
        served.mkdir()
        for wheel in folder.glob("*.whl"):  # a private listing: only the kernel's wheels, plus the constraints
            (served / wheel.name).symlink_to(wheel)
        (served / "constraints.txt").write_text(constraints)
        context = Path(tmp, "context")
        context.mkdir()
        with wheelhouse.serve(served) as url:
            layer_labels = {labels.SNAPSHOT: manifest["name"], labels.DIGEST: manifest["digest"],
                            KERNEL_LABEL: KERNEL_PATH, labels.VERSION: __version__}
            (context / "Dockerfile").write_text(dockerfile(base, url, layer_labels))
            image_id = build_image(client, str(context), network_mode="host", listener=listener)
    repository, version = tag.split(":")
    try:
        client.images.get(image_id).tag(repository, version)
    except ENGINE_ERRORS as err:  # removed under us, or the engine went away after the build
        raise explain(err, f"tagging {tag}") from None
    listener(Event("phase", f"kernel image ready: {tag}"))
    return KernelImage(tag, base, KERNEL_PATH, built=True)


def dockerfile(base: str, url: str, labels: dict[str, str]) -> str:
    """One RUN layer: ipykernel into its own folder from the loopback wheel listing, never into site-packages."""
    return (f"FROM {base}\n"
            f"RUN {PIP_ENV} python -m pip install -q --no-index --find-links {url} -c {url}constraints.txt "
            f"--target {KERNEL_PATH} ipykernel\n"
            f"{label_line(labels)}\n")


def _constraints(manifest: dict) -> str:
    """The snapshot's index pins: the kernel's dependencies must agree with what the snapshot holds."""
    return "".join(f"{p['name']}=={p['version']}\n" for p in manifest.get("packages", [])
                   if p.get("source") == "index" and p.get("version"))


def collect_kernel_wheels(manifest: dict, listener: Listener = ignore) -> tuple[Path, str]:
    """Wheels of ipykernel and its dependencies for the snapshot's Python, in a cache folder of their own.

    Returns the folder and the constraints to install with ('' when the snapshot's pins cannot be honoured:
    then the newest ipykernel is used and the snapshot's own copies still win on ``sys.path``).
    """
    version = manifest["python"]["version"]
    major_minor = ".".join(version.split(".")[:2])
    folder = wheelhouse.cache_dir().parent / "kernel-wheels" / f"py{major_minor}"
    folder.mkdir(parents=True, exist_ok=True)
    python = wheelhouse.collector_python(version)
    listener(Event("phase", f"collecting ipykernel wheels for Python {major_minor} on the host"))
    constraints = _constraints(manifest)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write(constraints)
    try:
        for attempt in ((["-c", handle.name], constraints), ([], "")):
            done = subprocess.run([python, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                                   "--only-binary=:all:", "-d", str(folder), *attempt[0], "ipykernel"],
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if done.returncode == 0:
                return folder, attempt[1]
    finally:
        os.unlink(handle.name)
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")] or ["no output"]
    raise RecipeError(f"collecting ipykernel wheels for Python {major_minor} failed: {errors[-1][:300]}; check "
                      "this host's pip access to its package index")
