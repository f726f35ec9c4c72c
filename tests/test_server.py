"""The REST API of the server extension, through a real Jupyter Server, real kernels and (marked) the real engine.

pytest-jupyter's fixtures are imported into this module rather than loaded with ``pytest_plugins``, so their
autouse fixtures (an event loop and a server cleanup per test) apply here only, not to the whole suite. The
tests are plain functions driving the server's loop with ``call``.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (jp_fetch, jp_serverapp and what they need)

from jupyter_yolosnap import service, kernelspec
from jupyter_yolosnap.snapshot import names
from jupyter_yolosnap.snapshot import manifest as manifest_io
from jupyter_yolosnap.events import Event
from jupyter_yolosnap.runtime.containers import ROLE, SNAPSHOT
from jupyter_yolosnap.exceptions import BuildRunning
from jupyter_yolosnap.server.jobs import BuildJobs

from .conftest import make_venv, run
from .server_support import call, jp_server_config  # noqa: F401  (fixtures)

PIP = ["-m", "pip", "install", "-q", "--disable-pip-version-check"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The server's root: ``proj/`` (a project with one saved, unbuilt snapshot, notebooks in ``proj/nb``) and an
    unrelated empty folder ``other/``. Images of the snapshot are removed afterwards."""
    root = tmp_path_factory.mktemp("server-root")
    python = make_venv(tmp_path_factory.mktemp("server-venv") / "venv")
    run(python, *PIP, "six==1.16.0")
    (root / "proj" / "nb").mkdir(parents=True)
    (root / "other").mkdir()
    name = f"srv-{uuid.uuid4().hex[:8]}"
    service.save(name, str(python), root / "proj")
    yield {"root": root, "project": root / "proj", "name": name, "python": python}
    try:
        import docker

        client = docker.from_env(timeout=30)
        for image in client.images.list(name=names.image_repository(name)):
            for tag in image.tags:
                client.images.remove(tag, force=True)
    except Exception:
        pass


@pytest.fixture
def jp_root_dir(site):
    return site["root"]


@pytest.fixture
def sleep(jp_asyncio_loop):
    """Wait while letting the server's loop run."""
    return lambda seconds: jp_asyncio_loop.run_until_complete(asyncio.sleep(seconds))


def _ours(snapshots: list[dict], name: str) -> dict:
    return next(s for s in snapshots if s["name"] == name)


# --- no engine needed ---------------------------------------------------------------------------------------
def test_list_empty_and_with_a_snapshot(call, site):
    empty = call("GET", "yolosnap", "snapshots", path="other")
    assert empty["snapshots"] == [] and empty["project"] == str(site["root"] / "other")
    listed = call("GET", "yolosnap", "snapshots", path="proj/nb")  # found from the notebook's folder upwards
    assert listed["project"] == str(site["project"])
    row = _ours(listed["snapshots"], site["name"])
    assert row["python"].count(".") == 2 and row["torch"] is None and row["cuda"] is None
    assert row["digest"].startswith("sha256:") and row["saved"]
    assert row["kernel_name"] == f"yolosnap-{site['name']}"
    assert row["image"]["state"] in ("not built", "drifted")  # never built in this module yet


def test_show_has_the_manifest(call, site):
    shown = call("GET", "yolosnap", "snapshots", site["name"], path="proj")
    assert shown["manifest"]["name"] == site["name"] and shown["manifest"]["digest"] == shown["digest"]
    assert any(p["name"] == "six" for p in shown["manifest"]["packages"])


