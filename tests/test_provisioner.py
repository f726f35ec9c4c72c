"""A restored snapshot's kernel through its kernel provisioner: real jupyter_client kernel managers, the installed
kernelspec, the real engine and real containers, and no process standing in for the kernel."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager

from jupyter_yolosnap import bake, service
from jupyter_yolosnap.engine.labels import KERNEL_PATH
from jupyter_yolosnap.exceptions import RuntimeFailure
from jupyter_yolosnap.kernelspec import installed, provisioner_config
from jupyter_yolosnap.kernelspec.provisioner import SnapshotProvisioner
from jupyter_yolosnap.runtime.containers import OWNER_PID, ROLE, SCRATCH, SNAPSHOT
from jupyter_yolosnap.runtime.remote_kernel import kernel_command
from jupyter_yolosnap.snapshot import names

from .conftest import make_venv, run

pytestmark = pytest.mark.engine
PIP = ["-m", "pip", "install", "-q", "--disable-pip-version-check"]


@pytest.fixture(scope="module")
def restored(tmp_path_factory, engine, base_image):
    """One snapshot (six), built and restored into a Jupyter data folder of its own; everything removed after."""
    root = tmp_path_factory.mktemp("provisioner")
    python = make_venv(root / "venv")
    run(python, *PIP, "six==1.16.0")
    project = root / "project"
    (project / "nb").mkdir(parents=True)
    name = f"prov-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))  # the session's wheels
        patch.setenv("JUPYTER_DATA_DIR", str(root / "jupyter-data"))  # kernelspecs and connection files
        started = time.perf_counter()
        service.save(name, str(python), project)
        bake.build(name, project)
        done = service.restore(name, project)
        print(f"\nsave + build + restore: {time.perf_counter() - started:.1f} s")
        yield {"name": name, "project": project, "python": python, "kernel_name": done.kernel_name,
               "image": done.image, "root": root}
    stray = _kernels(engine, name)
    for container in stray:
        container.remove(force=True)
    for image in engine.images.list(name=names.image_repository(name)):
        for tag in image.tags:
            engine.images.remove(tag, force=True)
    assert not stray, "kernel containers left behind: " + ", ".join(c.short_id for c in stray)



@pytest.fixture
def sync():
    """Run a coroutine to its end on the thread's one loop, the one pytest-jupyter's server fixtures in later
    modules also find (``asyncio.run`` would leave the thread with no current loop)."""
    from jupyter_core.utils import ensure_event_loop

    return ensure_event_loop().run_until_complete


def _kernels(engine, name: str) -> list:
    return engine.containers.list(all=True, filters={"label": [f"{ROLE}=kernel", f"{SNAPSHOT}={name}"]})


async def _run(kc, code: str, timeout: float = 60) -> tuple[dict, str]:
    """Execute ``code``: its reply content and its stdout."""
    out: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = await kc.execute_interactive(code, output_hook=hook, timeout=timeout)
    return reply["content"], "".join(out)


def test_kernelspec_names_the_provisioner_and_argv_refuses(restored):
    spec = installed(restored["name"])
    config = provisioner_config(spec)
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "yolosnap-docker-provisioner"
    assert config == {"snapshot": restored["name"], "project": str(restored["project"]),
                      "digest": service.load(restored["name"], restored["project"])["digest"]}
    from jupyter_client.provisioning import KernelProvisionerFactory
    from jupyter_client.kernelspec import KernelSpecManager

    kernel_spec = KernelSpecManager().get_kernel_spec(restored["kernel_name"])
    assert KernelProvisionerFactory.instance().is_provisioner_available(kernel_spec)
    # a client that ignores provisioners runs argv: it must not pass a host kernel off as the snapshot's
    argv = [a.replace("{connection_file}", "/nonexistent.json") for a in spec["argv"]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "yolosnap-docker-provisioner" in done.stderr and restored["name"] in done.stderr


def test_the_wheel_declares_the_provisioner_entry_point():
    """kernel.json names the provisioner by its entry point: without it jupyter_client refuses to start the kernel
    ("Kernel provisioner 'yolosnap-docker-provisioner' has not been registered")."""
    tomllib = pytest.importorskip("tomllib")
    from importlib.metadata import entry_points

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    declared = project.get("entry-points", {}).get("jupyter_client.kernel_provisioners", {})
    assert declared.get("yolosnap-docker-provisioner") == "jupyter_yolosnap.kernelspec.provisioner:SnapshotProvisioner"
    installed_eps = {ep.name: ep for ep in entry_points(group="jupyter_client.kernel_provisioners")}
    assert installed_eps["yolosnap-docker-provisioner"].load() is SnapshotProvisioner


def test_start_execute_interrupt_restart_shutdown(restored, engine, sync):
    name, project = restored["name"], restored["project"]

    async def scenario() -> dict:
        timings = {}
        km = AsyncKernelManager(kernel_name=restored["kernel_name"])
        began = time.perf_counter()
        await km.start_kernel(cwd=str(project / "nb"))
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            timings["start"] = time.perf_counter() - began
            assert isinstance(km.provisioner, SnapshotProvisioner) and km.has_kernel
            content, out = await _run(kc, "import os, six; x = 41\n"
                                          "print(os.path.exists('/.dockerenv'), os.getcwd(), six.__version__)")
            assert content["status"] == "ok" and out.split() == ["True", str(project / "nb"), "1.16.0"], out

            (container,) = _kernels(engine, name)
            assert container.id == km.provisioner.container_id and container.status == "running"
            assert container.attrs["HostConfig"]["NetworkMode"] == "host"
            assert container.labels[OWNER_PID] == str(os.getpid())  # the server process owns it: no launcher
            scratch = container.labels[SCRATCH]
            copy = os.path.join(scratch, os.path.basename(km.connection_file))
            assert os.path.isfile(copy) and copy != km.connection_file  # a private copy, not the runtime folder
            kernel_path = engine.images.get(container.attrs["Config"]["Image"]).labels.get(KERNEL_PATH)
            assert container.attrs["Config"]["Cmd"] == kernel_command(kernel_path, copy)

            # interrupt: the server's SIGINT reaches the kernel (PID 1 of the container); state survives
            msg_id = kc.execute("import time; time.sleep(60)", stop_on_error=False)  # the next cell is not aborted
            await asyncio.sleep(1.0)
            began = time.perf_counter()
            await km.interrupt_kernel()
            reply = await kc._async_recv_reply(msg_id, timeout=30)
            timings["interrupt"] = time.perf_counter() - began
            assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
            assert timings["interrupt"] < 10
            content, out = await _run(kc, "x += 1; print(x)")
            assert out.strip() == "42", (content, out)
            assert await km.is_alive()

            # restart: a new container, the old one gone, variables gone
            began = time.perf_counter()
            await km.restart_kernel()
            await kc.wait_for_ready(timeout=60)
            timings["restart"] = time.perf_counter() - began
            (again,) = _kernels(engine, name)
            assert again.id == km.provisioner.container_id != container.id and not os.path.exists(scratch)
            content, _ = await _run(kc, "x")
            assert content["status"] == "error" and content["ename"] == "NameError"
        finally:
            kc.stop_channels()
            began = time.perf_counter()
            await km.shutdown_kernel()
            timings["shutdown"] = time.perf_counter() - began
        assert not km.has_kernel and not await km.is_alive()
        assert not os.path.exists(km.provisioner.scratch or again.labels[SCRATCH])
        return timings

    timings = sync(scenario())
    print("\n" + ", ".join(f"{step} {seconds:.2f} s" for step, seconds in timings.items()))
    assert not _kernels(engine, name), "shutdown left the kernel's container"


RESTARTED_SERVER = textwrap.dedent("""\
    # another process, as a restarted server would: a kernel manager rebuilt from the saved provisioner info
    import json, sys, time
    from jupyter_client import KernelManager
    from jupyter_client.provisioning import KernelProvisionerFactory
    from jupyter_client.utils import run_sync

    info = json.load(open(sys.argv[1]))
    km = KernelManager(kernel_name=sys.argv[2], kernel_id=info["kernel_id"])
    km.provisioner = KernelProvisionerFactory.instance().create_provisioner_instance(
        info["kernel_id"], km.kernel_spec, parent=km)
    run_sync(km.provisioner.load_provisioner_info)(info)
    km.load_connection_info(info["connection_info"])
    found = {"alive": km.is_alive(), "container": km.provisioner.container_id}
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=30)
    found["x"] = kc.execute_interactive("x", timeout=30, output_hook=lambda m: None)["content"]["status"]
    msg_id = kc.execute("import time; time.sleep(60)")
    time.sleep(1.0)
    began = time.perf_counter()
    km.interrupt_kernel()
    found["interrupted"] = kc._recv_reply(msg_id, timeout=30)["content"].get("ename")
    found["interrupt_s"] = time.perf_counter() - began
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    found["alive_after"] = km.is_alive()
    print(json.dumps(found))
    """)


def test_a_kernel_manager_rebuilt_from_saved_info_finds_and_kills_the_kernel(restored, engine, tmp_path, sync):
    name = restored["name"]

    async def scenario() -> tuple[dict, dict]:
        km = AsyncKernelManager(kernel_name=restored["kernel_name"])
        await km.start_kernel(cwd=str(restored["project"]))
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            assert (await _run(kc, "x = 7"))[0]["status"] == "ok"
            info = json.loads(json.dumps(await km.provisioner.get_provisioner_info()))  # saved as JSON
            assert info["container_id"] == km.provisioner.container_id and info["snapshot"] == name
            saved = tmp_path / "kernel-info.json"
            saved.write_text(json.dumps(info))
            began = time.perf_counter()
            done = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-c", RESTARTED_SERVER, str(saved), restored["kernel_name"]],
                capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr[-3000:]
            found = json.loads(done.stdout.strip().splitlines()[-1])
            found["other_process_s"] = time.perf_counter() - began
            assert not _kernels(engine, name), "the other kernel manager's kill left the container"
            assert not await km.is_alive()  # this manager sees its kernel gone, too
            return info, found
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)  # its container is gone already: nothing to fail on

    info, found = sync(scenario())
    print(f"\nanother process: {found}")
    assert found["alive"] and found["container"] == info["container_id"]
    assert found["x"] == "ok"  # the same kernel: the variable set by the first manager is there
    assert found["interrupted"] == "KeyboardInterrupt" and found["interrupt_s"] < 10
    assert found["alive_after"] is False


def test_saved_info_naming_another_container_is_refused(restored, containers, base_image, sync):
    other = containers.create(base_image.id, ["true"], labels={ROLE: "run", SNAPSHOT: restored["name"]})
    from jupyter_client import KernelManager
    from jupyter_client.provisioning import KernelProvisionerFactory

    km = KernelManager(kernel_name=restored["kernel_name"])
    provisioner = KernelProvisionerFactory.instance().create_provisioner_instance("k", km.kernel_spec, parent=km)
    info = {"kernel_id": "k", "connection_info": {}, "container_id": other.id, "snapshot": restored["name"]}
    try:
        with pytest.raises(RuntimeFailure, match="is not a kernel of snapshot"):
            sync(provisioner.load_provisioner_info(info))
    finally:
        other.remove(force=True)
    assert not provisioner.has_process
    gone = {"kernel_id": "k", "connection_info": {}, "container_id": "0" * 64, "snapshot": restored["name"]}
    sync(provisioner.load_provisioner_info(gone))  # a kernel that died meanwhile: no kernel, no error
    assert not provisioner.has_process and sync(provisioner.poll()) is not None
    sync(provisioner.cleanup())


def test_a_changed_or_unbuilt_snapshot_is_one_clear_line(restored, engine, sync):
    from jupyter_yolosnap import kernelspec

    name, project = restored["name"], restored["project"]
    spec = installed(name)
    spec["metadata"]["kernel_provisioner"]["config"]["digest"] = "sha256:" + "f" * 64  # restored, then re-saved
    stale = Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels" / f"{restored['kernel_name']}-stale"
    stale.mkdir(parents=True)
    (stale / "kernel.json").write_text(json.dumps(spec))
    unbuilt = f"{name}-unbuilt"
    service.save(unbuilt, str(restored["python"]), project)
    unbuilt_kernel = kernelspec.install(unbuilt, project)

    async def start(kernel_name: str) -> str:
        km = AsyncKernelManager(kernel_name=kernel_name)
        with pytest.raises(RuntimeFailure) as failed:
            await km.start_kernel(cwd=str(project))
        assert not km.has_kernel
        await km.cleanup_resources()
        return str(failed.value)

    try:
        changed = sync(start(stale.name))
        never_built = sync(start(unbuilt_kernel))
    finally:
        kernelspec.remove(unbuilt, project)
        (stale / "kernel.json").unlink()
        stale.rmdir()
    assert "saved again since its kernel was restored" in changed and f"yolosnap restore {name}" in changed
    assert "build it first" in never_built and unbuilt in never_built
    assert "\n" not in changed + never_built
    assert not _kernels(engine, name) and not _kernels(engine, unbuilt)


def _serve(env: dict, port: int, log: Path) -> subprocess.Popen:
    """A real Jupyter server with the extension, on 127.0.0.1:``port``; returns once its API answers."""
    import requests

    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--IdentityProvider.token=adopt-test", "--ServerApp.port_retries=0", "--allow-root",
         "--ServerApp.jpserver_extensions={'jupyter_yolosnap': True}", f"--ServerApp.root_dir={env['PROJECT']}"],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/status", headers=AUTH, timeout=2).ok:
                return server
        except requests.exceptions.ConnectionError:
            pass
        time.sleep(0.2)
    server.kill()
    raise AssertionError("the Jupyter server did not answer: " + log.read_text()[-3000:])


AUTH = {"Authorization": "token adopt-test"}


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _execute(connection_file: Path, code: str) -> dict:
    from jupyter_client import BlockingKernelClient

    kc = BlockingKernelClient(connection_file=str(connection_file))
    kc.load_connection_file()
    kc.start_channels()
    try:
        deadline = time.monotonic() + 60
        while True:  # a kernel just restarted may not beat yet: the client alone reads that as dead
            try:
                kc.wait_for_ready(timeout=30)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        out: list[str] = []
        reply = kc.execute_interactive(code, timeout=60, output_hook=lambda m: out.append(
            m["content"].get("text", "") if m["msg_type"] == "stream" else
            m["content"].get("data", {}).get("text/plain", "") if m["msg_type"] == "execute_result" else ""))
        return {"status": reply["content"]["status"], "out": "".join(out).strip(),
                "ename": reply["content"].get("ename")}
    finally:
        kc.stop_channels()


def test_a_restarted_server_adopts_its_restored_kernels(restored, engine, tmp_path):
    """A real server is SIGKILLed with a restored kernel running: the container survives the dead-owner sweep,
    the next server lists the kernel, a client finds its variables, restart and shutdown reach its container;
    records that are not the tool's, or name a container that is gone, are removed without a trace."""
    import requests

    from jupyter_yolosnap.engine.labels import KERNEL_ID
    from jupyter_yolosnap.runtime import kernel_records, registry

    runtime = tmp_path / "runtime"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_DATA_DIR": str(restored["root"] / "jupyter-data"), "PROJECT": str(restored["project"])}
    log = tmp_path / "server.log"
    first_port, second_port = _free_port(), _free_port()
    first = _serve(env, first_port, log)
    second = None
    try:
        started = requests.post(f"http://127.0.0.1:{first_port}/api/kernels", headers=AUTH, timeout=120,
                                json={"name": restored["kernel_name"], "path": "nb"})
        assert started.status_code == 201, started.text
        kernel_id = started.json()["id"]
        connection = runtime / f"kernel-{kernel_id}.json"
        assert _execute(connection, "x = 41")["status"] == "ok"
        record = runtime / kernel_records.FOLDER / f"{kernel_id}.json"
        assert record.is_file() and (record.stat().st_mode & 0o077) == 0, "the record holds the kernel's key"
        (container,) = engine.containers.list(filters={"label": f"{KERNEL_ID}={kernel_id}"})

        first.kill()  # a crash: no kernel is shut down
        first.wait(timeout=30)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
            assert container.short_id not in registry.sweep(engine)  # its record says a server will adopt it
        container.reload()
        assert container.status == "running"

        stale_owner = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                                     text=True, check=True).stdout.strip()
        gone_id = str(uuid.uuid4())
        gone = json.loads(record.read_text())
        gone.update({"kernel_id": gone_id, "container_id": "0" * 64,
                     "owner": {"pid": stale_owner, "host": gone["owner"]["host"], "start": ""}})
        (record.parent / f"{gone_id}.json").write_text(json.dumps(gone))
        (record.parent / "not-a-kernel.json").write_text("{}")
        (record.parent / f"{uuid.uuid4()}.json").write_text("[" * 100_000)  # deeply nested junk
        outside = tmp_path / "outside.json"
        outside.write_text(json.dumps(gone))
        (record.parent / f"{uuid.uuid4()}.json").symlink_to(outside)

        began = time.perf_counter()
        second = _serve(env, second_port, log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = requests.get(f"http://127.0.0.1:{second_port}/api/kernels", headers=AUTH, timeout=10).json()
            if listed:
                break
            time.sleep(0.2)
        adopted_s = time.perf_counter() - began
        print(f"\nsecond server up and the kernel adopted in {adopted_s:.1f} s")
        assert [(k["id"], k["name"]) for k in listed] == [(kernel_id, restored["kernel_name"])], log.read_text()
        # adoption goes on in the server's loop, record by record: the kernel may be listed before the rest is done
        deadline = time.monotonic() + 30
        while sorted(p.name for p in record.parent.iterdir()) != [record.name] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sorted(p.name for p in record.parent.iterdir()) == [record.name], "stale records left behind"
        assert outside.is_file()  # a link is removed, never followed
        assert _execute(connection, "x + 1")["out"] == "42"  # the same kernel, its state intact
        owner = json.loads(record.read_text())["owner"]
        assert owner["pid"] == str(second.pid)

        restarted = requests.post(f"http://127.0.0.1:{second_port}/api/kernels/{kernel_id}/restart",
                                  headers=AUTH, timeout=120)
        assert restarted.ok, restarted.text
        assert _execute(connection, "x")["ename"] == "NameError"  # a fresh kernel in a fresh container
        (fresh,) = engine.containers.list(filters={"label": f"{KERNEL_ID}={kernel_id}"})
        assert fresh.id != container.id and json.loads(record.read_text())["container_id"] == fresh.id
        assert not engine.containers.list(all=True, filters={"id": container.id})

        deleted = requests.delete(f"http://127.0.0.1:{second_port}/api/kernels/{kernel_id}", headers=AUTH,
                                  timeout=60)
        assert deleted.status_code == 204, deleted.text
        assert not engine.containers.list(all=True, filters={"label": f"{KERNEL_ID}={kernel_id}"})
        assert not record.exists()
    finally:
        for server in (first, second):
            if server is not None and server.poll() is None:
                server.terminate()
                server.wait(timeout=30)
        for leftover in engine.containers.list(all=True, filters={"label": KERNEL_ID}):
            if leftover.labels.get(SNAPSHOT) == restored["name"]:
                leftover.remove(force=True)
