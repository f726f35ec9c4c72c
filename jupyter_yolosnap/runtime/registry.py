"""Warm kernels of this process, one per snapshot name, reused cell after cell; and their cleanup.

A kernel is stopped by ``stop``, at interpreter exit (which is also how an IPython kernel shuts down), or, when
its owner died without exiting cleanly (SIGKILL, a crash), by the sweep the next process runs on first use:
containers whose ``owner-pid`` label names a dead process on this host are removed.
"""
from __future__ import annotations

import atexit
import os
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any

from .. import api
from ..engine.client import connect, explain
from ..events import Listener, ignore
from ..exceptions import RuntimeFailure
from . import kernel_image
from .containers import (OWNER_HOST, OWNER_PID, ROLE, SNAPSHOT, ContainerSpec, driver_warning, owner_alive,
                         parse_env, parse_volumes, remove_quietly)
from .remote_kernel import RemoteKernel

ROLES = ("kernel", "run", "tensorboard")
_kernels: dict[str, RemoteKernel] = {}
_options: dict[str, tuple] = {}
_lock = threading.RLock()
_state = {"swept": False, "atexit": False}


@dataclass(frozen=True)
class RuntimeContainer:
    """One line of ``ps``."""

    id: str
    snapshot: str
    role: str
    status: str
    image: str
    owner_pid: str
    owner_alive: bool
    mine: bool


def _client() -> Any:
    return connect()


def sweep(client: Any | None = None) -> list[str]:
    """Remove runtime containers whose owner process is gone; returns their short ids."""
    client = client or _client()
    removed = []
    for container in _labelled(client):
        labels = container.labels
        if not owner_alive(labels):
            remove_quietly(container)
            removed.append(container.short_id)
    return removed


def _labelled(client: Any) -> list:
    try:
        found = client.containers.list(all=True, filters={"label": ROLE})
    except Exception as err:
        raise explain(err, "listing containers") from None
    return [c for c in found if c.labels.get(ROLE) in ROLES]


def get(name: str, project: str | os.PathLike | None = None, gpus: str | int | None = None,
        env: list[str] | dict[str, str] | None = None, volumes: list[str] | None = None, cwd: str | None = None,
        listener: Listener = ignore) -> RemoteKernel:
    """The warm kernel of snapshot ``name``, started (and its image made) on first use.

    Options apply when the kernel starts; asking a running kernel for different ones is an error, because
    restarting it silently would lose its variables.
    """
    cwd = cwd or os.getcwd()
    given = (None if gpus is None else str(gpus), tuple(sorted(parse_env(env).items())) if env else None,
             tuple(sorted(volumes)) if volumes else None)
    with _lock:
        kernel = _kernels.get(name)
        if kernel is not None and kernel.kc is None:  # died and was cleaned up
            _kernels.pop(name, None)
            kernel = None
        if kernel is not None:
            old = _options[name]
            for label, new, before in zip(("--gpus", "-e", "-v"), given, old):
                if new is not None and new != before:
                    raise RuntimeFailure(f"the kernel of snapshot {name!r} already runs with other {label} options; "
                                         f"stop it first (%snapshot stop {name}) to change them")
            return kernel
        client = _client()
        if not _state["swept"]:
            sweep(client)
            _state["swept"] = True
        if not _state["atexit"]:
            atexit.register(stop)
            _state["atexit"] = True
        manifest = api.load(name, project)
        image = kernel_image.ensure(client, manifest, listener)
        warning = driver_warning(manifest, gpus)
        if warning:
            print(warning, file=sys.stderr)
        spec = ContainerSpec(role="kernel", snapshot=name, cwd=cwd, gpus=gpus, env=parse_env(env),
                             volumes=parse_volumes(volumes, cwd))
        kernel = RemoteKernel(client, name, image, spec).start()
        _kernels[name] = kernel
        _options[name] = given
        return kernel


def forget(name: str) -> None:
    """Drop a kernel that died (its container is already removed)."""
    with _lock:
        kernel = _kernels.pop(name, None)
        _options.pop(name, None)
    if kernel is not None:
        kernel.shutdown()


def stop(name: str | None = None) -> list[str]:
    """Stop this process's kernel of ``name`` (all of them when None); returns the names stopped."""
    with _lock:
        names = [name] if name is not None else list(_kernels)
        stopped = []
        for key in names:
            kernel = _kernels.pop(key, None)
            _options.pop(key, None)
            if kernel is not None:
                kernel.shutdown()
                stopped.append(key)
    return stopped


def end(name: str | None = None, everyone: bool = False, client: Any | None = None) -> list[RuntimeContainer]:
    """``stop [NAME] [--all]``: this process's kernels of ``name`` (every snapshot when None) shut down cleanly,
    then the matching containers whose owner is gone, and with ``everyone`` those of other live owners too.

    Returns what was removed. Another notebook's kernel is only ended when asked (``--all``): its next cell
    then starts a fresh kernel and says why.
    """
    client = client or _client()
    found = [c for c in _labelled(client) if name is None or c.labels.get(SNAPSHOT) == name]
    ours = {kernel.container.short_id for key, kernel in running().items()
            if kernel.container is not None and (name is None or key == name)}
    stop(name)  # this process's kernels: channels closed, container and socket folder removed
    removed = []
    for container in found:
        if container.short_id in ours:
            removed.append(_row(container))
        elif everyone or not owner_alive(container.labels):
            removed.append(_row(container))
            remove_quietly(container)
    return removed


def running() -> dict[str, RemoteKernel]:
    """This process's warm kernels by snapshot name."""
    with _lock:
        return dict(_kernels)


def ps(client: Any | None = None) -> list[RuntimeContainer]:
    """Every runtime container on the engine (kernels, script runs, TensorBoards), this process's and others'."""
    return [_row(container) for container in _labelled(client or _client())]


def _row(container: Any) -> RuntimeContainer:
    labels = container.labels
    mine = labels.get(OWNER_PID) == str(os.getpid()) and labels.get(OWNER_HOST) == socket.gethostname()
    return RuntimeContainer(container.short_id, labels.get(SNAPSHOT, ""), labels.get(ROLE, ""), container.status,
                            container.attrs.get("Config", {}).get("Image", ""), labels.get(OWNER_PID, ""),
                            owner_alive(labels), mine)
