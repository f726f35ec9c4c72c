"""The REST routes the sidebar's newer views use, through a real Jupyter Server: build options, the build as
server-sent events, the failed build remembered across servers, revisions and snapshot-to-snapshot diffs, and
the diff against a real kernel kept until that kernel's packages change.

The build routes run a stand-in for ``bake.build`` (the job table's ``build`` is swappable for that): what is
tested is the server's bookkeeping and streaming; real builds through the same routes are in ``test_server.py``.
"""
from __future__ import annotations

import copy
import json
import sysconfig
import threading
import time
import zipfile
from pathlib import Path

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (jp_fetch, jp_serverapp and what they need)

from jupyter_yolosnap import service
from jupyter_yolosnap.events import Event
from jupyter_yolosnap.exceptions import RecipeError
from jupyter_yolosnap.server import SETTINGS_JOBS, build_records
from jupyter_yolosnap.server.jobs import BuildJobs
from jupyter_yolosnap.snapshot import manifest as manifest_io

from .conftest import make_venv, run
from .server_support import call, jp_server_config  # noqa: F401  (fixtures)
from .test_hostile_manifests import HOSTILE, valid

PIP = ["-m", "pip", "install", "-q", "--disable-pip-version-check"]


def _save(project: Path, name: str, **changes: str) -> dict:
    """Store a valid manifest called ``name`` (a new revision when it exists); ``changes``: package versions."""
    store = service.open_store(project)
    manifest = copy.deepcopy(valid())
    manifest["name"] = name
    for package, version in changes.items():
        next(p for p in manifest["packages"] if p["name"] == package)["version"] = version
    manifest["digest"] = manifest_io.compute_digest(manifest)
    store.save(manifest)
    return manifest


@pytest.fixture
def jp_root_dir(tmp_path):
    root = tmp_path / "root"
    (root / "proj").mkdir(parents=True)
    return root


@pytest.fixture
def project(jp_root_dir):
    return jp_root_dir / "proj"


class StandIn:
    """``bake.build``'s place: emits a phase and a step, waits for ``release``, then fails or returns."""

    def __init__(self, fail: str | None = None):
        self.fail, self.calls = fail, []
        self.release, self.waiting = threading.Event(), threading.Event()

    def __call__(self, name, project, listener, **options):
        self.calls.append(options)
        listener(Event("phase", "resolving the base image"))
        listener(Event("step", "RUN pip install", 1, 3))
        self.waiting.set()
        if not self.release.wait(20):
            raise RecipeError("the test never released the build (the stream did not deliver its first events)")
        listener(Event("step", "RUN check", 3, 3))
        if self.fail:
            raise RecipeError(self.fail)
        return type("Result", (), {"image": f"yolosnap/{name}:abc"})()


def _use(serverapp, build: StandIn) -> BuildJobs:
    jobs = BuildJobs(build=build)
    serverapp.web_app.settings[SETTINGS_JOBS] = jobs
    return jobs


