"""Builds that stop early, on the real engine: a listener that raises, a cancel through the REST API, a job
timeout, and the engine itself stopped mid-build. Each must stop the engine's build, report one line, and leave
no container, untagged image or temp folder; the previous verified image and the manifest stay as they were.

pytest-jupyter's fixtures are imported into this module (as tests/test_server.py does), so their autouse
fixtures apply here only.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import venv
from pathlib import Path

import docker
import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (jp_fetch, jp_serverapp and what they need)

from jupyter_yolosnap import service, bake
from jupyter_yolosnap.engine import labels
from jupyter_yolosnap.snapshot import names
from jupyter_yolosnap.engine.build import build_image
from jupyter_yolosnap.engine.client import connect
from jupyter_yolosnap.events import Event
from jupyter_yolosnap.exceptions import EngineError
from jupyter_yolosnap.server import SETTINGS_JOBS
from jupyter_yolosnap.server.jobs import FAILED, BuildJobs

from .conftest import REPO, make_project, make_venv, run
from .engine_support import BASE_TAG, TEST_LABEL
from .test_server import call, jp_server_config  # noqa: F401  (the same REST helpers)

pytestmark = pytest.mark.engine
PIP = ["-m", "pip", "install", "-q", "--disable-pip-version-check"]


# --- a tiny build whose second RUN sleeps ---------------------------------------------------------------------
class SlowBuild:
    """A build context, labelled with a run id of its own so every container and image it makes can be found:
    the label comes right after FROM, so the step containers and every partial image carry it."""

    def __init__(self, seconds: int = 30):
        self.run_id = uuid.uuid4().hex
        self.seconds = seconds
        self.contexts: list[str] = []

    def dockerfile(self) -> str:
        return (f"FROM {BASE_TAG}\nLABEL {TEST_LABEL}={self.run_id}\nRUN echo {self.run_id} > /first\n"
                f"RUN sleep {self.seconds}\n")

    def build(self, name: str, project: Path, listener) -> object:
        """What ``BuildJobs`` calls instead of ``bake.build``: the engine build alone, in a temp context."""
        client = connect()
        try:
            with tempfile.TemporaryDirectory(prefix="yolosnap-fault-") as context:
                self.contexts.append(context)
                Path(context, "Dockerfile").write_text(self.dockerfile())
                image = build_image(client, context, "none", listener)
        finally:
            client.close()
        return type("Result", (), {"image": image})()

    def leftovers(self, engine) -> list[str]:
        label = {"label": f"{TEST_LABEL}={self.run_id}"}
        found = [f"container {c.short_id} ({c.status})" for c in engine.containers.list(all=True, filters=label)]
        found += [f"image {i.short_id}" for i in engine.images.list(all=True, filters=label)]
        found += [f"temp folder {c}" for c in self.contexts if os.path.exists(c)]
        return found

    def clean(self, engine) -> None:
        label = {"label": f"{TEST_LABEL}={self.run_id}"}
        for container in engine.containers.list(all=True, filters=label):
            container.remove(force=True)
        for image in engine.images.list(all=True, filters=label):
            try:
                engine.images.remove(image.id, force=True)
            except docker.errors.NotFound:
                pass


@pytest.fixture
def slow(engine, base_image):
    build = SlowBuild()
    yield build
    left = build.leftovers(engine)
    build.clean(engine)
    assert not left, f"the stopped build left {left}"


def _running(engine, build: SlowBuild) -> bool:
    return bool(engine.containers.list(filters={"label": f"{TEST_LABEL}={build.run_id}", "status": "running"}))


def test_an_exception_from_the_listener_stops_the_engine_build(slow, engine, tmp_path):
    class Stop(Exception):
        pass

    def listener(event: Event) -> None:
        if event.kind == "step" and event.message.startswith("RUN sleep"):
            deadline = time.monotonic() + 10
            while not _running(engine, slow) and time.monotonic() < deadline:  # the step's container is up
                time.sleep(0.05)
            raise Stop()

    started = time.monotonic()
    with pytest.raises(Stop):
        slow.build("x", tmp_path, listener)
    assert time.monotonic() - started < slow.seconds - 10
    assert not slow.leftovers(engine)  # gone by the time build_image returned: no waiting on our side


def test_a_job_timeout_stops_the_build(slow, engine, tmp_path):
    jobs = BuildJobs(build=slow.build, timeout=3)
    job = jobs.start("slow", tmp_path)
    assert job.wait(20), "the timed-out build did not stop"
    view = job.view()
    assert view["state"] == FAILED
    assert view["error"].startswith("the build of 'slow' took longer than the server's limit (3 s)")
    assert not slow.leftovers(engine)


# --- cancel through the REST API ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The server's root, with a project holding one saved snapshot (of a bare venv: the build is a stand-in)."""
    root = tmp_path_factory.mktemp("faults-root")
    bare = tmp_path_factory.mktemp("faults-venv") / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(bare)
    (root / "proj").mkdir()
    name = f"cancel-{uuid.uuid4().hex[:8]}"
    service.save(name, str(bare / "bin" / "python"), root / "proj")
    return {"root": root, "project": root / "proj", "name": name}


