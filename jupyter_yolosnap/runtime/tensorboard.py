"""``--tensorboard DIR``: TensorBoard on a run's logs while the run lasts, at an address printed before it starts.

The snapshot's own TensorBoard is preferred (it reads the event files its own TensorFlow/torch wrote): a second
container of the same image, on the host network (the only way a port is reachable with the engine's bridge
off) but bound to 127.0.0.1, labelled like every runtime container so ``ps``/``stop`` and the sweep see it.
Without TensorBoard in the snapshot, the notebook's own environment serves it when it has one. Either way it
ends with the run: nothing keeps running that the user did not ask to keep.
"""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from ..exceptions import RuntimeFailure
from .containers import ContainerSpec, create, last_log_line, remove_quietly

READY_TIMEOUT_S = 60.0


@dataclass
class TensorBoard:
    """A running TensorBoard: its address and what to stop (a container or a host process)."""

    url: str
    where: str                       # "snapshot" or "notebook"
    container: Any = None
    process: subprocess.Popen | None = None

    def stop(self) -> None:
        if self.container is not None:
            remove_quietly(self.container)
            self.container = None
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def seen_from_container(path: str, spec: ContainerSpec) -> str:
    """Where host folder ``path`` is inside the run's containers: the working directory is mounted at its own
    path, ``-v`` folders where asked; a folder in neither cannot be written by the run, so it is refused."""
    mounts = {os.path.realpath(spec.cwd): os.path.realpath(spec.cwd)}
    mounts.update({os.path.realpath(host): bind["bind"] for host, bind in spec.volumes.items()})
    real = os.path.realpath(path)
    for host, inside in sorted(mounts.items(), key=lambda item: -len(item[0])):
        if real == host:
            return inside
        if real.startswith(host.rstrip("/") + "/"):
            return inside.rstrip("/") + real[len(host.rstrip("/")):]
    raise RuntimeFailure(f"--tensorboard: {path} is not inside the working directory or a -v mount, so the run "
                         "cannot write there; give a folder under the working directory (e.g. runs/train)")


def start(client: Any, image: str, manifest: dict, logdir: str, spec: ContainerSpec) -> TensorBoard:
    """Start TensorBoard on ``logdir``; ready (answering HTTP) when this returns. Every refusal comes before
    anything is created."""
    in_snapshot = any(p.get("name") == "tensorboard" for p in manifest.get("packages", []))
    if not in_snapshot and importlib.util.find_spec("tensorboard") is None:
        raise RuntimeFailure(f"--tensorboard needs the tensorboard package in snapshot {manifest['name']!r} or in "
                             "this notebook's environment; pip install tensorboard, or leave the option out")
    host_path = os.path.abspath(os.path.join(spec.cwd, os.path.expanduser(logdir)))
    path = seen_from_container(host_path, spec) if in_snapshot else host_path
    os.makedirs(host_path, exist_ok=True)  # the run fills it later; TensorBoard waits for event files
    port = free_port()
    args = ["--logdir", path, "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/"
    if in_snapshot:
        side = ContainerSpec(role="tensorboard", snapshot=manifest["name"], cwd=spec.cwd, volumes=spec.volumes,
                             network="host", user=spec.user)
        board = TensorBoard(url, "snapshot", container=create(client, image, ["python", "-m", "tensorboard.main",
                                                                             *args], side, init=True))
    else:
        board = TensorBoard(url, "notebook", process=subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", *args], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True))
    try:
        _wait_ready(board, port)
    except BaseException:
        board.stop()
        raise
    return board


def _wait_ready(board: TensorBoard, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if board.process is not None and board.process.poll() is not None:
            tail = (board.process.stderr.read() or b"").decode("utf-8", "replace").strip().splitlines()
            raise RuntimeFailure(f"TensorBoard did not start ({tail[-1][:200] if tail else 'no output'})")
        if board.container is not None:
            board.container.reload()
            if board.container.status != "running":
                raise RuntimeFailure(f"TensorBoard did not start in the snapshot's container "
                                     f"({last_log_line(board.container) or 'no output'})")
        time.sleep(0.2)
    raise RuntimeFailure(f"TensorBoard did not answer on port {port} within {READY_TIMEOUT_S:.0f} s")
