"""One-off commands in a fresh container of a snapshot's verified image, with live output and a log file.

``%snapshot run NAME -- python train.py`` is the batch twin of ``%%in_env``: the same mounts, user and GPUs,
but a new container per run (removed afterwards), output printed as it comes and kept in
``<cwd>/.yolosnap-runs/<name>-<timestamp>.log`` so a long training run leaves a record.
"""
from __future__ import annotations

import codecs
import contextlib
import os
import queue
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, TextIO

import urllib3

from ..snapshot.store import open_store
from ..engine.client import ENGINE_ERRORS, STREAM_ERRORS, connect, explain
from ..exceptions import RunTerminated, RuntimeFailure, YolosnapError
from ..gpu import telemetry
from . import metrics, tensorboard as tensorboard_sidecar
from .containers import ContainerSpec, create, gpu_plan, parse_env, parse_volumes, remove_quietly
from ..bake.kernel_layer import verified_image

LOG_FOLDER = ".yolosnap-runs"
STOP_GRACE_S = 10
SIGNAL_GRACE_S = 5  # asked to end (SIGTERM, SIGHUP): less patience than for Ctrl-C, whoever asked will not wait
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


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
    gpu_csv: Path | None = None
    gpu_summary: str | None = None
    provenance: tuple[str, ...] = ()

    def __int__(self) -> int:
        return self.exit_code


def run_script(name: str, argv: list[str], project: str | os.PathLike | None = None, gpus: str | int | None = None,
               env: list[str] | dict[str, str] | None = None, volumes: list[str] | None = None,
               cwd: str | None = None, network: str = "none", stdout: TextIO | None = None,
               stderr: TextIO | None = None, tensorboard: str | None = None) -> ScriptRun:
    """Run ``argv`` in snapshot ``name``'s verified image; print its output live; return its exit code and log.

    ``tensorboard`` names a log folder to serve with TensorBoard while the run lasts. Ctrl-C stops the command
    (SIGINT, then a kill after a grace period), removes the container (and TensorBoard) and re-raises. SIGTERM
    and SIGHUP to this process (a closed terminal, ``kill``, a CI job cancelled) do the same, forwarding the
    signal, and raise :class:`RunTerminated` (the CLI exits 128 + signum).
    """
    if not argv:
        raise RuntimeFailure("nothing to run; give a command after --, e.g. %snapshot run NAME -- python train.py")
    cwd = cwd or os.getcwd()
    out, err = stdout or sys.stdout, stderr or sys.stderr
    manifest = open_store(project).load(name)
    client = connect()
    try:
        image = verified_image(client, manifest)
        gpus, warning = gpu_plan(manifest, gpus, client)
        if warning:
            err.write(warning + "\n")
        spec = ContainerSpec(role="run", snapshot=manifest["name"], cwd=cwd, gpus=gpus, env=parse_env(env),
                             volumes=parse_volumes(volumes, cwd), network=network)
        with StopSignals(manifest["name"]) as signals:
            return _run(client, image, manifest, list(argv), spec, tensorboard, out, err, signals)
    except RunTerminated as stopped:  # the container is gone by now: say so, then let the process end
        err.write(f"yolosnap: {stopped}\n")
        err.flush()
        raise
    finally:
        client.close()  # its pooled engine connections: a notebook runs many of these


def _run(client: Any, image: str, manifest: dict, argv: list[str], spec: ContainerSpec, tensorboard: str | None,
         out: TextIO, err: TextIO, signals: "StopSignals") -> ScriptRun:
    """Start the sidecar and the container, follow it to its end; whatever happens, remove both."""
    folder = Path(spec.cwd, LOG_FOLDER)
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
    log_path = folder / f"{manifest['name']}-{stamp}.log"
    began, began_wall = time.perf_counter(), time.time()
    board = container = sampler = None
    header: tuple[str, ...] = ()
    attached: list = []  # attached before the start: a command that ends at once still shows its output
    try:
        board = tensorboard_sidecar.start(client, image, manifest, tensorboard, spec) if tensorboard else None
        if board is not None:
            out.write(f"TensorBoard on {tensorboard} (until the run ends): {board.url}\n")
            out.flush()
        # Before the container starts: once it runs, a stop signal must find its log already open.
        header = provenance(manifest, client.images.get(image).id, spec.cwd)
        with signals.held():  # a container made but not yet handed back here could not be removed
            container = create(client, image, argv, spec, init=True, on_created=lambda c: attached.append(
                client.api.attach(c.id, stdout=True, stderr=True, stream=True, logs=False, demux=True)))
        sampler = telemetry.for_container(container, log_path.with_suffix(".gpu.csv"))
        with sampler if sampler is not None else contextlib.nullcontext():
            code = _follow_to_exit(container, attached[0], header, argv, spec.cwd, log_path, out, err)
    except YolosnapError:  # ours: already clear (Ctrl-C is no Exception)
        raise
    except (*ENGINE_ERRORS, urllib3.exceptions.HTTPError) as exc:  # the engine refused or went away. Any other
        raise explain(exc, f"running {argv[0]} in {image}") from None  # OSError is the log file's, clear as it is
    finally:
        with signals.held():  # a signal during the cleanup must not cut it short
            if container is not None:
                remove_quietly(container)
            if board is not None:
                board.stop()
    gpu_csv = sampler.path if sampler is not None and sampler.path.exists() else None
    return ScriptRun(code, log_path, time.perf_counter() - began, image, tuple(argv),
                     metrics.find_written(spec.cwd, began_wall), board.url if board else None, gpu_csv,
                     sampler.summary() if sampler is not None else None, header)


