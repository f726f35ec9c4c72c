"""What every runtime container shares: mounts at the same paths, the host user, GPUs, labels, clean errors.

Kernels and one-off scripts both run the notebook's working directory at its own absolute path, as the host
user (files written there belong to the user, not root), with no network unless asked, and labels that let
``ps``/``stop`` and the dead-owner sweep find them.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..engine import labels
from ..engine.client import ENGINE_ERRORS, explain
from ..exceptions import EngineError
from ..exceptions import RuntimeFailure
from ..snapshot.names import container_hostname

ROLE, SNAPSHOT, SCRATCH, KERNEL_ID = labels.ROLE, labels.SNAPSHOT, labels.SCRATCH, labels.KERNEL_ID
OWNER_PID, OWNER_HOST, OWNER_START = labels.OWNER_PID, labels.OWNER_HOST, labels.OWNER_START
SCRATCH_PREFIX = "/tmp/ysk-"
NETWORKS = ("none", "host")  # the engine runs without a bridge; never reach private ranges


def host_user() -> str:
    """``uid:gid`` of this process: the container writes files the user owns."""
    return f"{os.getuid()}:{os.getgid()}"


def process_start(pid: int) -> str:
    """The start time of ``pid`` in clock ticks since boot ('' where /proc is missing): tells a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def owner_labels(role: str, snapshot: str) -> dict[str, str]:
    pid = os.getpid()
    return {ROLE: role, SNAPSHOT: snapshot, OWNER_PID: str(pid), OWNER_HOST: socket.gethostname(),
            OWNER_START: process_start(pid)}


def owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process that started a container still runs (True when it is on another host: not ours).

    A Jupyter server's restored kernel counts as alive while its record exists: the next server adopts it
    (:mod:`.kernel_records`)."""
    if labels.get(OWNER_HOST, socket.gethostname()) != socket.gethostname():
        return True
    if labels.get(KERNEL_ID):
        from . import kernel_records

        if kernel_records.exists(labels[KERNEL_ID]):
            return True
    try:
        pid = int(labels.get(OWNER_PID, ""))
    except ValueError:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        pass
    started = labels.get(OWNER_START)
    return not started or process_start(pid) in ("", started)


def gpu_requests(spec: str | int | None, client: Any, host_gpu: dict | None = None) -> list:
    """``--gpus all|N|none|auto|device=0,1`` as docker-py ``DeviceRequest``s; ``auto`` (also what None means)
    asks only where it can work: this host has GPUs and the engine a GPU runtime (see :func:`auto_gpus`)."""
    import docker

    text = "auto" if spec is None else str(spec).strip().lower()
    if text == "auto":
        text = str(auto_gpus(spec, client, host_gpu)[0])
    if text in ("none", "0", ""):
        return []
    if text == "all":
        return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if text.startswith("device="):
        ids = [d.strip() for d in text[len("device="):].split(",") if d.strip()]
        if ids:
            return [docker.types.DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]
    elif text.isdigit():
        return [docker.types.DeviceRequest(count=int(text), capabilities=[["gpu"]])]
    raise RuntimeFailure(f"--gpus {spec!r} is not understood; use all, a count (2), device=0,1, none or auto")


def auto_gpus(gpus: str | int | None, client: Any,
              host_gpu: dict | None = None) -> tuple[str | int | None, str | None]:
    """``--gpus auto`` (or None) made concrete: ``all`` where this host has GPUs and the engine a GPU runtime,
    else ``none``; other values pass through. The second item is a one-line warning when the host HAS GPUs that
    the engine cannot give: running on the CPU without a word would look like a very slow GPU."""
    if str("auto" if gpus is None else gpus).strip().lower() != "auto":
        return gpus, None
    from ..gpu.readiness import engine_gpu_runtime

    if host_gpu is None:
        from ..gpu import probe_gpus

        host_gpu = probe_gpus()
    count = len(host_gpu.get("gpus") or [])
    if host_gpu.get("status") != "ok" or not count:
        return "none", None
    if engine_gpu_runtime(client):
        return "all", None
    return "none", (f"warning: this host has {count} GPU(s) but the Docker engine has no NVIDIA runtime: running "
                    "on the CPU; install the NVIDIA Container Toolkit and restart the engine, or pass --gpus none "
                    "to silence this")


def gpu_plan(manifest: dict, gpus: str | int | None, client: Any,
             host_gpu: dict | None = None) -> tuple[str | int | None, str | None]:
    """The ``--gpus`` to start a container with, and the one warning to print before (None when all is well).

    Probes the host once for both questions (can the engine give GPUs; can the driver run the snapshot's CUDA),
    and not at all for ``--gpus none``.
    """
    if str("auto" if gpus is None else gpus).strip().lower() in ("none", "0", ""):
        return gpus, None
    if host_gpu is None:
        from ..gpu import probe_gpus

        host_gpu = probe_gpus()
    resolved, warning = auto_gpus(gpus, client, host_gpu)
    return resolved, warning or driver_warning(manifest, resolved, host_gpu)


def driver_warning(manifest: dict, gpus: str | int | None, host_gpu: dict | None = None) -> str | None:
    """A warning when GPUs are asked for but the GPU-fit verdict is not "runs" (the driver is too old, it needs
    the forward-compatibility package, a GPU's architecture is not in the wheel); None if fine.

    Said before the container starts: the container would start anyway, and the training would fail later
    with a CUDA error far from the cause.
    """
    from ..gpu import fit, probe_gpus
    from ..gpu.readiness import snapshot_cuda

    if snapshot_cuda(manifest) is None or str(gpus if gpus is not None else "auto").strip().lower() in \
            ("none", "0", ""):
        return None
    host_gpu = host_gpu if host_gpu is not None else probe_gpus()
    if host_gpu.get("status") != "ok" or not host_gpu.get("driver_version"):
        return None  # no driver: auto means none, and an explicit request gets the engine's own clear error
    found = fit.verdict(manifest, host_gpu)
    if found.runs:
        return None
    return (f"warning: snapshot {manifest['name']!r}: {found.line}; GPU code will fail in the container: "
            "fix that, or use --gpus none")


def parse_env(items: list[str] | dict[str, str] | None) -> dict[str, str]:
    """``KEY=VAL`` items (a bare ``KEY`` takes this process's value, like ``docker run -e KEY``)."""
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    env: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise RuntimeFailure(f"-e {item!r}: expected KEY=VALUE with a shell-style KEY")
        env[key] = value if sep else os.environ.get(key, "")
    return env


def parse_volumes(items: list[str] | None, cwd: str) -> dict[str, dict[str, str]]:
    """``host:container[:ro|rw]`` items as docker-py ``volumes``; relative host paths are from ``cwd``."""
    volumes: dict[str, dict[str, str]] = {}
    for item in items or []:
        parts = item.split(":")
        mode = "rw"
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            mode = parts.pop()
        if len(parts) != 2 or not parts[0] or not parts[1].startswith("/"):
            raise RuntimeFailure(f"-v {item!r}: expected HOST:CONTAINER[:ro] with an absolute CONTAINER path")
        host = os.path.abspath(os.path.join(cwd, os.path.expanduser(parts[0])))
        if not os.path.exists(host):
            raise RuntimeFailure(f"-v {item!r}: {host} does not exist on this machine")
        volumes[host] = {"bind": parts[1], "mode": mode}
    return volumes


@dataclass
class ContainerSpec:
    """Everything ``create`` needs beyond the image and command; the same for kernels and scripts."""

    role: str
    snapshot: str
    cwd: str = field(default_factory=os.getcwd)
    gpus: str | int | None = None
    env: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)
    network: str = "none"
    user: str = field(default_factory=lambda: host_user())  # looked up late: tests map another uid
    extra_mounts: dict[str, dict[str, str]] = field(default_factory=dict)
    scratch: str | None = None  # a SCRATCH_PREFIX folder that dies with the container
    kernel_id: str = ""  # a Jupyter server's kernel id: the container outlives the server (kernel_records)


def workspace(cwd: str) -> str:
    """The working directory to mount: refuse ``/`` (mounting the host's root into a container is never meant)."""
    path = os.path.realpath(cwd)
    if path == "/":
        raise RuntimeFailure("the working directory is / ; change to a project folder (%cd DIR) first, it is "
                             "mounted into the container")
    return path


def create(client: Any, image: str, command: list[str], spec: ContainerSpec, init: bool = False,
           on_created: Callable[[Any], None] | None = None) -> Any:
    """Create and start a container; a start the engine refuses (GPUs it cannot give) leaves nothing behind.

    ``init`` puts the engine's tiny init first (signals forwarded, zombies reaped): scripts want it; a kernel is
    PID 1 itself so that the engine's SIGINT reaches it directly. ``on_created`` runs before the start (attach
    there to miss no output of a command that ends at once).
    """
    if spec.network not in NETWORKS:
        raise RuntimeFailure(f"network {spec.network!r} is not allowed; use 'none' or 'host'")
    cwd = workspace(spec.cwd)
    requests = gpu_requests(spec.gpus, client)
    volumes = {cwd: {"bind": cwd, "mode": "rw"}, **spec.volumes, **spec.extra_mounts}
    environment = {"HOME": "/tmp", "IPYTHONDIR": "/tmp/.ipython", "MPLCONFIGDIR": "/tmp/.matplotlib",
                   "PYTHONUNBUFFERED": "1", **spec.env}
    # The snapshot's name as host name, and it resolves: on the host network and on none Docker does not write
    # it into /etc/hosts, and code that looks itself up (gethostbyname(gethostname())) would fail.
    hostname = container_hostname(spec.snapshot)
    hosts = {hostname: "127.0.0.1"}
    container = None
    try:
        container = client.containers.create(
            image, command, entrypoint=[], working_dir=cwd, user=spec.user, environment=environment,
            hostname=hostname, extra_hosts=hosts,
            volumes=volumes, network_mode=spec.network, shm_size="1g", device_requests=requests or None,
            labels={**owner_labels(spec.role, spec.snapshot), **({SCRATCH: spec.scratch} if spec.scratch else {}),
                    **({KERNEL_ID: spec.kernel_id} if spec.kernel_id else {})},
            stdin_open=False, tty=False, init=init or None)
        if on_created is not None:
            on_created(container)
        container.start()
    except BaseException as err:  # broad on purpose: whatever stops the start (Ctrl-C, a stop signal, a bug in
        if container is not None:  # ``on_created``), the container made but never handed back must go
            remove_quietly(container)
        if not isinstance(err, ENGINE_ERRORS):
            raise
        raise _explain_start(err, image, bool(requests)) from None
    return container


def _explain_start(err: Exception, image: str, wants_gpu: bool) -> EngineError:
    text = str(getattr(err, "explanation", None) or err)
    if wants_gpu and ("device driver" in text or "gpu" in text.lower() or "nvidia" in text.lower()):
        return EngineError("the Docker engine cannot give this container GPUs (" + text.strip().splitlines()[-1][:160]
                           + "); install the NVIDIA Container Toolkit and restart the engine, or use --gpus none")
    return explain(err, f"starting a container of {image}")


def make_scratch() -> str:
    """A private host folder for one container (short: Unix socket paths must stay under 108 bytes)."""
    return tempfile.mkdtemp(prefix=os.path.basename(SCRATCH_PREFIX), dir=os.path.dirname(SCRATCH_PREFIX))


def remove_quietly(container: Any) -> None:
    """Remove a container whatever its state, and its scratch folder; gone already is fine."""
    import docker
    import requests

    try:
        container.remove(force=True, v=True)
    except (docker.errors.APIError, requests.exceptions.RequestException):  # gone, being removed, engine away
        pass
    scratch = (getattr(container, "labels", None) or {}).get(SCRATCH, "")
    if scratch.startswith(SCRATCH_PREFIX) and "/" not in scratch[len(SCRATCH_PREFIX):]:  # never another path
        shutil.rmtree(scratch, ignore_errors=True)


def exit_reason(container: Any) -> str:
    """Why a container stopped, from ``State``: exit code, OOM kill, the engine's own error."""
    import docker
    import requests

    try:
        container.reload()
        state = container.attrs.get("State") or {}
    except docker.errors.NotFound:
        return "it is gone (removed from the engine)"
    except (docker.errors.APIError, requests.exceptions.RequestException) as err:
        return f"the engine did not say why: {type(err).__name__}"
    if state.get("Running"):
        return "it is still running"
    parts = [f"exit code {state.get('ExitCode')}"]
    if state.get("OOMKilled"):
        parts.append("killed for running out of memory (OOMKilled)")
    if state.get("Error"):
        parts.append(str(state["Error"])[:200])
    return ", ".join(parts)


def last_log_line(container: Any) -> str:
    import docker
    import requests

    try:
        lines = container.logs(tail=20).decode("utf-8", "replace").strip().splitlines()
    except (docker.errors.APIError, requests.exceptions.RequestException):
        return ""
    return lines[-1][:300] if lines else ""