def _wait_state(call, name: str, state: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        view = call("GET", "yolosnap", "snapshots", name, "build", path="proj")
        if view["state"] == state or time.monotonic() > deadline:
            return view
        time.sleep(0.05)


def _row(call, name: str) -> dict:
    return next(s for s in call("GET", "yolosnap", "snapshots", path="proj")["snapshots"] if s["name"] == name)


# --- build options ----------------------------------------------------------------------------------------------
def test_build_options_are_checked_before_any_build(call, jp_serverapp, project):
    _save(project, "opts")
    build = StandIn()
    build.release.set()
    _use(jp_serverapp, build)
    bad = [["pinned"], "pinned", 3, {"strategy": "--x"}, {"strategy": "wheelhouse; rm -rf /"}, {"nocache": True},
           {"strategy": "pinned", "trust_remote_sources": True}, {"base": ["a"]}, {"base": {"x": 1}},
           *({"base": value} for value in HOSTILE), *({"strategy": value} for value in HOSTILE)]
    for body in bad:
        reply = call("POST", "yolosnap", "snapshots", "opts", "build", status=400, body=body, path="proj")
        assert reply["message"] and "\n" not in reply["message"] and len(reply["message"]) < 300, (body, reply)
    for raw in ("{", "[" * 5000, '"x"'):
        reply = call("POST", "yolosnap", "snapshots", "opts", "build", status=400, raw_body=raw, path="proj")
        assert "\n" not in reply["message"]
    assert build.calls == [] and call("GET", "yolosnap", "snapshots", "opts", "build", path="proj")["state"] == "idle"
    assert not (project / ".yolosnap" / "opts" / "Dockerfile").exists()

    call("POST", "yolosnap", "snapshots", "opts", "build", status=202, path="proj",
         body={"strategy": "pinned", "base": "python:3.11.7-slim-bookworm"})
    done = _wait_state(call, "opts", "done")
    assert build.calls == [{"strategy": "pinned", "base": "python:3.11.7-slim-bookworm"}]
    assert done["options"] == build.calls[0] and done["elapsed"] >= 0 and done["started"] <= time.time()
    call("POST", "yolosnap", "snapshots", "opts", "build", status=202, path="proj")  # no body: the defaults
    _wait_state(call, "opts", "done")
    assert build.calls[1] == {}


# --- the build as server-sent events -------------------------------------------------------------------------
def _messages(chunks: list[bytes]) -> list[tuple[str | None, dict]]:
    """(id, data) of every ``data:`` message in the stream so far; comments are skipped."""
    out = []
    for block in b"".join(chunks).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "data" in fields:
            out.append((fields.get("id"), json.loads(fields["data"])))
    return out


def test_build_events_are_streamed_as_they_happen(call, jp_fetch, jp_asyncio_loop, jp_serverapp, project):
    _save(project, "live")
    build = StandIn()
    _use(jp_serverapp, build)
    call("POST", "yolosnap", "snapshots", "live", "build", status=202, path="proj")
    chunks: list[bytes] = []

    def arrived(chunk: bytes) -> None:
        chunks.append(chunk)
        seen = [e for _, view in _messages(chunks) for e in view["events"]]
        if any(e["kind"] == "step" for e in seen):
            build.release.set()  # only a stream that delivers while building lets the build go on

    async def stream(**headers):
        return await jp_fetch("yolosnap", "snapshots", "live", "build", "events", params={"path": "proj"},
                              streaming_callback=arrived, request_timeout=60, headers=headers)

    response = jp_asyncio_loop.run_until_complete(stream())
    assert response.code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    messages = _messages(chunks)
    views = [view for _, view in messages]
    assert views[0]["state"] == "building" and views[-1]["state"] == "done" and views[-1]["image"] == "yolosnap/live:abc"
    assert all(v["state"] == "building" for v in views[:-1])
    events = [e for v in views for e in v["events"]]
    assert [e["message"] for e in events] == ["resolving the base image", "RUN pip install", "RUN check"]
    assert events[1] == {"kind": "step", "message": "RUN pip install", "step": 1, "total": 3}
    assert [int(i) for i, _ in messages] == [v["next"] for v in views]  # each id: the events seen so far
    # an EventSource that reconnects sends the last id it saw: only what came after it
    chunks.clear()
    jp_asyncio_loop.run_until_complete(stream(**{"Last-Event-ID": "2"}))
    assert [e["message"] for _, v in _messages(chunks) for e in v["events"]] == ["RUN check"]
    for bad in ("x", "-1", "²", "9" * 50, "1;2", "--x", "../1"):  # a junk Last-Event-ID is ignored: from ?since
        chunks.clear()
        jp_asyncio_loop.run_until_complete(stream(**{"Last-Event-ID": bad}))
        assert len([e for _, v in _messages(chunks) for e in v["events"]]) == 3, bad
    for bad in ("x", "-1", "²", "9" * 50, "1;2"):
        reply = call("GET", "yolosnap", "snapshots", "live", "build", "events", status=400, path="proj", since=bad)
        assert "since=" in reply["message"] and "\n" not in reply["message"]
        call("GET", "yolosnap", "snapshots", "live", "build", status=400, path="proj", since=bad)
    # a stream of a snapshot that is not building: one message, then the end
    chunks.clear()
    jp_asyncio_loop.run_until_complete(stream())
    assert [v["state"] for _, v in _messages(chunks)] == ["done"]


# --- a failed build, remembered -------------------------------------------------------------------------------
def test_a_failed_build_is_remembered_across_servers(call, jp_serverapp, project, jp_runtime_dir):
    _save(project, "flaky")
    build = StandIn(fail="no base image has Python 3.11.7; pass --base")
    build.release.set()
    _use(jp_serverapp, build)
    call("POST", "yolosnap", "snapshots", "flaky", "build", status=202, path="proj")
    failed = _wait_state(call, "flaky", "failed")
    assert failed["error"] == "no base image has Python 3.11.7; pass --base"
    assert _row(call, "flaky")["last_build"]["error"] == failed["error"]
    records = list((Path(jp_runtime_dir) / build_records.FOLDER).iterdir())
    assert len(records) == 1 and (records[0].stat().st_mode & 0o777) == 0o600

    _use(jp_serverapp, StandIn())  # a new server (or a reload after one): the failure is still there
    remembered = call("GET", "yolosnap", "snapshots", "flaky", "build", path="proj")
    assert remembered["state"] == "failed" and remembered["persisted"] is True
    assert remembered["error"] == failed["error"]
    assert [e["message"] for e in remembered["events"]] == ["resolving the base image", "RUN pip install",
                                                            "RUN check"]
    assert call("GET", "yolosnap", "snapshots", "flaky", "build", path="proj", since="2")["events"] == [
        {"kind": "step", "message": "RUN check"}]
    row = _row(call, "flaky")
    assert row["last_build"]["state"] == "failed" and row["last_build"]["finished"].endswith("Z")

    _save(project, "flaky", six="1.17.0")  # another manifest: that failure was not this one's
    assert _row(call, "flaky")["last_build"] is None
    assert call("GET", "yolosnap", "snapshots", "flaky", "build", path="proj")["state"] == "idle"

    good = StandIn()
    good.release.set()
    _use(jp_serverapp, good)
    call("POST", "yolosnap", "snapshots", "flaky", "build", status=202, path="proj")
    assert _wait_state(call, "flaky", "done")["state"] == "done"
    assert not list((Path(jp_runtime_dir) / build_records.FOLDER).iterdir())  # a success clears the record


def test_a_cancelled_build_is_not_remembered_and_delete_forgets(call, jp_serverapp, project, jp_runtime_dir):
    _save(project, "stopme")
    build = StandIn()
    _use(jp_serverapp, build)
    call("POST", "yolosnap", "snapshots", "stopme", "build", status=202, path="proj")
    assert build.waiting.wait(10)
    threading.Timer(0.5, build.release.set).start()
    cancelled = call("DELETE", "yolosnap", "snapshots", "stopme", "build", path="proj")
    assert cancelled["state"] == "failed" and cancelled["error"] == "cancelled"
    assert _row(call, "stopme")["last_build"] is None
    assert not (Path(jp_runtime_dir) / build_records.FOLDER).exists() or not list(
        (Path(jp_runtime_dir) / build_records.FOLDER).iterdir())

    failing = StandIn(fail="boom; pass --base")
    failing.release.set()
    _use(jp_serverapp, failing)
    call("POST", "yolosnap", "snapshots", "stopme", "build", status=202, path="proj")
    _wait_state(call, "stopme", "failed")
    assert build_records.read("stopme", project) is not None
    call("DELETE", "yolosnap", "snapshots", "stopme", status=204, path="proj")
    assert build_records.read("stopme", project) is None


def test_hostile_failure_records_count_as_none(jp_environ, tmp_path, jp_runtime_dir):
    project = tmp_path / "p"
    project.mkdir()
    target = build_records.write("x", project, "sha256:1", "it failed\non two lines", [
        {"kind": "log", "message": "a\r\nb"}] * 500)
    body = build_records.read("x", project)
    assert body["error"] == "it failed on two lines" and len(body["events"]) == build_records.TAIL_EVENTS
    assert body["events"][0]["message"] == "a b"
    assert build_records.read("x", project, "sha256:other") is None and target.exists()  # stale, but kept
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({**body, "error": "from elsewhere"}))
    bad_bodies = ["{", "[" * 10000, json.dumps([1]), json.dumps({**body, "name": "y"}),
                  json.dumps({**body, "project": "/elsewhere"}), json.dumps({**body, "error": 3}),
                  json.dumps({**body, "events": [{"kind": 1}]}), json.dumps({**body, "state": "done"}),
                  " " * (build_records.MAX_BYTES + 1)]
    for text in bad_bodies:
        target.write_text(text)
        assert build_records.read("x", project) is None and not target.exists(), text[:40]
    target.symlink_to(secret)
    assert build_records.read("x", project) is None and not target.is_symlink() and secret.exists()
    for name in ("../x", "a/b", "--x"):  # the file name is a hash: nothing is built from a name
        assert build_records.path(name, project).parent == build_records.folder()