def provenance(manifest: dict, image_id: str, cwd: str) -> tuple[str, ...]:
    """The run log's first lines: which snapshot (name, manifest digest), which image (its id, a content
    digest), and which code (the git commit of the folder the command runs in, and whether it is dirty), so a
    result can be traced to its environment. Values are ours or git's hex; nothing is run but ``git``."""
    from ..capture.git import probe_git

    git = probe_git(cwd)
    code = "not a git work tree" if git is None else \
        f"git {git['commit']}" + (" (dirty: uncommitted changes)" if git["dirty"] else " (clean)")
    return (f"snapshot {manifest['name']}  manifest {manifest['digest']}", f"image {image_id}", f"code {code}")


def _follow_to_exit(container: Any, stream: Any, header: tuple[str, ...], argv: list[str], cwd: str,
                    log_path: Path, out: TextIO, err: TextIO) -> int:
    """Print and log the container's output until it exits; its exit code. Ctrl-C or a stop signal ends the
    command (the same signal forwarded, then a kill after a grace period), noted in the log, and re-raises."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        for line in header:
            log.write(f"# {line}\n")
        log.write(f"# command {shlex.join(argv)}  (cwd {cwd})\n")
        log.flush()
        try:
            _follow(stream, out, err, log)
            code = int(container.wait().get("StatusCode", -1))
        except KeyboardInterrupt:
            _stop(container)
            log.write("# interrupted\n")
            raise
        except RunTerminated as stopped:
            _stop(container, signal.Signals(stopped.signum).name, SIGNAL_GRACE_S)
            log.write(f"# stopped by {signal.Signals(stopped.signum).name}\n")
            raise
        log.write(f"# exit code {code}\n")
    return code


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
        except (*STREAM_ERRORS, ValueError):  # the stream closed under us (ValueError: read on a closed file)
            pass
        finally:  # even after a bug here (printed by threading's hook) the writer below must see the end
            chunks.put(None)

    threading.Thread(target=read, daemon=True, name="yolosnap-run-output").start()
    decoders = [codecs.getincrementaldecoder("utf-8")("replace") for _ in range(2)]  # a character may be split
    pending = ["", ""]  # the log gets whole lines per stream: stdout and stderr never split each other's lines
    while True:
        try:
            pair = chunks.get(timeout=0.2)
        except queue.Empty:
            continue
        if pair is None:
            for rest in pending:
                if rest:
                    log.write(rest + "\n")
            log.flush()
            return
        for index, (chunk, target, decoder) in enumerate(zip(pair, (out, err), decoders)):
            if chunk:
                text = decoder.decode(chunk)
                target.write(text)
                target.flush()
                whole, _, pending[index] = (pending[index] + text).rpartition("\n")
                if whole:
                    log.write(whole + "\n")
                    log.flush()


def _stop(container: Any, how: str = "SIGINT", grace: float = STOP_GRACE_S) -> None:
    """Send ``how`` to the command (the engine's init forwards it), give it ``grace`` seconds to end; the caller
    removes the container (a kill) afterwards either way."""
    import docker
    import requests

    try:
        container.kill(signal=how)
        container.wait(timeout=grace)
    except (docker.errors.APIError, requests.exceptions.RequestException):  # gone already, or still busy
        pass


class StopSignals:
    """While a run owns a container: SIGTERM and SIGHUP raise :class:`RunTerminated` in the main thread.

    Why: their default action ends the process at once, skipping every ``finally``, so the container would go on
    running with nobody left to remove it (only Ctrl-C was handled). Raising instead lets the run's cleanup
    remove it. A signal this process ignores (``nohup``) stays ignored, the previous handlers come back on exit
    (and a Python one is called after the cleanup), and a second signal while stopping is noted, not raised, so
    the cleanup finishes. Outside the main thread nothing is installed: Python only allows it there.
    """

    def __init__(self, snapshot: str = ""):
        self.snapshot = snapshot
        self.received: int | None = None
        self.previous: dict[int, Any] = {}
        self._holding = 0
        self._raised = False

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                before = signal.getsignal(signum)
                if before in (signal.SIG_IGN, None):  # ignored on purpose, or set outside Python: not ours
                    continue
                self.previous[signum] = before
                signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        previous, self.previous = self.previous, {}
        for signum, before in previous.items():
            signal.signal(signum, before)
        before = previous.get(self.received)
        if callable(before) and before not in (signal.SIG_DFL, signal.default_int_handler):
            before(self.received, None)  # the process's own handler, now that the container is gone

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            return  # already stopping: let the cleanup finish
        self.received = signum
        if not self._holding:
            self._raise()

    def _raise(self) -> None:
        self._raised = True
        raise RunTerminated(self.received, self.snapshot)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Note a signal instead of raising it inside the block (a container create, the cleanup); raise after."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if self.received is not None and not self._holding and not self._raised:
            self._raise()
