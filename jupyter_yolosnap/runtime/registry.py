"""Warm kernels of this process, one per snapshot of each project, reused cell after cell; and their cleanup.

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
from pathlib import Path
from typing import Any

from ..snapshot.store import open_store
from ..snapshot.names import image_tag
from ..engine import images
from ..engine.client import ENGINE_ERRORS, connect, explain
from ..events import Listener, ignore
from ..exceptions import RuntimeFailure
from ..bake import kernel_layer
from . import kernel_records
from .containers import (KERNEL_ID, OWNER_HOST, OWNER_PID, ROLE, SNAPSHOT, ContainerSpec, gpu_plan, owner_alive,
                         parse_env, parse_volumes, remove_quietly)
from .remote_kernel import RemoteKernel

ROLES = ("kernel", "run", "tensorboard")
_kernels: dict = {}  # Key -> _Warm
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


def labelled(client: Any | None = None) -> list:
    """Every container of this tool's runtime roles on the engine (docker-py objects), running or not."""
    return _labelled(client or _client())


def _labelled(client: Any) -> list:
    try:  # docker-py inspects each listed container; one removed meanwhile is simply not there any more
        found = client.containers.list(all=True, filters={"label": ROLE}, ignore_removed=True)
    except ENGINE_ERRORS as err:
        raise explain(err, "listing containers") from None
    return [c for c in found if c.labels.get(ROLE) in ROLES]


@dataclass
class _Warm:
    """A warm kernel and what it was started from: the options asked for, and the manifest file's stamp when
    its image was last found current, so that a cell whose manifest did not change costs one ``stat``, not a
    read and a schema validation."""

    kernel: RemoteKernel
    options: tuple
    asked: dict
    stamp: tuple[int, ...]
    pending: tuple[tuple[int, ...], dict] | None = None  # a newer manifest whose image is not built yet (warned)


Key = tuple[Path, str]  # (project folder, snapshot name): one warm kernel per snapshot of each project


def get(name: str, project: str | os.PathLike | None = None, gpus: str | int | None = None,
        env: list[str] | dict[str, str] | None = None, volumes: list[str] | None = None, cwd: str | None = None,
        listener: Listener = ignore) -> RemoteKernel:
    """The warm kernel of snapshot ``name`` of ``project``, started (and its image made) on first use.

    Options apply when the kernel starts; asking a running kernel for different ones is an error, because
    restarting it silently would lose its variables. A snapshot rebuilt since its kernel started is different:
    the old kernel would run the old environment, so it is replaced (one line on stderr says the variables are
    reset).
    """
    cwd = cwd or os.getcwd()
    asked = {"gpus": gpus, "env": env, "volumes": volumes}
    given = (None if gpus is None else str(gpus), tuple(sorted(parse_env(env).items())) if env else None,
             tuple(sorted(volumes)) if volumes else None)
    store = open_store(project)
    path = store.path_of(name)
    stamp = _stamp(path)
    key = (store.project, name)
    with _lock:
        warm = _kernels.get(key)
        if warm is not None and warm.kernel.kc is None:  # died and was cleaned up
            _kernels.pop(key, None)
            warm = None
        manifest = None
        if warm is not None:
            _check_options(name, given, warm.options)
            if stamp == warm.stamp:
                return warm.kernel
            manifest = _rebuilt(warm, store, name, stamp)
            if manifest is None:
                return warm.kernel
            _kernels.pop(key, None)
            warm.kernel.shutdown()
            print(f"snapshot {name!r} was rebuilt ({warm.kernel.image.snapshot_image} -> "
                  f"{image_tag(manifest)}): its kernel was restarted in the new image, variables were reset",
                  file=sys.stderr)
            asked = {k: v if v is not None else warm.asked[k] for k, v in asked.items()}
            given = tuple(new if new is not None else old for new, old in zip(given, warm.options))
        kernel = _start(name, manifest or store.load(name), cwd, listener, **asked)
        _kernels[key] = _Warm(kernel, given, asked, stamp)
        return kernel


def _stamp(path: Path) -> tuple[int, ...]:
    """What tells a re-saved manifest apart without reading it: ``st_mtime_ns`` and ``st_size``, and the inode
    (a save replaces the file, so two saves within one timestamp tick still differ)."""
    try:
        found = path.stat()
    except OSError as err:
        raise RuntimeFailure(f"cannot read {path}: {err.strerror}; check it is still there") from None
    return found.st_mtime_ns, found.st_size, found.st_ino


def _check_options(name: str, given: tuple, before: tuple) -> None:
    for label, new, old in zip(("--gpus", "-e", "-v"), given, before):
        if new is not None and new != old:
            raise RuntimeFailure(f"the kernel of snapshot {name!r} already runs with other {label} options; "
                                 f"stop it first (%snapshot stop {name}) to change them")


