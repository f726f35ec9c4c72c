"""The kernel process of a snapshot kernelspec: it runs ipykernel in the snapshot's container and stands in for it.

jupyter_client starts this process as if it were the kernel. It makes sure the kernel image exists, starts the
container on the host network (the server's connection file speaks TCP on 127.0.0.1) with the notebook's folder
mounted at its own path, then stays in the foreground: SIGINT (an interrupt) goes on to the kernel, which is
PID 1 of the container; SIGTERM/SIGHUP (a shutdown the kernel did not finish itself) or the container's own exit
remove the container, and this process exits with the kernel's code. A launcher killed outright leaves its
container to the dead-owner sweep the next launcher (or ``%%in_env``) runs.

The container gets a private copy of the connection file, not the runtime folder, which holds every other
kernel's keys.
"""
from __future__ import annotations

import argparse
import os
import queue
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ..snapshot.store import open_store
from ..engine.client import connect
from ..events import Event
from ..exceptions import YolosnapError
from ..bake import kernel_layer
from ..runtime import registry
from ..runtime.containers import ContainerSpec, create, driver_warning, make_scratch, remove_quietly
from ..runtime.remote_kernel import BOOT

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _say(text: str) -> None:
    print(f"yolosnap kernel: {text}", file=sys.stderr, flush=True)


def _phase(event: Event) -> None:
    if event.kind == "phase":
        _say(event.message)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jupyter_yolosnap.kernelspec",
                                     description="Run snapshot NAME's IPython kernel in its container.")
    parser.add_argument("name")
    parser.add_argument("--project", default=None, help="the snapshot's project folder")
    parser.add_argument("-f", dest="connection_file", required=True, help="the kernel connection file")
    parser.add_argument("--gpus", default="auto", help="all, a count, device=0,1, none or auto (default)")
    return parser.parse_args(argv)


def private_connection_file(path: str) -> tuple[str, str]:
    """A folder of our own holding a copy of the connection file: (folder, copy)."""
    folder = make_scratch()  # labelled on the container: a sweep after a crash removes it too
    copy = os.path.join(folder, os.path.basename(path))
    shutil.copyfile(path, copy)
    os.chmod(copy, 0o600)
    return folder, copy


def serve(container: Any, inbox: "queue.SimpleQueue[tuple[str, int]]") -> int:
    """Relay signals to the container until it exits or we are told to stop; returns the exit code."""
    def wait() -> None:
        try:
            code = int(container.wait().get("StatusCode", 1))
        except Exception:  # removed under us, engine gone
            code = 1
        inbox.put(("exit", code))

    threading.Thread(target=wait, daemon=True).start()
    threading.Thread(target=_follow_logs, args=(container,), daemon=True).start()
    while True:
        try:
            kind, value = inbox.get(timeout=0.5)
        except queue.Empty:
            continue
        if kind == "exit":
            return value
        if value == signal.SIGINT:
            try:
                container.kill(signal="SIGINT")
            except Exception:
                pass
        else:
            _say(f"stopping on signal {signal.Signals(value).name}")
            return 128 + value


def _follow_logs(container: Any) -> None:
    """The kernel's own output into this process's stderr, which the server logs."""
    try:
        for chunk in container.logs(stream=True, follow=True):
            sys.stderr.write(chunk.decode("utf-8", "replace"))
            sys.stderr.flush()
    except Exception:
        pass


def run(name: str, project: str | None, connection_file: str, gpus: str = "auto") -> int:
    """Start snapshot ``name``'s kernel container and stand in for it until it ends; returns its exit code."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupt before the kernel runs has nothing to stop
    manifest = open_store(project).load(name)
    client = connect()
    registry.sweep(client)
    made = kernel_layer.ensure(client, manifest, _phase)
    warning = driver_warning(manifest, gpus)
    if warning:
        _say(warning)
    folder, connection = private_connection_file(connection_file)
    inbox: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()  # put() is safe in a signal handler
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(signum, lambda s, _frame: inbox.put(("signal", s)))
    container = None
    try:
        spec = ContainerSpec(role="kernel", snapshot=manifest["name"], cwd=os.getcwd(), gpus=gpus, network="host",
                             extra_mounts={folder: {"bind": folder, "mode": "rw"}}, scratch=folder)
        command = ["python", "-c", BOOT, made.kernel_path or "", "-f", connection,
                   "--HistoryManager.hist_file=:memory:"]
        container = create(client, made.image, command, spec)
        _say(f"snapshot {manifest['name']!r} running in {made.image} (container {container.short_id})")
        return serve(container, inbox)
    finally:
        if container is not None:
            remove_quietly(container)
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not Path(args.connection_file).is_file():
        _say(f"connection file {args.connection_file} does not exist; start this kernel from Jupyter")
        return 2
    try:
        return run(args.name, args.project, args.connection_file, args.gpus)
    except YolosnapError as err:
        _say(str(err))
        return 2