@pytest.fixture
def jp_root_dir(site):
    return site["root"]


def test_cancel_a_running_build_through_the_rest_api(call, jp_serverapp, jp_asyncio_loop, site, slow, engine):
    jp_serverapp.web_app.settings[SETTINGS_JOBS] = BuildJobs(build=slow.build)
    name = site["name"]
    assert call("DELETE", "yolosnap", "snapshots", name, "build", path="proj")["state"] == "idle"  # nothing runs
    assert call("POST", "yolosnap", "snapshots", name, "build", status=202, path="proj") == {"state": "building"}
    deadline = time.monotonic() + 60
    while True:  # until the sleeping step runs: a step that prints nothing, the hard case
        polled = call("GET", "yolosnap", "snapshots", name, "build", path="proj")
        sleeping = any(e["kind"] == "step" and e["message"].startswith("RUN sleep") for e in polled["events"])
        if (sleeping and _running(engine, slow)) or polled["state"] != "building" or time.monotonic() > deadline:
            break
        jp_asyncio_loop.run_until_complete(asyncio.sleep(0.1))
    assert polled["state"] == "building" and sleeping, polled

    started = time.monotonic()
    cancelled = call("DELETE", "yolosnap", "snapshots", name, "build", path="proj")
    took = time.monotonic() - started
    assert cancelled["state"] == "failed" and cancelled["error"] == "cancelled", cancelled
    assert took < 5, f"cancelling took {took:.1f} s"
    assert not slow.leftovers(engine)  # the engine build stopped, its container and partial image are gone
    polled = call("GET", "yolosnap", "snapshots", name, "build", path="proj")
    assert polled["state"] == "failed" and polled["error"] == "cancelled"
    # cancelling again, or a finished build, changes nothing
    assert call("DELETE", "yolosnap", "snapshots", name, "build", path="proj")["error"] == "cancelled"


