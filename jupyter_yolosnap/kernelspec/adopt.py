"""A Jupyter server that starts finds the restored kernels an earlier server left running, and takes them over.

The server extension calls :func:`adopt` once its event loop runs. For each record in
:mod:`~jupyter_yolosnap.runtime.kernel_records` whose server is gone, it builds the kernel manager the server's
``MappingKernelManager`` would have built for that kernel id and kernelspec, hands the record to the snapshot
provisioner's ``load_provisioner_info`` (which finds the container by id and refuses one that is not that
snapshot's kernel), writes the connection file again and registers the kernel: ``/api/kernels`` lists it, clients
connect to it with its old ports and key, and interrupt, restart and shutdown reach its container as for a kernel
this server started. A record whose container is gone, or that cannot be adopted, is removed with the container
it names: nothing is left to a sweep that will not come.
"""
from __future__ import annotations

import asyncio
from typing import Any

from ..exceptions import YolosnapError
from .provisioner import NAME


async def adopt(mkm: Any, log: Any) -> list[str]:
    """Adopt into ``mkm`` (jupyter_server's MappingKernelManager) every orphaned restored kernel; their ids."""
    from ..runtime import kernel_records

    adopted = []
    for entry, body in kernel_records.records():
        if body is None:
            log.warning("jupyter_yolosnap: %s is not a kernel record this tool wrote; removed", entry.name)
            entry.unlink(missing_ok=True)
            continue
        if kernel_records.owner_alive(body) or body["kernel_id"] in mkm:
            continue  # another live server's kernel, or already ours
        try:
            if await _adopt_one(mkm, body):
                adopted.append(body["kernel_id"])
                log.info("jupyter_yolosnap: adopted kernel %s of snapshot %r (container %s)", body["kernel_id"],
                         body["snapshot"], body["container_id"][:12])
            else:
                log.info("jupyter_yolosnap: kernel %s of snapshot %r ended while no server ran; record removed",
                         body["kernel_id"], body["snapshot"])
                kernel_records.remove(body["kernel_id"])
        except (YolosnapError, KeyError, ValueError, OSError) as err:  # KeyError: the kernelspec was removed
            log.warning("jupyter_yolosnap: kernel %s of snapshot %r not adopted (%s); its container is removed",
                        body["kernel_id"], body["snapshot"], str(err).splitlines()[0] if str(err) else type(err).__name__)
            await asyncio.to_thread(_discard, body)
    return adopted


async def _adopt_one(mkm: Any, body: dict[str, Any]) -> bool:
    from jupyter_client.provisioning import KernelProvisionerFactory
    from jupyter_server._tz import utcnow
    from jupyter_server.prometheus.metrics import KERNEL_CURRENTLY_RUNNING_TOTAL

    from ..runtime import kernel_records

    kernel_id = body["kernel_id"]
    km, kernel_name, kernel_id = mkm.pre_start_kernel(body["kernel_name"], {"kernel_id": kernel_id})
    provisioner_name = (km.kernel_spec.metadata.get("kernel_provisioner") or {}).get("provisioner_name")
    if provisioner_name != NAME:  # the kernelspec was replaced by one that does not run snapshots
        raise ValueError(f"kernelspec {kernel_name!r} no longer names {NAME}")
    km.kernel_id = kernel_id
    km.provisioner = KernelProvisionerFactory.instance().create_provisioner_instance(kernel_id, km.kernel_spec,
                                                                                      parent=km)
    await km.provisioner.load_provisioner_info(body)
    if not km.provisioner.has_process or await km.provisioner.poll() is not None:
        await km.provisioner.cleanup(restart=False)
        return False
    km.load_connection_info(body["connection_info"])
    km.write_connection_file()
    km._launch_args = {"cwd": body["cwd"]}  # what restart_kernel starts the next container with
    km._attempted_start = True  # started, by the earlier server: restart and shutdown make fresh futures
    km._ready = asyncio.get_running_loop().create_future()  # the kernel is up: nothing to wait for
    km._ready.set_result(None)
    mkm._kernels[kernel_id] = km
    mkm._kernel_connections[kernel_id] = 0
    KERNEL_CURRENTLY_RUNNING_TOTAL.labels(type=kernel_name).inc()  # shutdown decrements it, as for any kernel
    km.execution_state, km.reason, km.last_activity = "idle", "", utcnow()
    km.start_restarter()
    await mkm._finish_kernel_start(kernel_id)
    kernel_records.write(kernel_id, km.provisioner.record())  # this server is the owner now
    return True


def _discard(body: dict[str, Any]) -> None:
    """Remove the container a record names (only if it is that snapshot's kernel) and the record."""
    import docker
    import requests

    from ..engine.client import connect
    from ..engine.labels import KERNEL_ID
    from ..runtime import kernel_records
    from ..runtime.containers import remove_quietly

    try:
        container = connect().containers.get(body["container_id"])
    except (docker.errors.DockerException, requests.exceptions.RequestException, YolosnapError):
        container = None  # gone, or no engine: nothing this server can remove
    if container is not None and (container.labels or {}).get(KERNEL_ID) == body["kernel_id"]:
        remove_quietly(container)
    kernel_records.remove(body["kernel_id"])
