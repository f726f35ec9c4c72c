"""The kernel provisioner of restored snapshots: jupyter_client runs the kernel as a container, with no process
standing in for it.

A restored snapshot's kernel.json names this provisioner (``metadata.kernel_provisioner``, entry point
``yolosnap-docker-provisioner``) with the snapshot, its project and the manifest digest it was restored from.
jupyter_client (Jupyter Server, nbclient, papermill) then asks the provisioner, not a process, for everything it
does to a kernel, as Enterprise Gateway's Docker and Kubernetes provisioners do:

- ``pre_launch`` writes the connection file as jupyter_client always does (ports on the server's loopback, its
  key), and keeps the kernelspec's ``argv`` out of the way: that is only what a client *without* provisioner
  support would run, and it refuses (see :mod:`.install`);
- ``launch_kernel`` loads the manifest, refuses one whose digest is not the restored one, makes the kernel image
  (the verified image, plus ipykernel in its own layer where needed), sweeps containers of dead owners, and
  starts the container: host network (the connection file speaks TCP on 127.0.0.1), the notebook's folder at its
  own path, and a private copy of the connection file (never the runtime folder, which holds every other
  kernel's keys). The command is :func:`~jupyter_yolosnap.runtime.remote_kernel.kernel_command`, the same as for
  ``%%in_env``'s kernels;
- ``poll``/``wait`` read the container's state, ``send_signal`` is the engine's kill with that signal (SIGINT:
  an interrupt; the kernel is PID 1 of its container), ``terminate`` and ``kill`` stop and remove the container,
  ``cleanup`` removes what is left (container, scratch folder, cached ports);
- ``get_provisioner_info``/``load_provisioner_info`` carry the container id, so a kernel manager rebuilt from
  saved information (another process, a restarted server) finds the running container again and can poll,
  interrupt and kill it.

Containers are labelled like every runtime container (role ``kernel``, the snapshot, the server process as their
owner): ``yolosnap ps`` lists them. In a Jupyter server they also carry the kernel id and have a record
(:mod:`~jupyter_yolosnap.runtime.kernel_records`): when the server dies without shutting its kernels down, the
dead-owner sweep leaves them, and the next server adopts them (:mod:`.adopt`). Elsewhere (nbclient, papermill)
the next dead-owner sweep removes them.
"""
from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import signal
import sys
import threading
import time
from typing import Any

from jupyter_client.connect import KernelConnectionInfo, LocalPortCache
from jupyter_client.localinterfaces import is_local_ip, local_ips
from jupyter_client.provisioning import KernelProvisionerBase
from traitlets import Unicode

from ..exceptions import EngineError, RuntimeFailure, YolosnapError

NAME = "yolosnap-docker-provisioner"  # the entry point in pyproject.toml
TERMINATE_GRACE_S = 2  # SIGTERM, then SIGKILL: ipykernel as PID 1 sets no SIGTERM handler, so waiting long is moot
PASSED_ENV = ("JPY_SESSION_NAME",)  # from the server's environment into the container (besides kernel.json's env)