def test_engine_unreachable_is_reported_not_fatal(call, site, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    listed = call("GET", "yolosnap", "snapshots", path="proj")
    assert "engine_error" in listed and "Docker engine" in listed["engine_error"]
    assert _ours(listed["snapshots"], site["name"])["image"] == {"state": "not built", "tag": None, "id": None,
                                                                 "size": None}


def test_bad_input_and_unknowns(call, http_server_client, jp_base_url, jp_auth_header, jp_asyncio_loop, site):
    assert "invalid snapshot name" in call("GET", "yolosnap", "snapshots", "x..y", status=400, path="proj")["message"]
    for raw in ("a%2Fb", "..%2Fx"):  # an encoded slash reaches the handler as part of the name
        response = jp_asyncio_loop.run_until_complete(http_server_client.fetch(
            f"{jp_base_url}yolosnap/snapshots/{raw}?path=proj", headers=jp_auth_header, raise_error=False))
        assert response.code == 400, (raw, response.code, response.body)
        assert "invalid snapshot name" in json.loads(response.body)["message"]
    for bad in ("../x", "a/b"):
        reply = call("POST", "yolosnap", "snapshots", status=400, body={"name": bad, "kernel_id": "k"}, path="proj")
        assert "invalid snapshot name" in reply["message"]
    for path in ("../", "/etc", "proj/../../x"):
        assert "relative to the server's root" in call("GET", "yolosnap", "snapshots", status=400,
                                                       path=path)["message"]
    assert "does not exist" in call("GET", "yolosnap", "snapshots", status=404, path="missing")["message"]
    missing = call("GET", "yolosnap", "snapshots", "nope", status=404, path="proj")
    assert "no snapshot named 'nope'" in missing["message"]
    call("POST", "yolosnap", "snapshots", "nope", "build", status=404, path="proj")
    call("DELETE", "yolosnap", "snapshots", "nope", status=404, path="proj")
    unknown = call("GET", "yolosnap", "snapshots", site["name"], "diff", status=404, path="proj", kernel_id="nokernel")
    assert "no running kernel 'nokernel'" in unknown["message"]
    call("POST", "yolosnap", "snapshots", status=404, body={"name": "fine", "kernel_id": "nokernel"}, path="proj")
    assert call("GET", "yolosnap", "snapshots", site["name"], "build", path="proj",
                since="x", status=400)["message"].startswith("since=")
    idle = call("GET", "yolosnap", "snapshots", site["name"], "build", path="proj")
    assert idle == {"state": "idle", "events": [], "next": 0, "error": None, "image": None}


def test_hostile_manifests_and_requests_are_refused_one_line(call, site):
    """A project whose manifests came from someone else: the good one is listed, the others named, and every
    request on them is a one-line 4xx, never a 500 or a traceback."""
    from .test_hostile_manifests import HOSTILE, valid, write_manifest

    project = site["root"] / "hostile"
    good = valid()
    good["name"] = "good"
    write_manifest(project, "good", manifest_io.dumps(good))
    write_manifest(project, "deep", "[" * 10000 + "]" * 10000)
    write_manifest(project, "conflict", "<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> theirs\n")
    injected = valid()
    injected["name"] = "injected"
    injected["native_libs"][0]["package"] = "zlib1g; touch /tmp/yolosnap-server-injected; true"
    write_manifest(project, "injected", json.dumps(injected))
    listed = call("GET", "yolosnap", "snapshots", path="hostile")
    assert [row["name"] for row in listed["snapshots"]] == ["good"]
    assert sorted(row["name"] for row in listed["unreadable"]) == ["conflict", "deep", "injected"]
    for name in ("deep", "conflict", "injected"):
        for method, parts in (("GET", ()), ("POST", ("build",)), ("POST", ("restore",))):
            reply = call(method, "yolosnap", "snapshots", name, *parts, status=422, path="hostile")
            assert "\n" not in reply["message"] and "re-save" in reply["message"], reply
    assert not Path("/tmp/yolosnap-server-injected").exists()
    assert not (project / ".yolosnap" / "injected" / "Dockerfile").exists()
    for bad in HOSTILE:
        reply = call("POST", "yolosnap", "snapshots", status=400, body={"name": bad, "kernel_id": "k"},
                     path="hostile")
        assert "invalid snapshot name" in reply["message"] and "\n" not in reply["message"]
    for path, status in (("hostile;id", 404), ("--x", 404), ("hostile/../../etc", 400), ("x" * 5000, 400)):
        reply = call("GET", "yolosnap", "snapshots", status=status, path=path)
        assert reply["message"] and "\n" not in reply["message"]


def test_unauthenticated_requests_are_refused(call):
    for method, parts in (("GET", ("snapshots",)), ("POST", ("snapshots", "x", "build")),
                          ("DELETE", ("snapshots", "x"))):
        message = call(method, "yolosnap", *parts, status=403, headers={"Authorization": ""})["message"]
        assert "not logged in" in message or "_xsrf" in message  # a POST fails the XSRF check first


def test_save_and_diff_a_running_kernel(call, site, jp_serverapp, jp_asyncio_loop):
    kernel = call("POST", "api", "kernels", status=201, body={"name": "python3", "path": "proj/nb"})
    try:
        _wait_ready(jp_serverapp, kernel["id"], jp_asyncio_loop)
        name = f"live-{uuid.uuid4().hex[:6]}"
        saved = call("POST", "yolosnap", "snapshots", status=201, body={"name": name, "kernel_id": kernel["id"]},
                     path="proj/nb", timeout=180)
        assert saved["name"] == name and saved["image"]["state"] == "not built" and "manifest" not in saved
        stored = service.load(name, site["project"])
        assert any(p["name"] == "jupyter_server" or p["name"] == "jupyter-server" for p in stored["packages"])
        diff = call("GET", "yolosnap", "snapshots", name, "diff", path="proj/nb", kernel_id=kernel["id"],
                    timeout=180)
        assert diff["identical"] is True and diff["diff"]["identical"] is True
        assert "identical" in diff["text"]
        # against another environment: the small snapshot differs from this kernel
        other = call("GET", "yolosnap", "snapshots", site["name"], "diff", path="proj", kernel_id=kernel["id"],
                     timeout=180)
        assert other["identical"] is False and other["diff"]["changes"]
        call("POST", "yolosnap", "snapshots", name, "restore", status=409, path="proj")  # never built
        call("DELETE", "yolosnap", "snapshots", name, status=204, path="proj")
        assert name not in [s["name"] for s in call("GET", "yolosnap", "snapshots", path="proj")["snapshots"]]
    finally:
        call("DELETE", "api", "kernels", kernel["id"], status=204)


def _wait_ready(serverapp, kernel_id: str, loop, timeout: float = 60) -> None:
    client = serverapp.kernel_manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        loop.run_until_complete(client.wait_for_ready(timeout=timeout))
    finally:
        client.stop_channels()


def test_build_jobs_bookkeeping(tmp_path):
    """One job per snapshot; events kept in order for polling; failures carry their message."""
    import threading

    release = threading.Event()

    def fake_build(name, project, listener):
        listener(Event("phase", "one"))
        listener(Event("step", "RUN x", 1, 2))
        release.wait(10)
        if name == "bad":
            from jupyter_yolosnap.exceptions import RecipeError

            raise RecipeError("no base fits; pass --base")
        return type("R", (), {"image": f"yolosnap/{name}:abc"})()

    jobs = BuildJobs(build=fake_build)
    job = jobs.start("good", tmp_path)
    with pytest.raises(BuildRunning):
        jobs.start("good", tmp_path)
    bad = jobs.start("bad", tmp_path)
    deadline = time.monotonic() + 5
    while len(job.view()["events"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    view = job.view(1)
    assert {k: view[k] for k in ("state", "events", "next", "error", "image", "options")} == {
        "state": "building", "events": [{"kind": "step", "message": "RUN x", "step": 1, "total": 2}], "next": 2,
        "error": None, "image": None, "options": {}}
    assert 0 <= view["elapsed"] < 10 and abs(view["started"] - time.time()) < 10
    release.set()
    while (jobs.building("good", tmp_path) or jobs.building("bad", tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.01)
    done = job.view(2)
    assert (done["state"], done["events"], done["next"], done["error"], done["image"]) == (
        "done", [], 2, None, "yolosnap/good:abc")
    time.sleep(0.2)
    assert job.view()["elapsed"] == done["elapsed"]  # the clock stops with the build
    assert bad.view()["state"] == "failed" and bad.view()["error"] == "no base fits; pass --base"
    jobs.start("good", tmp_path)  # a finished job does not block the next build


def test_store_delete_removes_every_revision(tmp_path):
    store = service.open_store(tmp_path)
    manifest = {"name": "gone", "digest": "sha256:" + "0" * 64}
    folder = store.root / "gone"
    (folder / "history").mkdir(parents=True)
    (folder / "snapshot.json").write_text(json.dumps(manifest))
    (folder / "history" / "old.json").write_text(json.dumps(manifest))
    assert [r.number for r in store.revisions("gone")] == [1, 2]
    store.delete("gone")
    assert not folder.exists() and store.names() == [] and not list(store.root.glob(".deleted-*"))
    from jupyter_yolosnap.exceptions import SnapshotNotFound

    with pytest.raises(SnapshotNotFound):
        store.delete("gone")


def test_kernelspec_install_and_remove(site, jp_environ, jp_data_dir):
    name = kernelspec.install(site["name"], site["project"])
    folder = Path(jp_data_dir) / "kernels" / name
    spec = json.loads((folder / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "yolosnap-docker-provisioner"
    digest = service.load(site["name"], site["project"])["digest"]
    assert kernelspec.provisioner_config(spec) == {"snapshot": site["name"], "project": str(site["project"]),
                                                   "digest": digest}
    # argv is only what a client without provisioner support runs: the refusal (tests/test_provisioner.py)
    assert spec["argv"][1:5] == ["-m", "jupyter_yolosnap.kernelspec", site["name"], "--project"]
    assert spec["argv"][-2:] == ["-f", "{connection_file}"] and spec["interrupt_mode"] == "signal"
    assert not kernelspec.remove(site["name"], site["root"])  # another project's kernelspec stays
    assert kernelspec.remove(site["name"], site["project"]) and not folder.exists()


# --- the real engine ----------------------------------------------------------------------------------------
@pytest.mark.engine
def test_build_restore_run_in_container_and_delete(call, sleep, site, engine, base_image, jp_serverapp,
                                                   jp_asyncio_loop, jp_data_dir):
    name, project = site["name"], site["project"]
    call("POST", "yolosnap", "snapshots", name, "restore", status=409, path="proj")  # not built yet
    assert call("POST", "yolosnap", "snapshots", name, "build", status=202, path="proj") == {"state": "building"}
    assert "already being built" in call("POST", "yolosnap", "snapshots", name, "build", status=409,
                                         path="proj")["message"]
    assert _ours(call("GET", "yolosnap", "snapshots", path="proj")["snapshots"], name)["image"]["state"] == "building"
    call("POST", "yolosnap", "snapshots", name, "restore", status=409, path="proj")  # still building
    seen, since, deadline = [], 0, time.monotonic() + 600
    while True:
        polled = call("GET", "yolosnap", "snapshots", name, "build", path="proj", since=str(since))
        assert polled["next"] == since + len(polled["events"])
        seen += polled["events"]
        since = polled["next"]
        if polled["state"] != "building" or time.monotonic() > deadline:
            break
        sleep(0.5)
    assert polled["state"] == "done", polled["error"]
    tag = names.image_tag(service.load(name, project))
    assert polled["image"] == tag and any(e["kind"] == "phase" and "verified" in e["message"] for e in seen)
    row = _ours(call("GET", "yolosnap", "snapshots", path="proj")["snapshots"], name)
    built = engine.images.get(tag)
    assert row["image"] == {"state": "verified", "tag": tag, "id": built.id, "size": built.attrs["Size"]}

    restored = call("POST", "yolosnap", "snapshots", name, "restore", path="proj", timeout=600)
    assert restored["kernel_name"] == f"yolosnap-{name}" and restored["display_name"] == f"{name} (snapshot container)"
    assert (Path(jp_data_dir) / "kernels" / restored["kernel_name"] / "kernel.json").is_file()
    specs = call("GET", "api", "kernelspecs")["kernelspecs"]
    assert specs[restored["kernel_name"]]["spec"]["display_name"] == restored["display_name"]

    kernel = call("POST", "api", "kernels", status=201, body={"name": restored["kernel_name"], "path": "proj/nb"},
                  timeout=120)
    try:
        output = _execute(jp_serverapp, kernel["id"], jp_asyncio_loop,
                          "import os, six; print(os.path.exists('/.dockerenv'), os.getcwd(), six.__version__)")
        assert output.split() == ["True", str(project / "nb"), "1.16.0"], output
        assert _interrupted(call, jp_serverapp, kernel["id"], jp_asyncio_loop)
        running = engine.containers.list(filters={"label": [f"{ROLE}=kernel", f"{SNAPSHOT}={name}"]})
        assert len(running) == 1 and running[0].attrs["HostConfig"]["NetworkMode"] == "host"
        provisioner = jp_serverapp.kernel_manager.get_kernel(kernel["id"]).provisioner
        assert type(provisioner).__name__ == "SnapshotProvisioner"  # the server drives the container itself
        assert provisioner.container_id == running[0].id
    finally:
        call("DELETE", "api", "kernels", kernel["id"], status=204, timeout=60)
    left = engine.containers.list(all=True, filters={"label": [f"{ROLE}=kernel", f"{SNAPSHOT}={name}"]})
    for container in left:
        container.remove(force=True)
    assert not left, "kernel containers left behind: " + ", ".join(c.short_id for c in left)

    # the manifest changes after the build: the image is now an older one
    store = service.open_store(project)
    changed = store.load(name)
    next(p for p in changed["packages"] if p["name"] == "six")["version"] = "1.17.0"
    changed["digest"] = manifest_io.compute_digest(changed)
    store.save(changed)
    row = _ours(call("GET", "yolosnap", "snapshots", path="proj")["snapshots"], name)
    assert row["image"]["state"] == "drifted" and row["image"]["tag"] == f"{names.image_repository(name)}:latest"
    assert "build it first" in call("POST", "yolosnap", "snapshots", name, "restore", status=409,
                                    path="proj")["message"]

    call("DELETE", "yolosnap", "snapshots", name, status=204, path="proj")
    assert not (Path(jp_data_dir) / "kernels" / restored["kernel_name"]).exists()
    assert name not in [s["name"] for s in call("GET", "yolosnap", "snapshots", path="proj")["snapshots"]]
    assert engine.images.get(tag)  # images are left alone; the module fixture removes them


def _execute(serverapp, kernel_id: str, loop, code: str, timeout: float = 90) -> str:
    """Run ``code`` in the kernel through jupyter_client; its stdout."""
    client = serverapp.kernel_manager.get_kernel(kernel_id).client()
    client.start_channels()
    out: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    try:
        loop.run_until_complete(client.wait_for_ready(timeout=timeout))
        reply = loop.run_until_complete(client.execute_interactive(code, output_hook=hook, timeout=timeout))
    finally:
        client.stop_channels()
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out)


def _interrupted(call, serverapp, kernel_id: str, loop) -> bool:
    """A long cell, then the server's interrupt: the kernel in the container gets SIGINT and stays usable."""
    client = serverapp.kernel_manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        msg_id = client.execute("import time; time.sleep(60)", stop_on_error=False)  # "1 + 1" is not aborted
        loop.run_until_complete(asyncio.sleep(1.0))
        started = time.monotonic()
        call("POST", "api", "kernels", kernel_id, "interrupt", status=204)
        reply = loop.run_until_complete(client._async_recv_reply(msg_id, timeout=30))
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        assert time.monotonic() - started < 10
        again = loop.run_until_complete(client.execute("1 + 1", reply=True, timeout=30))
        return again["content"]["status"] == "ok"
    finally:
        client.stop_channels()
