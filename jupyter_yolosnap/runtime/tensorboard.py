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


def logdir_path(logdir: str, cwd: str) -> str:
    """The log folder, absolute; it must lie inside the mounted working directory or an extra mount."""
    path = os.path.abspath(os.path.join(cwd, os.path.expanduser(logdir)))
    os.makedirs(path, exist_ok=True)  # the run creates it later; TensorBoard waits for event files
    return path


def start(client: Any, image: str, manifest: dict, logdir: str, spec: ContainerSpec) -> TensorBoard:
    """Start TensorBoard on ``logdir``; ready (answering HTTP) when this returns."""
    path = logdir_path(logdir, spec.cwd)
    port = free_port()
    args = ["--logdir", path, "--host", "127.0.0.1", "--port", str(port)]
    if any(p.get("name") == "tensorboard" for p in manifest.get("packages", [])):
        side = ContainerSpec(role="tensorboard", snapshot=manifest["name"], cwd=spec.cwd, volumes=spec.volumes,
                             network="host", user=spec.user)
        board = TensorBoard(f"http://127.0.0.1:{port}/", "snapshot",
                            container=create(client, image, ["python", "-m", "tensorboard.main", *args], side,
                                             init=True))
    elif importlib.util.find_spec("tensorboard") is not None:
        board = TensorBoard(f"http://127.0.0.1:{port}/", "notebook", process=subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", *args], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True))
    else:
        raise RuntimeFailure(f"--tensorboard needs the tensorboard package in snapshot {manifest['name']!r} or in "
                             "this notebook's environment; pip install tensorboard, or leave the option out")
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