# --- revisions and snapshot-to-snapshot diffs -------------------------------------------------------------------
def test_history_and_diffs_between_snapshots_and_revisions(call, project):
    _save(project, "base")
    _save(project, "base", six="1.17.0")
    _save(project, "other", numpy="2.2.0")
    history = call("GET", "yolosnap", "snapshots", "base", "history", path="proj")["revisions"]
    assert [(r["number"], r["reference"], r["current"]) for r in history] == [(1, "base@1", False),
                                                                            (2, "base@2", True)]
    assert history[0]["packages"] == len(valid()["packages"]) and history[0]["digest"] != history[1]["digest"]
    older = call("GET", "yolosnap", "snapshots", "base", "diff", path="proj", against="base@1")
    assert older["identical"] is False
    assert [(c["item"], c["old"], c["new"]) for c in older["diff"]["changes"]] == [("six", "1.17.0", "1.16.0")]
    same = call("GET", "yolosnap", "snapshots", "base", "diff", path="proj", against="base@2")
    assert same["identical"] is True and same["diff"]["changes"] == []
    other = call("GET", "yolosnap", "snapshots", "base", "diff", path="proj", against="other")
    assert {c["item"] for c in other["diff"]["changes"]} == {"numpy", "six"}
    assert other["diff"]["old"] == "base" and other["diff"]["new"] == "other"

    for bad in ("base@0", "base@x", "base@²", "base@" + "9" * 5000, "../x", "--x", "a b", "x;id", "a\nb"):
        reply = call("GET", "yolosnap", "snapshots", "base", "diff", status=400, path="proj", against=bad)
        assert reply["message"] and "\n" not in reply["message"] and len(reply["message"]) < 300, (bad, reply)
    assert "no snapshot named 'gone'" in call("GET", "yolosnap", "snapshots", "base", "diff", status=404,
                                              path="proj", against="gone")["message"]
    call("GET", "yolosnap", "snapshots", "base", "diff", status=404, path="proj", against="base@7")
    both = call("GET", "yolosnap", "snapshots", "base", "diff", status=400, path="proj", against="other",
                kernel_id="k")
    assert "not both" in both["message"]
    call("GET", "yolosnap", "snapshots", "gone", "history", status=404, path="proj")
    call("GET", "yolosnap", "snapshots", "x..y", "history", status=400, path="proj")


