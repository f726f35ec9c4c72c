"""Build an image from a context folder through docker-py's low-level API, streaming progress.

The classic builder (what docker-py drives) reports ``Step N/M : INSTR`` lines; those become step events and
everything else log events. The image is built untagged: the caller tags it only after ``check`` passed, so a
failed build or a drifting image never leaves a tag behind.

A build that stops early (the listener raised, a cancel or timeout from another thread, Ctrl-C) closes its HTTP
stream: dockerd takes the closed connection as a cancel and kills the step's container. The build then waits for
that container to go and removes the partial image, so a stopped build leaves nothing on the engine either.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator

import docker
import requests
import urllib3

from ..events import Event, Listener, ignore
from ..exceptions import BuildCancelled, BuildFailed, EngineError, YolosnapError
from .client import STREAM_ERRORS, explain

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_BUILT = re.compile(r"Successfully built ([0-9a-f]{12,64})")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NOISE = ("Removing intermediate container", "---> Running in")
_LAYER = re.compile(r"^---> ([0-9a-f]{12})$")
_RUNNING = re.compile(r"^---> Running in ([0-9a-f]{12,64})$")
_REMOVED = re.compile(r"^Removing intermediate container ([0-9a-f]{12,64})$")
TAIL_LINES = 15
#: How often a stop request from another thread is looked at while a step prints nothing.
STOP_POLL_S = 0.2
#: How long a stopped build reads on to learn the running step's container (see ``_learn_container``).
DRAIN_S = 2.0
#: How long dockerd gets to kill and remove a cancelled step's container before the build removes it itself.
CONTAINER_GONE_S = 15.0

_STOP: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("yolosnap_build_stop", default=None)


@contextlib.contextmanager
def stop_on(event: threading.Event) -> Iterator[None]:
    """Let ``event`` stop the builds and host ``pip`` runs that this thread starts inside the block.

    A server's build job sets the event from another thread (cancel, timeout). The listener alone cannot see it
    during a step that prints nothing for an hour, and ``bake.build`` has no parameter for it: the context does.
    """
    token = _STOP.set(event)
    try:
        yield
    finally:
        _STOP.reset(token)


def stop_requested() -> threading.Event | None:
    """The stop event of the enclosing :func:`stop_on` block, if any (wheelhouse's pip runs poll it too)."""
    return _STOP.get()


class _Progress:
    """What the stream said so far: the step, the committed layers, the running container, the last lines."""

    def __init__(self, listener: Listener):
        self.listener = listener
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.step: str | None = None
        self.image_id: str | None = None
        self.layers: list[str] = []
        self.container: str | None = None

    def feed(self, chunk: dict) -> None:
        """One decoded chunk; raises ``BuildFailed`` for an error chunk, and whatever the listener raises."""
        if "error" in chunk:
            detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
            raise BuildFailed(_failure(detail, self.step, self.tail), step=self.step, log=list(self.tail))
        text = chunk.get("stream") or chunk.get("status") or ""
        for line in text.splitlines():
            self._line(_ANSI.sub("", line).strip())
        if "aux" in chunk and isinstance(chunk["aux"], dict) and chunk["aux"].get("ID"):
            self.image_id = chunk["aux"]["ID"]

    def _line(self, line: str) -> None:
        running, removed = _RUNNING.match(line), _REMOVED.match(line)
        if running:
            self.container = running.group(1)
        elif removed:
            self.container = None
        if not line or line.startswith(_NOISE):
            return
        match = _STEP.match(line)
        if match:
            self.step = match.group(3)
            self.listener(Event("step", self.step, int(match.group(1)), int(match.group(2))))
            return
        layer = _LAYER.match(line)
        if layer:
            self.layers.append(layer.group(1))
        built = _BUILT.search(line)
        if built:
            self.image_id = built.group(1)
        self.tail.append(line)
        self.listener(Event("log", line))


def build_image(client: Any, context: str, network_mode: str = "none",
                listener: Listener = ignore, nocache: bool = False) -> str:
    """Build ``context``/Dockerfile; return the new image's id, or raise ``BuildFailed`` with the failing step.

    Raises ``BuildCancelled`` when the :func:`stop_on` event is set, ``EngineError`` when the engine went away,
    and whatever the listener raised (a listener may stop the build that way); in each case the engine stops the
    build and nothing of it is left.
    """
    progress = _Progress(listener)
    stop = stop_requested()
    if stop is not None and stop.is_set():
        raise BuildCancelled("the build was cancelled before it started")
    _remove_abandoned(client)  # before this build can pick one of them as its cache
    with _build_responses(client.api) as responses:
        try:
            stream = client.api.build(path=context, dockerfile="Dockerfile", network_mode=network_mode,
                                      rm=True, forcerm=True, pull=False, decode=True, nocache=nocache)
        except STREAM_ERRORS as err:
            raise explain(err, "building the image") from None
    response = responses[0] if responses else None
    try:
        with _on_stop(stop if response is not None else None, lambda: _shutdown_read(response),
                      "yolosnap-build-stop"):
            return client.images.get(_consume(stream, progress, stop)).id  # the full sha256 id
    except (BuildFailed, BuildCancelled, *STREAM_ERRORS) as err:
        alive = _abandon(client, stream, response, progress)
        raise _stopped(err, stop, alive, progress) from None
    except BaseException:  # the listener's own error, or Ctrl-C: the build stops too, then it goes on up
        _abandon(client, stream, response, progress)
        raise


def _consume(stream: Iterator[dict], progress: _Progress, stop: threading.Event | None) -> str:
    """Read the stream to its end; the id of the image it built."""
    for chunk in stream:
        if stop is not None and stop.is_set():
            raise BuildCancelled("the build was cancelled")
        progress.feed(chunk)
    if stop is not None and stop.is_set():  # the stream ended because the socket was shut down for the stop
        raise BuildCancelled("the build was cancelled")
    if progress.image_id is None:
        raise BuildFailed("the build ended without an image; last lines:\n" + "\n".join(progress.tail),
                          progress.step, list(progress.tail))
    return progress.image_id


def _stopped(err: Exception, stop: threading.Event | None, alive: bool, progress: _Progress) -> YolosnapError:
    """The one error a stopped build reports: the stop asked for, a lost engine, the failed step, or the engine's."""
    if stop is not None and stop.is_set():
        return err if isinstance(err, BuildCancelled) else BuildCancelled("the build was cancelled")
    if not alive:
        return _engine_lost(progress)
    if isinstance(err, YolosnapError):
        return err
    return explain(err, "building the image")


@contextlib.contextmanager
def _build_responses(api: Any) -> Iterator[list]:
    """The HTTP response of the build this thread starts, caught with a requests response hook.

    docker-py returns only a generator over it; closing the response itself is what tells dockerd to stop.
    """
    caught: list = []
    me = threading.get_ident()

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:
        request = getattr(response, "request", None)
        if threading.get_ident() == me and request is not None and request.method == "POST" \
                and request.path_url.split("?")[0].endswith("/build"):
            caught.append(response)

    api.hooks.setdefault("response", []).append(hook)
    try:
        yield caught
    finally:
        api.hooks["response"].remove(hook)


@contextlib.contextmanager
def _on_stop(stop: threading.Event | None, action: Callable[[], None], name: str) -> Iterator[None]:
    """While the block runs, a watcher thread calls ``action`` once when ``stop`` is set (from another thread).

    The build stream's ``action`` shuts the socket's read side: that wakes a read blocked in a silent step
    (closing a socket from another thread would not); the reader then sees the stop and closes the connection,
    which cancels the build in dockerd. A delta layer's ``action`` kills its container: its log stream ends.
    """
    if stop is None:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(STOP_POLL_S):
            if stop.is_set():
                action()
                return

    watcher = threading.Thread(target=watch, name=name, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(timeout=5)


def _shutdown_read(response: Any) -> None:
    try:
        response.raw.shutdown()  # urllib3 >= 2.3: made for unblocking a read in another thread
    except (AttributeError, ValueError, RuntimeError, OSError):
        pass  # older urllib3, or the stream is already over: the reader sees the stop at its next chunk


def _abandon(client: Any, stream: Any, response: Any, progress: _Progress) -> bool:
    """Stop a build the engine may still be running, then remove what it made (container, partial image).

    Returns whether the engine still answers (a build that failed because dockerd went away says so)."""
    _learn_container(stream, progress, response)
    with contextlib.suppress(*STREAM_ERRORS):
        stream.close()
    if response is not None:
        with contextlib.suppress(*STREAM_ERRORS):
            response.close()  # the closed connection is dockerd's cancel: it kills the step's container
    if not _engine_answers(client):
        _remember(progress)  # nothing can be removed on an engine that is gone: the next build does it
        return False
    if progress.container:
        _wait_container_gone(client, progress.container)
    _remove_partial(client, progress.layers)
    return True


def _learn_container(stream: Any, progress: _Progress, response: Any) -> None:
    """Read on for a moment, without the listener, until the engine names the running step's container.

    A listener may raise at a step's first line, before the engine said which container runs it. dockerd removes
    that container itself after the cancel, a moment later; knowing it lets us wait for that, since the partial
    image cannot be removed while the container holds it.
    """
    if progress.container or response is None:
        return
    progress.listener = ignore
    steps, layers = progress.step, len(progress.layers)
    timer = threading.Timer(DRAIN_S, _shutdown_read, args=(response,))
    timer.daemon = True
    timer.start()
    try:
        for chunk in stream:
            progress.feed(chunk)
            if progress.container or progress.step != steps or len(progress.layers) != layers:
                return
    except (YolosnapError, ValueError, *STREAM_ERRORS):  # the build ended, or the stream is closed already
        pass
    finally:
        timer.cancel()


def _wait_container_gone(client: Any, container: str) -> None:
    """dockerd removes a cancelled step's container on its own, a moment later; force it if it takes too long."""
    deadline = time.monotonic() + CONTAINER_GONE_S
    while time.monotonic() < deadline:
        try:
            client.api.inspect_container(container)
        except docker.errors.NotFound:
            return
        except STREAM_ERRORS:
            return
        time.sleep(0.1)
    with contextlib.suppress(*STREAM_ERRORS):
        client.api.remove_container(container, force=True, v=True)


def _abandoned_dir() -> Path:
    from ..bake.wheelhouse import cache_dir  # here: wheelhouse imports this module

    return cache_dir().parent / "abandoned-builds"


def _remember(progress: _Progress) -> None:
    """Note what a build left on an engine that stopped under it (its partial image, its step's container)."""
    records = [f"container-{progress.container}"] if progress.container else []
    if len(progress.layers) >= 2:
        records.append(f"image-{progress.layers[-1]}")
    if not records:
        return
    try:
        folder = _abandoned_dir()
        folder.mkdir(parents=True, exist_ok=True)
        for record in records:
            (folder / record).touch()
    except OSError:
        pass  # a read-only cache: the stray stays, as it would without this note


def _remove_abandoned(client: Any) -> None:
    """Remove what builds noted by :func:`_remember` left, now that the engine answers again.

    An image another image has adopted since (the retry used it as cache) is not a stray: the removal is refused
    and the note goes anyway. A note is kept only while the engine cannot be reached.
    """
    folder = _abandoned_dir()
    if not folder.is_dir():
        return
    for record in sorted(folder.iterdir()):
        kind, _, ident = record.name.partition("-")
        try:
            if kind == "container":
                client.api.remove_container(ident, force=True, v=True)
            elif kind == "image":
                client.api.remove_image(ident, noprune=False)
        except docker.errors.APIError:  # gone already, or in use by an image that is kept
            pass
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError):
            return  # the engine went away again: keep the notes for the next build
        with contextlib.suppress(OSError):
            record.unlink()


def _remove_partial(client: Any, layers: list[str]) -> None:
    """Remove the untagged image a failed build stopped at (its unshared parents go with it): no strays."""
    if len(layers) < 2:  # only the base so far
        return
    try:
        client.images.remove(layers[-1], noprune=False)
    except STREAM_ERRORS:  # shared with another image, or already gone
        pass


def _engine_answers(client: Any) -> bool:
    """Ping on a new connection: a dockerd that is shutting down still answers on the connections it has."""
    try:
        client.api.close()  # drops the idle keep-alive connections only; the ping opens a new one
        return bool(client.api.ping())
    except STREAM_ERRORS:
        return False


def _engine_lost(progress: _Progress) -> EngineError:
    where = f" at step '{progress.step[:80]}'" if progress.step else ""
    return EngineError(f"the Docker engine stopped during the build{where}; start it again (scripts/engine-up.sh, "
                       "or: sudo systemctl start docker) and build again: the previous image is kept")


def _failure(detail: str, step: str | None, tail: deque) -> str:
    lowered = detail.lower()
    if (step or "").upper().startswith("FROM"):
        return (f"the base image in '{step}' is not on this machine and could not be pulled ({detail.strip()}); "
                "pass --base IMAGE or --registry-mirror PREFIX")
    if "no space left on device" in lowered:
        return "the Docker engine ran out of disk space during the build; free space (docker system prune) and retry"
    last = "\n".join(f"    {line}" for line in list(tail)[-12:])
    return f"build step failed: {step or '?'}\n  {detail.strip()}\n  last log lines:\n{last}"


def commit_layer(client: Any, image_id: str, line: str, title: str, mounts: dict[str, str], label: str | None,
                 owner: dict[str, str], listener: Listener = ignore) -> str:
    """One layer on ``image_id`` without a Dockerfile: a container (labelled ``owner``) runs the shell ``line``
    (host network, the ``mounts`` read-only), then its changes are committed with the ``LABEL`` instruction
    ``label``; return the new image's id.

    What the delta rebuild uses: the classic builder spends a container and a commit on every instruction and
    cannot mount anything, while here one container makes the one layer and the installer is mounted from the
    host, so it never enters the image. The image keeps its own ``Cmd`` and ``Entrypoint``. The same promises as
    :func:`build_image`: ``BuildFailed`` with the last lines when the line fails, ``BuildCancelled`` when the
    :func:`stop_on` event is set (the container is killed), ``EngineError`` when the engine goes; the container
    is removed in every case (noted for the next build when the engine is gone).
    """
    stop = stop_requested()
    if stop is not None and stop.is_set():
        raise BuildCancelled("the build was cancelled before it started")
    _remove_abandoned(client)
    progress = _Progress(listener)
    progress.step = title
    listener(Event("step", title, 1, 1))
    container = None
    try:
        config = client.api.inspect_image(image_id)["Config"] or {}
        container = client.containers.create(
            image_id, ["/bin/sh", "-c", line], entrypoint=[], network_mode="host", labels=owner,
            volumes={host: {"bind": inside, "mode": "ro"} for host, inside in mounts.items()})
        progress.container = container.id
        with _on_stop(stop, lambda: _kill_quietly(container), "yolosnap-layer-stop"):
            container.start()
            for chunk in container.logs(stream=True, follow=True):
                for text in chunk.decode("utf-8", "replace").splitlines():
                    progress._line(_ANSI.sub("", text).strip())
            status = container.wait().get("StatusCode")
        if stop is not None and stop.is_set():
            raise BuildCancelled("the build was cancelled")
        if status != 0:
            raise _layer_failed(container, status, title, progress)
        changes = [f"CMD {json.dumps(config.get('Cmd') or [])}",
                   f"ENTRYPOINT {json.dumps(config.get('Entrypoint') or [])}"]
        if label:
            changes.append(label)
        return client.api.commit(container.id, changes=changes, message=title)["Id"]
    except STREAM_ERRORS as err:
        if stop is not None and stop.is_set():
            raise BuildCancelled("the build was cancelled") from None
        if isinstance(err, docker.errors.NotFound) and progress.container:
            raise _removed(title) from None
        if not _engine_answers(client):
            _remember(progress)
            container = None
            raise _engine_lost(progress) from None
        raise explain(err, "building the delta layer") from None
    finally:
        if container is not None:
            with contextlib.suppress(*STREAM_ERRORS):
                container.remove(force=True, v=True)


def _layer_failed(container: Any, status: Any, title: str, progress: _Progress) -> EngineError:
    """Why a layer's command ended badly: its own failure (the last lines), memory, or a container taken away."""
    try:
        container.reload()
    except docker.errors.NotFound:
        return _removed(title)
    state = container.attrs.get("State") or {}
    if state.get("OOMKilled"):
        return BuildFailed(f"'{title[:80]}' ran out of memory (the engine killed it); give the Docker engine more "
                           "memory, or build fewer pins at once", step=title, log=list(progress.tail))
    if status == 137 or state.get("Status") in ("removing", "dead"):  # SIGKILL, and not by this build
        return _removed(title)
    return BuildFailed(_failure(f"exit status {status}", title, progress.tail), step=title, log=list(progress.tail))


def _kill_quietly(container: Any) -> None:
    with contextlib.suppress(*STREAM_ERRORS):  # gone already, or the engine with it: the stop is reported anyway
        container.kill()


def _removed(title: str) -> EngineError:
    return EngineError(f"the container running '{title[:80]}' was killed or removed while it ran (a docker kill or "
                       "rm by someone else?); build again: the previous image is kept")