# --- the engine stopped mid-build -----------------------------------------------------------------------------
def _dockerd_pid() -> int:
    try:
        return int(Path("/var/run/docker.pid").read_text().strip())
    except (OSError, ValueError):
        found = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
        if not found:
            pytest.fail("no local dockerd to stop (this test stops and restarts the engine on this machine)",
                        pytrace=False)
        return int(found[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _restart_engine(pid: int) -> None:
    """Wait for the stopped dockerd to exit (engine-up.sh would wait on it), then start the engine again."""
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
    # A session of its own: the engine must outlive this test run (a runner's timeout signals its whole group).
    subprocess.run(["bash", str(REPO / "scripts" / "engine-up.sh")], check=True, timeout=120,
                   capture_output=True, start_new_session=True)


class Gate:
    """A TCP port on 127.0.0.1 that, while open, holds every connection without a word.

    The slow step connects to it (the build runs with the host's network) and waits while it is open; while it
    is closed nothing listens on the port, and the same code goes straight on. So the code of the local source
    never changes (a build refuses one whose code changed since the snapshot was saved), yet only one build waits.
    """

    def __init__(self):
        with socket.create_server(("127.0.0.1", 0)) as probe:
            self.port = probe.getsockname()[1]
        self.server: socket.socket | None = None
        self.held: list[socket.socket] = []

    def open(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._hold, args=(self.server,), daemon=True).start()

    def _hold(self, server: socket.socket) -> None:
        while True:
            try:
                self.held.append(server.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        if self.server is not None:
            # shutdown first: a bare close() leaves the port listening while a thread sits in accept()
            with contextlib.suppress(OSError):
                self.server.shutdown(socket.SHUT_RDWR)
            self.server.close()
            self.server = None
        for conn in self.held:
            conn.close()
        self.held.clear()


def _slow_source(root: Path, gate: Gate) -> Path:
    """A local project whose setup.py waits at ``gate`` (while it is open) when it is installed."""
    source = make_project(root, "ysnap-slow", "1.0")
    (source / "setup.py").write_text(
        "import socket\n"
        "try:\n"
        f"    conn = socket.create_connection(('127.0.0.1', {gate.port}), timeout=5)\n"
        "    conn.settimeout(60)  # the test stops the engine long before; never a build that hangs for good\n"
        "    conn.recv(1)\n"
        "except OSError:  # the gate is closed (or the wait timed out): go on\n"
        "    pass\n"
        "from setuptools import setup\nsetup()\n")
    return source


def _lineage(engine, image_id: str) -> set[str]:
    """An image and its parents (the classic builder records each step's image as the next one's parent)."""
    seen = set()
    while image_id:
        seen.add(image_id)
        image_id = engine.api.inspect_image(image_id).get("Parent") or ""
    return seen


def test_engine_stopped_mid_build_keeps_the_previous_image_and_retries_clean(engine, base_image, project,
                                                                               tmp_path):
    started = time.monotonic()
    python = make_venv(tmp_path / "venv")
    run(python, *PIP, "setuptools>=64", "wheel", "six==1.16.0")
    name = f"fault-{uuid.uuid4().hex[:8]}"
    repository = names.image_repository(name)
    new_layers: list[str] = []
    gate = Gate()
    try:
        service.save(name, str(python), project)
        good = bake.build(name, project)
        assert good.check.clean

        # the next build hangs: a local source whose install waits at the gate, open only for that build
        source = _slow_source(tmp_path / "src" / "ysnap-slow", gate)
        run(python, *PIP, "--no-build-isolation", "--no-deps", source)  # the gate is closed: no wait
        service.save(name, str(python), project)
        gate.open()
        manifest_path = project / ".yolosnap" / name / "snapshot.json"
        manifest_bytes = manifest_path.read_bytes()
        images_before = {image.id for image in engine.images.list(all=True)}
        layers: list[str] = []
        in_slow_step = threading.Event()

        def listener(event: Event) -> None:
            if event.kind == "log" and event.message.startswith("---> ") and len(event.message) == 17:
                layers.append(event.message[5:])
            if event.kind == "step" and event.message.startswith("RUN") and str(source) in event.message:
                in_slow_step.set()

        outcome: dict = {}

        def build() -> None:
            try:
                outcome["result"] = bake.build(name, project, incremental=False, listener=listener)
            except EngineError as err:  # the expected failure
                outcome["error"] = err

        thread = threading.Thread(target=build, daemon=True)
        thread.start()
        assert in_slow_step.wait(120), "the slow step never started"
        deadline = time.monotonic() + 60
        while not gate.held and time.monotonic() < deadline:  # its setup.py waits at the gate: mid-step
            time.sleep(0.1)
        assert gate.held, "the slow step never reached the gate"
        pid = _dockerd_pid()
        os.kill(pid, signal.SIGTERM)
        try:
            thread.join(60)
            assert not thread.is_alive(), "the build did not end when the engine stopped"
        finally:
            _restart_engine(pid)
        error = outcome.get("error")
        assert error is not None, outcome
        assert str(error).startswith("the Docker engine stopped during the build at step 'RUN ")
        assert "\n" not in str(error) and "engine-up.sh" in str(error) and error.__cause__ is None

        # the previous verified image keeps its tags; the manifest is untouched; no container of the failed build
        assert {tag for tag in engine.images.get(good.image_id).tags} >= {good.image, f"{repository}:latest"}
        assert manifest_path.read_bytes() == manifest_bytes
        new_layers += [layer for layer in layers if not any(i.startswith(f"sha256:{layer}") for i in images_before)]
        assert new_layers, layers  # the failed build had made a layer of its own (COPY sources/)
        for layer in new_layers:
            assert not engine.containers.list(all=True, filters={"ancestor": layer})

        # a retry of the same manifest builds clean, and takes the failed build's partial image with it
        gate.close()
        retry = bake.build(name, project, incremental=False)
        assert retry.check.clean and not retry.reused
        assert engine.images.get(f"{repository}:latest").id == retry.image_id != good.image_id
        kept = _lineage(engine, retry.image_id)
        for layer in new_layers:
            try:
                stray = engine.images.get(layer).id
            except docker.errors.ImageNotFound:
                continue
            assert stray in kept, f"image {layer} of the failed build was left behind"
        assert not engine.containers.list(all=True, filters={"label": f"{labels.ROLE}=probe"})
    finally:
        gate.close()
        for image in engine.images.list(name=repository):
            for tag in image.tags:
                engine.images.remove(tag, force=True)
        for image in engine.images.list(all=True, filters={"label": f"{labels.SNAPSHOT}={name}"}):
            try:
                engine.images.remove(image.id, force=True)
            except docker.errors.NotFound:
                pass
        for layer in reversed(new_layers):  # a failed assertion above must not leave the partial image behind
            try:
                engine.images.remove(layer)
            except docker.errors.APIError:  # gone, or the parent of a kept image
                pass
    assert time.monotonic() - started < 120, f"the test took {time.monotonic() - started:.0f} s"