# --- the diff against a kernel, cached ---------------------------------------------------------------------------
def _wheel(folder: Path, name: str, version: str) -> Path:
    """A one-module wheel, written here (pip installs it offline, with no build step)."""
    info = f"{name}-{version}.dist-info"
    files = {f"{name}.py": "VALUE = 1\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    target = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
    return target


@pytest.fixture
def venv_kernel(tmp_path, jp_data_dir):
    """A kernelspec whose kernel runs a fresh venv's Python (ipykernel from this test run's site-packages, put after
    the venv's own on its path): packages installed into the venv are the kernel's packages."""
    python = make_venv(tmp_path / "kvenv")
    spec = Path(jp_data_dir) / "kernels" / "kvenv"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "kvenv",
        "language": "python", "env": {"PYTHONPATH": sysconfig.get_paths()["purelib"]}}))
    return python


def test_diff_against_a_kernel_is_kept_until_its_packages_change(call, jp_serverapp, jp_asyncio_loop, venv_kernel,
                                                                 project, tmp_path):
    from .test_server import _wait_ready

    kernel = call("POST", "api", "kernels", status=201, body={"name": "kvenv", "path": "proj"})
    try:
        _wait_ready(jp_serverapp, kernel["id"], jp_asyncio_loop)
        call("POST", "yolosnap", "snapshots", status=201, body={"name": "kv", "kernel_id": kernel["id"]},
             path="proj", timeout=180)

        def diff() -> tuple[float, dict]:
            started = time.perf_counter()
            reply = call("GET", "yolosnap", "snapshots", "kv", "diff", path="proj", kernel_id=kernel["id"],
                         timeout=180)
            return time.perf_counter() - started, reply

        first_s, first = diff()
        assert first["identical"] is True and first["cached"] is False
        again_s, again = diff()
        assert again["cached"] is True and again["identical"] is True and again["text"] == first["text"]
        assert again_s < first_s, (again_s, first_s)  # no capture: the kernel's answer alone
        # a package is installed into the kernel's environment
        run(venv_kernel, *PIP, "--no-index", _wheel(tmp_path, "kvpkg", "0.1.0"))
        _, changed = diff()
        assert changed["cached"] is False and changed["identical"] is False
        assert [(c["item"], c["kind"]) for c in changed["diff"]["changes"] if c["section"] == "packages"] == [
            ("kvpkg", "added")]
        assert diff()[1]["cached"] is True
        _save(project, "kv")  # the snapshot itself changed: its digest is part of the key
        assert diff()[1]["cached"] is False
    finally:
        call("DELETE", "api", "kernels", kernel["id"], status=204)


def test_the_kernel_stamp_is_read_as_data():
    from jupyter_yolosnap.server.kernels import _stamp

    assert _stamp({"data": {"text/plain": "[['/v/site-packages', 12]]"}}) == (("/v/site-packages", 12),)
    for junk in (None, {}, {"data": {"text/plain": "__import__('os').system('id')"}},
                 {"data": {"text/plain": "[[1]]"}}, {"data": {"text/plain": "[" * 10000}},
                 {"data": {"text/plain": "[['a', 'b']]"}}):
        assert _stamp(junk) == ()
