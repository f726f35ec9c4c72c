"""One-off commands in a fresh container of a snapshot's verified image, with live output and a log file.

``%snapshot run NAME -- python train.py`` is the batch twin of ``%%in_env``: the same mounts, user and GPUs,
but a new container per run (removed afterwards), output printed as it comes and kept in
``<cwd>/.yolosnap-runs/<name>-<timestamp>.log`` so a long training run leaves a record.
"""
from __future__ import annotations

import codecs
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .. import api
from ..engine.client import connect, explain
from ..exceptions import YolosnapError
from . import metrics, tensorboard as tensorboard_sidecar
from .containers import ContainerSpec, create, driver_warning, parse_env, parse_volumes, remove_quietly
from ..exceptions import RuntimeFailure
from .kernel_image import verified_image

LOG_FOLDER = ".yolosnap-runs"
STOP_GRACE_S = 10


@dataclass(frozen=True)
class ScriptRun:
    """What a run did: its exit code (also ``int(run)``), its log file, how long it took, and the metrics
    table it wrote (YOLO's ``results.csv``), if any."""

    exit_code: int
    log: Path
    seconds: float
    image: str
    argv: tuple[str, ...] = ()
    metrics: Path | None = None
    tensorboard: str | None = None

    def __int__(self) -> int:
        return self.exit_code


def run_script(name: str, argv: list[str], project: str | os.PathLike | None = None, gpus: str | int | None = None,
               env: list[str] | dict[str, str] | None = None, volumes: list[str] | None = None,
               cwd: str | None = None, network: str = "none", stdout: TextIO | None = None,
               stderr: TextIO | None = None, tensorboard: str | None = None) -> ScriptRun:
    """Run ``argv`` in snapshot ``name``'s verified image; print its output live; return its exit code and log.

    ``tensorboard`` names a log folder to serve with TensorBoard while the run lasts. Ctrl-C stops the command
    (SIGINT, then a kill after a grace period), removes the container (and TensorBoard) and re-raises.
    """
    if not argv:
        raise RuntimeFailure("nothing to run; give a command after --, e.g. %snapshot run NAME -- python train.py")
    cwd = cwd or os.getcwd()
    out, err = stdout or sys.stdout, stderr or sys.stderr
    manifest = api.load(name, project)
    client = connect()
    image = verified_image(client, manifest)
    warning = driver_warning(manifest, gpus)
    if warning:
        err.write(warning + "\n")
    spec = ContainerSpec(role="run", snapshot=manifest["name"], cwd=cwd, gpus=gpus, env=parse_env(env),
                         volumes=parse_volumes(volumes, cwd), network=network)
    folder = Path(cwd, LOG_FOLDER)
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
    log_path = folder / f"{manifest['name']}-{stamp}.log"
    began, began_wall = time.perf_counter(), time.time()
    board = tensorboard_sidecar.start(client, image, manifest, tensorboard, spec) if tensorboard else None
    if board is not None:
        out.write(f"TensorBoard on {tensorboard} (until the run ends): {board.url}\n")
        out.flush()
    attached: list = []  # attached before the start: a command that ends at once still shows its output
    try:
        container = create(client, image, list(argv), spec, init=True, on_created=lambda c: attached.append(
            client.api.attach(c.id, stdout=True, stderr=True, stream=True, logs=False, demux=True)))
    except BaseException:
        if board is not None:
            board.stop()
        raise
    code = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w", encoding="utf-8") as log:
            log.write(f"# {image}  {' '.join(argv)}  (cwd {cwd})\n")
            log.flush()
            try:
                _follow(attached[0], out, err, log)
                code = int(container.wait().get("StatusCode", -1))
            except KeyboardInterrupt:
                _stop(container)
                log.write("# interrupted\n")
                raise
            log.write(f"# exit code {code}\n")
    except (YolosnapError, OSError):  # ours, or the log file: already clear (Ctrl-C is no Exception)
        raise
    except Exception as exc:
        raise explain(exc, f"running {argv[0]} in {image}") from None
    finally:
        remove_quietly(container)
        if board is not None:
            board.stop()
    return ScriptRun(code, log_path, time.perf_counter() - began, image, tuple(argv),
                     metrics.find_written(cwd, began_wall), board.url if board else None)


def _follow(stream: Any, out: TextIO, err: TextIO, log: TextIO) -> None:
    """Copy the container's output as it comes: stdout to ``out``, stderr to ``err``, both to the log.

    A thread reads the engine's stream; this (main) thread writes, waking up often, so that Ctrl-C or the
    notebook's stop button is seen at once even while the command prints nothing.
    """
    chunks: queue.SimpleQueue = queue.SimpleQueue()

    def read() -> None:
        try:
            for pair in stream:
                chunks.put(pair)
        except Exception:  # the stream closed under us: the container is gone
            pass
        chunks.put(None)

    threading.Thread(target=read, daemon=True, name="yolosnap-run-output").start()
    decoders = [codecs.getincrementaldecoder("utf-8")("replace") for _ in range(2)]  # a character may be split
    while True:
        try:
            pair = chunks.get(timeout=0.2)
        except queue.Empty:
            continue
        if pair is None:
            return
        for chunk, target, decoder in zip(pair, (out, err), decoders):
            if chunk:
                text = decoder.decode(chunk)
                target.write(text)
                target.flush()
                log.write(text)
                log.flush()


def _stop(container: Any) -> None:
    try:
        container.kill(signal="SIGINT")
        container.wait(timeout=STOP_GRACE_S)
    except Exception:
        pass
