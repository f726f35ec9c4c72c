"""Records of the restored kernels a Jupyter server runs, so that the next server on this machine adopts them.

A Jupyter server that dies without shutting its kernels down (a crash, SIGKILL, a lost session) leaves their
containers running. The provisioner writes one record per kernel into ``<jupyter runtime dir>/yolosnap-kernels/``
(``<kernel id>.json``, mode 0600: it holds the kernel's connection key, as the connection file beside it does),
and labels the container with the kernel id. While that record exists the dead-owner sweep leaves the container
alone; the next server adopts the kernel (:mod:`jupyter_yolosnap.kernelspec.adopt`) and writes itself in as the
owner; a clean shutdown, ``yolosnap stop`` or a failed adoption removes container and record together.

Records are read back as untrusted text: a file name that is not a kernel id, a link, a file over
:data:`MAX_BYTES` or a body that is not the expected JSON object is skipped (and removed, it is this tool's folder).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket
from pathlib import Path
from typing import Any

from ..snapshot.store import write_atomic

FOLDER = "yolosnap-kernels"
MAX_BYTES = 64 * 1024
KERNEL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_serving = {"on": False}  # set by the server extension: only a Jupyter server's kernels are adopted later


def serve() -> None:
    """This process is a Jupyter server: the kernels its provisioners start get records."""
    _serving["on"] = True


def serving() -> bool:
    return _serving["on"]


def folder() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir()) / FOLDER


def path(kernel_id: str) -> Path | None:
    """The record file of ``kernel_id``; None for anything that is not a kernel id (no path is built from it)."""
    return folder() / f"{kernel_id}.json" if isinstance(kernel_id, str) and KERNEL_ID.fullmatch(kernel_id) else None


def exists(kernel_id: str) -> bool:
    found = path(kernel_id)
    return found is not None and found.is_file() and not found.is_symlink()


def owner() -> dict[str, str]:
    from .containers import process_start

    return {"pid": str(os.getpid()), "host": socket.gethostname(), "start": process_start(os.getpid())}


def write(kernel_id: str, info: dict[str, Any]) -> Path | None:
    """Record ``info`` (plain JSON) for ``kernel_id`` with this process as its owner, in one step, mode 0600."""
    target = path(kernel_id)
    if target is None:
        return None
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(target, json.dumps({**info, "owner": owner()}), mode=0o600)
    return target


def remove(kernel_id: str) -> None:
    found = path(kernel_id)
    if found is not None:
        with contextlib.suppress(FileNotFoundError):
            found.unlink()


def read(entry: Path) -> dict[str, Any] | None:
    """One record, or None when it is not one this tool wrote (the caller removes it)."""
    if entry.is_symlink() or not entry.is_file() or path(entry.stem) != entry:
        return None
    try:
        with entry.open("rb") as source:
            raw = source.read(MAX_BYTES + 1)
        body = json.loads(raw) if len(raw) <= MAX_BYTES else None
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("kernel_id") != entry.stem:
        return None
    texts = ("kernel_name", "container_id", "snapshot", "project", "digest", "gpus", "cwd")
    who = body.get("owner")
    if not all(isinstance(body.get(key), str) for key in texts) or not isinstance(who, dict):
        return None
    if not (isinstance(who.get("pid"), str) and who["pid"].isdigit() and isinstance(who.get("host"), str)):
        return None
    connection = body.get("connection_info")
    if not isinstance(connection, dict) or not isinstance(connection.get("key"), str):
        return None
    if body.get("scratch") is not None and not isinstance(body["scratch"], str):
        return None
    return body


def records() -> list[tuple[Path, dict[str, Any] | None]]:
    """Every file in the records folder with its record (None: not a valid record)."""
    try:
        entries = sorted(folder().iterdir())
    except FileNotFoundError:
        return []
    return [(entry, read(entry)) for entry in entries if not entry.name.startswith(".")]  # "." : a write under way


def owner_alive(body: dict[str, Any]) -> bool:
    """Whether the server that wrote the record still runs (another live server's kernels are never adopted)."""
    from .containers import OWNER_HOST, OWNER_PID, OWNER_START, owner_alive as alive

    who = body.get("owner") or {}
    return alive({OWNER_PID: str(who.get("pid", "")), OWNER_HOST: str(who.get("host", "")),
                  OWNER_START: str(who.get("start", ""))})