class SnapshotProvisioner(KernelProvisionerBase):
    """Runs the IPython kernel of a restored snapshot as a container of its verified image."""

    snapshot = Unicode("", config=True, help="The snapshot whose image the kernel runs in.")
    project = Unicode("", config=True, help="The snapshot's project folder (where its .yolosnap/ store is).")
    digest = Unicode("", config=True, help="The manifest digest the kernel was restored from; a snapshot saved "
                                           "since then is refused until it is built and restored again. Empty: "
                                           "whatever the manifest is now.")
    gpus = Unicode("auto", config=True, help="GPUs for the container: auto (the host's, where the engine can give "
                                             "them), all, a count, device=0,1 or none.")

    container_id: str | None = None
    scratch: str | None = None  # the host folder holding the container's copy of the connection file
    cwd: str | None = None
    exit_code: int | None = None
    ports_cached = False
    _container: Any = None
    _client: Any = None
    _extra_arguments: list[str] = []

    # --- launching ---------------------------------------------------------------------------------------------
    @property
    def has_process(self) -> bool:
        return self.container_id is not None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """The connection file, written as for any local kernel; the command is made at launch, in the image."""
        km = self.parent
        if km is None:
            raise RuntimeFailure(f"the kernel of snapshot {self.snapshot!r} needs a jupyter_client KernelManager to "
                                 "start it; start it from Jupyter")
        if km.transport != "tcp":
            raise RuntimeFailure(f"the kernel of snapshot {self.snapshot!r} speaks TCP on the host network; this "
                                 f"kernel manager asks for transport {km.transport!r}")
        if not is_local_ip(km.ip):
            raise RuntimeFailure(f"the kernel of snapshot {self.snapshot!r} listens on this machine only; {km.ip} "
                                 f"is not one of its addresses ({', '.join(local_ips())})")
        self._extra_arguments = list(kwargs.pop("extra_arguments", None) or [])
        kwargs.pop("transport_encryption", None)  # as LocalProvisioner; kernel.json declares no CurveZMQ support
        if km.cache_ports and not self.ports_cached:  # as LocalProvisioner: no two kernels race for a port
            cache = LocalPortCache.instance()
            km.shell_port, km.iopub_port, km.stdin_port, km.hb_port, km.control_port = (
                cache.find_available_port(km.ip) for _ in range(5))
            self.ports_cached = True
        km.write_connection_file(jupyter_session=(kwargs.get("env") or {}).get("JPY_SESSION_NAME", ""))
        self.connection_info = km.get_connection_info()
        # ``cmd`` is the kernelspec's argv as jupyter_client formats it; launch_kernel runs kernel_command instead
        return await super().pre_launch(cmd=km.format_kernel_cmd(), **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Start the kernel's container (the kernel image made first when missing); the connection info."""
        self.cwd = str(kwargs.get("cwd") or os.getcwd())
        env = {key: value for key, value in (kwargs.get("env") or {}).items()
               if key in PASSED_ENV or key in (self.kernel_spec.env if self.kernel_spec else {})}
        await asyncio.to_thread(self._launch, env)
        return self.connection_info

    def _launch(self, env: dict[str, str]) -> None:
        from ..bake import kernel_layer
        from ..events import Event
        from ..runtime import kernel_records, registry
        from ..runtime.containers import ContainerSpec, create, gpu_plan, make_scratch
        from ..runtime.remote_kernel import kernel_command
        from ..snapshot.store import open_store

        manifest = open_store(self.project or None).load(self.snapshot)
        if self.digest and manifest["digest"] != self.digest:
            raise RuntimeFailure(
                f"snapshot {self.snapshot!r} was saved again since its kernel was restored (restored "
                f"{self.digest[7:19]}, now {manifest['digest'][7:19]}); build and restore it again: "
                f"yolosnap build {self.snapshot} && yolosnap restore {self.snapshot}")
        client = self._engine()
        registry.sweep(client)

        def phase(event: Event) -> None:
            if event.kind == "phase":
                self.log.info("yolosnap kernel %s: %s", self.snapshot, event.message)

        made = kernel_layer.ensure(client, manifest, phase)
        gpus, warning = gpu_plan(manifest, self.gpus, client)
        if warning:
            self.log.warning("yolosnap kernel %s: %s", self.snapshot, warning)
        folder = make_scratch()  # labelled on the container: a sweep after a crash removes it too
        try:
            connection = os.path.join(folder, os.path.basename(self.parent.connection_file))
            shutil.copyfile(self.parent.connection_file, connection)
            os.chmod(connection, 0o600)
            spec = ContainerSpec(role="kernel", snapshot=manifest["name"], cwd=self.cwd, gpus=gpus, env=env,
                                 network="host", extra_mounts={folder: {"bind": folder, "mode": "rw"}},
                                 scratch=folder, kernel_id=self.kernel_id if kernel_records.serving() else "")
            container = create(client, made.image, kernel_command(made.kernel_path, connection)
                               + self._extra_arguments, spec)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._container, self.container_id, self.scratch, self.exit_code = container, container.id, folder, None
        if spec.kernel_id:  # a server's kernel: the next server adopts it if this one dies first
            kernel_records.write(self.kernel_id, self.record())
        self.log.info("yolosnap kernel %s: running in %s (container %s)", self.snapshot, made.image,
                      container.short_id)
        threading.Thread(target=_follow_logs, args=(container,), daemon=True,
                         name=f"yolosnap-kernel-logs-{container.short_id}").start()

    def _engine(self) -> Any:
        if self._client is None:
            from ..engine.client import connect

            self._client = connect()
        return self._client

    # --- the running kernel ------------------------------------------------------------------------------------
    async def poll(self) -> int | None:
        """None while the container runs, else its exit code (the engine unreachable counts as running: the next
        poll tells)."""
        if self.container_id is None:
            return self.exit_code if self.exit_code is not None else 0
        return await asyncio.to_thread(self._poll)

    def _poll(self) -> int | None:
        import docker

        from ..engine.client import ENGINE_ERRORS

        try:
            container = self._engine().containers.get(self.container_id)
        except docker.errors.NotFound:
            self.exit_code = 1 if self.exit_code is None else self.exit_code  # removed under us
            return self.exit_code
        except (*ENGINE_ERRORS, YolosnapError):  # the engine cannot answer now: no proof of death
            return None
        self._container = container
        state = container.attrs.get("State") or {}
        if state.get("Running") or state.get("Status") in ("created", "restarting"):
            return None
        self.exit_code = int(state.get("ExitCode", 1))
        return self.exit_code

    async def wait(self) -> int | None:
        """Until the container has stopped; then it is removed and its exit code returned."""
        while await self.poll() is None:
            await asyncio.sleep(0.1)
        await asyncio.to_thread(self._remove)
        return self.exit_code

    async def send_signal(self, signum: int) -> None:
        """The engine sends ``signum`` to the kernel, PID 1 of the container (SIGINT: interrupt the cell)."""
        if self.container_id is None or signum == 0:  # 0 asks "are you there": poll answers that
            return
        await asyncio.to_thread(self._signal, signum)

    def _signal(self, signum: int) -> None:
        import docker
        import requests

        try:
            self._engine().api.kill(self.container_id, signal=int(signum))
        except docker.errors.NotFound:
            pass  # gone: poll says so
        except docker.errors.APIError as err:
            if err.status_code != 409:  # 409: not running any more, as a process that already exited
                raise _explain(err, f"sending {signal.Signals(signum).name} to the kernel of {self.snapshot!r}"
                               ) from None
        except requests.exceptions.RequestException as err:
            raise _explain(err, f"sending {signal.Signals(signum).name} to the kernel of {self.snapshot!r}"
                           ) from None

    async def kill(self, restart: bool = False) -> None:
        """SIGKILL and remove the container."""
        if self.container_id is not None:
            await asyncio.to_thread(self._remove, 128 + signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        """SIGTERM, SIGKILL after a short grace, and remove the container."""
        if self.container_id is not None:
            await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        import docker
        import requests

        try:
            self._engine().api.stop(self.container_id, timeout=TERMINATE_GRACE_S)
        except (docker.errors.APIError, requests.exceptions.RequestException):
            pass  # gone or the engine away: the removal below says what can be said
        self._remove(128 + signal.SIGTERM)

    def _remove(self, code: int | None = None) -> None:
        """Remove the container (and with it its scratch folder) whatever its state; forget it."""
        import docker
        import requests

        from ..runtime.containers import remove_quietly

        if self.container_id is None:
            return
        container = self._container
        if container is None:
            try:
                container = self._engine().containers.get(self.container_id)
            except docker.errors.NotFound:
                container = None
            except (docker.errors.APIError, requests.exceptions.RequestException) as err:
                raise _explain(err, f"removing the kernel container of {self.snapshot!r}") from None
        if container is not None:
            if code is not None and self.exit_code is None:
                self.exit_code = code
            remove_quietly(container)
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
        self.container_id, self._container, self.scratch = None, None, None

    async def cleanup(self, restart: bool = False) -> None:
        """Whatever is left of the kernel (container, scratch folder); not restarting: its record, ports and
        engine client."""
        from ..runtime import kernel_records

        if self.container_id is not None:
            await asyncio.to_thread(self._remove, None)
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None
        if restart:
            return
        kernel_records.remove(self.kernel_id)
        if self.ports_cached:
            cache = LocalPortCache.instance()
            for key in ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port"):
                port = self.connection_info.get(key)
                if isinstance(port, int):
                    cache.return_port(port)
            self.ports_cached = False
        if self._client is not None:
            self._client.close()
            self._client = None

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return max(recommended, 2.0 * TERMINATE_GRACE_S)

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        return max(recommended, 30.0)  # a first start may build the kernel layer

    def resolve_path(self, path: str) -> str | None:
        """Paths relative to the kernel's folder, which the container sees at the same absolute path."""
        found = pathlib.Path(path).expanduser()
        if not found.is_absolute() and self.cwd:
            found = (pathlib.Path(self.cwd) / found).resolve()
        return found.as_posix() if found.exists() else None

    # --- persistence -------------------------------------------------------------------------------------------
    async def get_provisioner_info(self) -> dict[str, Any]:
        """What a kernel manager elsewhere needs to find this kernel again; plain JSON (the key as text)."""
        info = await super().get_provisioner_info()
        info.update(self.record())
        return info

    def record(self) -> dict[str, Any]:
        """The provisioner info as plain JSON, and the kernelspec's name: what a restarted server adopts."""
        connection = dict(self.connection_info or {})
        if isinstance(connection.get("key"), bytes):
            connection["key"] = connection["key"].decode("ascii")
        return {"kernel_id": self.kernel_id, "connection_info": connection, "container_id": self.container_id,
                "snapshot": self.snapshot, "project": self.project, "digest": self.digest, "gpus": self.gpus,
                "cwd": self.cwd, "scratch": self.scratch,
                "kernel_name": str(getattr(self.parent, "kernel_name", "") or "")}

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        """Take over the kernel that ``provisioner_info`` describes: its container, found on the engine by id.

        A container that is gone leaves this provisioner without a kernel (``is_alive`` is then False); one that
        is not this snapshot's kernel is refused, so saved information cannot make a server kill another
        container.
        """
        await super().load_provisioner_info(provisioner_info)
        connection = dict(self.connection_info or {})
        if isinstance(connection.get("key"), str):
            connection["key"] = connection["key"].encode("ascii")
        self.connection_info = connection
        for key in ("snapshot", "project", "digest", "gpus"):
            if provisioner_info.get(key) is not None:
                setattr(self, key, provisioner_info[key])
        self.cwd = provisioner_info.get("cwd")
        self.ports_cached = True  # a restart keeps the kernel's ports, as for a kernel started here
        self.container_id = provisioner_info.get("container_id")
        if self.container_id:
            await asyncio.to_thread(self._adopt)

    def _adopt(self) -> None:
        import docker
        import requests

        from ..engine.labels import ROLE, SNAPSHOT

        try:
            container = self._engine().containers.get(self.container_id)
        except docker.errors.NotFound:
            self.container_id, self.exit_code = None, 1
            return
        except (docker.errors.APIError, requests.exceptions.RequestException) as err:
            raise _explain(err, f"looking for the kernel container of {self.snapshot!r}") from None
        labels = container.labels or {}
        if labels.get(ROLE) != "kernel" or labels.get(SNAPSHOT) != self.snapshot:
            self.container_id = None
            raise RuntimeFailure(f"container {container.short_id} is not a kernel of snapshot {self.snapshot!r}; "
                                 "the saved kernel information does not match the engine")
        self._container = container
        self.scratch = None  # the saved info names no folder to remove: the container's own label does, at removal
        threading.Thread(target=_follow_logs, args=(container, int(time.time())), daemon=True,
                         name=f"yolosnap-kernel-logs-{container.short_id}").start()


def _explain(err: BaseException, doing: str) -> EngineError:
    from ..engine.client import explain

    return explain(err, doing)


def _follow_logs(container: Any, since: int | None = None) -> None:
    """The kernel's own output into the server's stderr, where a local kernel's goes (from ``since``, a Unix time,
    for an adopted kernel); ends with the container."""
    from ..engine.client import STREAM_ERRORS

    try:
        for chunk in container.logs(stream=True, follow=True, since=since):
            sys.stderr.write(chunk.decode("utf-8", "replace"))
            sys.stderr.flush()
    except (*STREAM_ERRORS, ValueError):  # removed, the engine gone, or (ValueError) the client closed at cleanup
        pass


__all__ = ["NAME", "SnapshotProvisioner"]