def _rebuilt(warm: _Warm, store: Any, name: str, stamp: tuple[int, ...]) -> dict | None:
    """The manifest to start a new kernel from when the snapshot was re-saved AND built since ``warm`` started;
    None when ``warm`` is still the kernel to use.

    Re-saved with the same environment: the kernel is current, its new stamp is remembered. Changed but not
    built yet: the kernel keeps serving its (still verified) image and says so once; the new image is looked
    for again on each cell (one engine call) until the build is there.
    """
    if warm.pending is not None and warm.pending[0] == stamp:
        manifest = warm.pending[1]
    else:
        manifest = store.load(name)
        if image_tag(manifest) == warm.kernel.image.snapshot_image:
            warm.stamp, warm.pending = stamp, None
            return None
    if images.verified_image(warm.kernel.client, manifest) is None:
        if warm.pending is None or warm.pending[0] != stamp:
            print(f"snapshot {name!r} changed since its kernel started but is not built yet: cells keep running in "
                  f"{warm.kernel.image.snapshot_image}; build it (%snapshot build {name}) to switch",
                  file=sys.stderr)
        warm.pending = (stamp, manifest)
        return None
    return manifest


def _start(name: str, manifest: dict, cwd: str, listener: Listener, gpus: str | int | None,
           env: list[str] | dict[str, str] | None, volumes: list[str] | None) -> RemoteKernel:
    """A new kernel container of ``manifest``'s verified image (the kernel image made first if needed)."""
    client = _client()
    try:
        if not _state["swept"]:
            sweep(client)
            _state["swept"] = True
        if not _state["atexit"]:
            atexit.register(stop)
            _state["atexit"] = True
        image = kernel_layer.ensure(client, manifest, listener)
        gpus, warning = gpu_plan(manifest, gpus, client)
        if warning:
            print(warning, file=sys.stderr)
        spec = ContainerSpec(role="kernel", snapshot=name, cwd=cwd, gpus=gpus, env=parse_env(env),
                             volumes=parse_volumes(volumes, cwd))
    except BaseException:
        client.close()
        raise
    return RemoteKernel(client, name, image, spec, owns_client=True).start()  # a failed start closes it too


def forget(name: str) -> None:
    """Drop this process's kernels of ``name`` that died (their containers are already removed)."""
    stop(name)


def stop(name: str | None = None) -> list[str]:
    """Stop this process's kernels of ``name`` (in every project; all kernels when None); the names stopped."""
    with _lock:
        keys = [key for key in _kernels if name is None or key[1] == name]
        stopped = []
        for key in keys:
            warm = _kernels.pop(key)
            warm.kernel.shutdown()
            if key[1] not in stopped:
                stopped.append(key[1])
    return stopped


def end(name: str | None = None, everyone: bool = False, client: Any | None = None) -> list[RuntimeContainer]:
    """``stop [NAME] [--all]``: this process's kernels of ``name`` (every snapshot when None) shut down cleanly,
    then the matching containers whose owner is gone, and with ``everyone`` those of other live owners too.

    Returns what was removed. Another notebook's kernel is only ended when asked (``--all``): its next cell
    then starts a fresh kernel and says why.
    """
    client = client or _client()
    found = [c for c in _labelled(client) if name is None or c.labels.get(SNAPSHOT) == name]
    ours = {kernel.container.short_id for (_, key), kernel in kernels().items()
            if kernel.container is not None and (name is None or key == name)}
    stop(name)  # this process's kernels: channels closed, container and socket folder removed
    removed = []
    for container in found:
        if container.short_id in ours:
            removed.append(_row(container))
        elif everyone or not owner_alive(container.labels):
            removed.append(_row(container))
            remove_quietly(container)
            kernel_records.remove(container.labels.get(KERNEL_ID, ""))  # a server's kernel: no one adopts it now
    return removed


def kernels() -> dict[Key, RemoteKernel]:
    """This process's warm kernels by (project folder, snapshot name)."""
    with _lock:
        return {key: warm.kernel for key, warm in _kernels.items()}


def running() -> dict[str, RemoteKernel]:
    """This process's warm kernels by snapshot name (with one name in two projects: the last started);
    :func:`kernels` tells projects apart."""
    return {name: kernel for (_, name), kernel in kernels().items()}


def ps(client: Any | None = None) -> list[RuntimeContainer]:
    """Every runtime container on the engine (kernels, script runs, TensorBoards), this process's and others'."""
    return [_row(container) for container in _labelled(client or _client())]


def _row(container: Any) -> RuntimeContainer:
    labels = container.labels
    mine = labels.get(OWNER_PID) == str(os.getpid()) and labels.get(OWNER_HOST) == socket.gethostname()
    return RuntimeContainer(container.short_id, labels.get(SNAPSHOT, ""), labels.get(ROLE, ""), container.status,
                            container.attrs.get("Config", {}).get("Image", ""), labels.get(OWNER_PID, ""),
                            owner_alive(labels), mine)
