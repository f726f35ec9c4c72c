"""The runtime when things go wrong, on the real engine: stop signals to a run, an engine that hiccups under a
warm kernel, one snapshot name in two projects, a rebuilt snapshot, GPUs the engine cannot give, and pickles
from a container that would run code here.

Every test checks the state afterwards: no container of the test snapshot, no new image of it, no open file
descriptor or scratch folder (``/tmp/ysk-*``) more than before; the test that builds also checks that its
temporary folders are gone.
"""
from __future__ import annotations

import gc
import glob
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import types
from pathlib import Path

import docker
import pytest
import requests
from IPython.core.error import UsageError

from tests.nvml_replay import load_recording
from jupyter_yolosnap import bake, gpu, runtime, service
from jupyter_yolosnap.snapshot import names
from jupyter_yolosnap.engine import labels
from jupyter_yolosnap.exceptions import RunTerminated
from jupyter_yolosnap.gpu.readiness import engine_gpu_runtime
from jupyter_yolosnap.runtime import registry
from jupyter_yolosnap.runtime.containers import ROLE, SCRATCH, SCRATCH_PREFIX, SNAPSHOT
from jupyter_yolosnap.snapshot.store import STORE_DIR, Store

from .test_runtime import cell, shell, snapshot, workspace  # noqa: F401  (fixtures: one built snapshot)

pytestmark = pytest.mark.engine
NVML = Path(__file__).parent / "fixtures" / "nvml"
CLI = [sys.executable, "-m", "jupyter_yolosnap"]
SLEEPER = ["python", "-c", "import time; print('up', flush=True); time.sleep(60)"]


# --------------------------------------------------------------------------------------------- state checks


class _Engine:
    """A docker-py client for one question, closed after it: the checks must not open what they count."""

    def __enter__(self):
        self.client = docker.from_env(timeout=30)
        return self.client

    def __exit__(self, *exc):
        self.client.close()


def _sockets(fds: dict) -> str:
    """``ss`` lines of the given socket descriptors (who is on the other end), for a failure message."""
    inodes = {target[len("socket:["):-1] for target in fds.values() if target.startswith("socket:[")}
    lines = subprocess.run(["ss", "-xapn"], capture_output=True, text=True).stdout.splitlines()
    return "\n".join(line for line in lines if any(f" {inode} " in line for inode in inodes))


def _state(name: str) -> dict:
    """What a test could leave behind, scoped to the test snapshot (other sessions may share the engine)."""
    with _Engine() as engine:
        found = _found(engine, name)
    gc.collect()  # docker-py clients and zmq contexts that nobody holds any more close their sockets
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed already
            pass
    return {**found, "fds": fds, "folders": set(glob.glob(SCRATCH_PREFIX + "*"))}


def _found(engine, name: str) -> dict:
    dangling = {"dangling": True, "label": f"{labels.SNAPSHOT}={name}"}  # built, then left with no tag
    return {"containers": sorted(c.short_id for c in engine.containers.list(
                all=True, filters={"label": f"{SNAPSHOT}={name}"})),
            "images": sorted(i.id for i in engine.images.list(name=names.image_repository(name)))
            + sorted(i.id for i in engine.images.list(filters=dangling)),
            "scratch_in_use": {c.labels.get(SCRATCH) for c in engine.containers.list(
                all=True, filters={"label": SCRATCH})}}


@pytest.fixture(autouse=True)
def leaves_nothing(snapshot, workspace, shell):  # noqa: F811
    """Before/after: containers, images, fds and scratch folders. Made first, so not counted: the shell (its
    history database) and the event loop that jupyter_client's blocking calls keep per thread for good."""
    from jupyter_core.utils import ensure_event_loop

    ensure_event_loop()
    before = _state(snapshot["name"])
    yield
    runtime.stop()
    deadline = time.monotonic() + 10  # a removed kernel's zmq sockets close from their own threads
    while True:
        after = _state(snapshot["name"])
        if len(after["fds"]) <= len(before["fds"]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert after["containers"] == before["containers"], "containers of the test snapshot left behind"
    assert after["images"] == before["images"], "images of the test snapshot left behind"
    assert not (after["folders"] - before["folders"] - after["scratch_in_use"]), "scratch folders left behind"
    opened = {fd: target for fd, target in after["fds"].items() if before["fds"].get(fd) != target}
    assert len(after["fds"]) <= len(before["fds"]), f"file descriptors left open: {opened}\n{_sockets(opened)}"


def _wait_for_run(name: str, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Until the run's container of snapshot ``name`` runs (its command printed nothing yet, maybe)."""
    deadline = time.monotonic() + timeout
    while not _containers_of(name, status="running"):
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended before its container showed: {process.communicate()}")
        assert time.monotonic() < deadline, "the run's container never started"
        time.sleep(0.1)


def _containers_of(name: str, role: str = "run", **filters: str) -> list:
    with _Engine() as engine:
        return engine.containers.list(all=True, filters={"label": [f"{SNAPSHOT}={name}", f"{ROLE}={role}"],
                                                         **filters})


# -------------------------------------------------------------------------- 1. SIGTERM / SIGHUP to a run


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_to_the_cli_run_removes_its_container(snapshot, workspace, signum):  # noqa: F811
    name = snapshot["name"]
    process = subprocess.Popen([*CLI, "run", name, "--project", str(snapshot["project"]), "--", *SLEEPER],
                               cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_run(name, process)
        began = time.monotonic()
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
        took = time.monotonic() - began
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signum, err  # 143 for SIGTERM, 129 for SIGHUP: the shell's convention
    assert took < 10 and f"was stopped by {signum.name}; its container was removed" in err
    assert not _containers_of(name)
    log = next((workspace / ".yolosnap-runs").glob("*.log")).read_text()
    assert f"# stopped by {signum.name}" in log


def test_sigterm_to_snapshot_run_in_an_ipython_process(snapshot, workspace):  # noqa: F811
    """``%snapshot run`` in the main thread of an IPython process: the cell fails with the line, the container
    is gone, the process's own SIGTERM handling is back."""
    child = textwrap.dedent("""\
        import signal, sys
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "jupyter_yolosnap")
        result = ip.run_cell(sys.argv[1])
        print("error:", type(result.error_in_exec).__name__, result.error_in_exec, flush=True)
        print("default handler back:", signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, flush=True)
    """)
    line = (f"%snapshot run {snapshot['name']} --project {snapshot['project']} -- python -c "
            "'import time; time.sleep(60)'")
    process = subprocess.Popen([sys.executable, "-c", child, line], cwd=workspace, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_run(snapshot["name"], process)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "error: RunTerminated the run in snapshot" in out and "stopped by SIGTERM" in out, out
    assert "default handler back: True" in out, out
    assert not _containers_of(snapshot["name"])


def test_run_script_raises_on_sighup_then_calls_the_previous_handler(snapshot, workspace):  # noqa: F811
    seen: list[int] = []
    old = signal.signal(signal.SIGHUP, lambda signum, frame: seen.append(signum))
    previous = signal.getsignal(signal.SIGHUP)
    sender = threading.Thread(target=lambda: (_wait_for_run(snapshot["name"]),
                                              os.kill(os.getpid(), signal.SIGHUP)))
    try:
        sender.start()
        err = io.StringIO()
        with pytest.raises(RunTerminated) as stopped:  # with a TensorBoard sidecar: it goes too
            runtime.run_script(snapshot["name"], SLEEPER, snapshot["project"], cwd=str(workspace), stderr=err,
                               stdout=io.StringIO(), tensorboard="runs/tb")
        sender.join()
        assert stopped.value.code == 129 and stopped.value.signum == signal.SIGHUP
        assert signal.getsignal(signal.SIGHUP) is previous  # restored
        assert seen == [signal.SIGHUP]  # and called once the container was gone
        assert "stopped by SIGHUP" in err.getvalue()
    finally:
        signal.signal(signal.SIGHUP, old)
    assert not _containers_of(snapshot["name"]) and not _containers_of(snapshot["name"], "tensorboard")


def test_an_ignored_sighup_stays_ignored(snapshot, workspace):  # noqa: F811
    """``nohup yolosnap run ...``: the run survives the hang-up, as the user asked."""
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sender = threading.Thread(target=lambda: (_wait_for_run(snapshot["name"]),
                                              os.kill(os.getpid(), signal.SIGHUP)))
    try:
        sender.start()
        done = runtime.run_script(snapshot["name"], ["python", "-c", "import time; time.sleep(3); print('done')"],
                                  snapshot["project"], cwd=str(workspace), stdout=io.StringIO())
        sender.join()
        assert done.exit_code == 0 and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)


# ------------------------------------------------------------------- 2. an engine hiccup under a warm kernel


def _engine_500(*args, **kwargs):
    response = requests.Response()
    response.status_code = 500
    raise docker.errors.APIError("500 Server Error: Internal Server Error", response=response,
                                 explanation="engine hiccup (test)")


def test_an_engine_error_during_a_cell_keeps_the_kernel(shell, snapshot):  # noqa: F811
    cell(shell, snapshot, "kept = 7")
    kernel = registry.running()[snapshot["name"]]
    asked: list[int] = []

    def flaky(*args, **kwargs):
        asked.append(1)
        _engine_500()

    with pytest.MonkeyPatch.context() as patch:  # undone here: it holds the container (and its engine client)
        patch.setattr(kernel.container, "reload", flaky)
        out = cell(shell, snapshot, "import time\ntime.sleep(3)\nprint(kept)")
        assert out.stdout.strip() == "7"
        assert asked == []  # the heartbeat answered every second: the engine was not asked at all

        patch.setattr(kernel.kc.hb_channel, "is_beating", lambda: False)  # a silent heartbeat, a failing engine
        out = cell(shell, snapshot, "import time\ntime.sleep(3)\nprint(kept + 1)")
        assert out.stdout.strip() == "8" and len(asked) >= 2  # asked, answered 500 ("unknown"), kept waiting
    assert registry.running()[snapshot["name"]] is kernel
    assert cell(shell, snapshot, "print(kept)").stdout.strip() == "7"


def test_the_engine_saying_gone_ends_the_kernel_clearly(shell, snapshot):  # noqa: F811
    cell(shell, snapshot, "lost = 1")
    kernel = registry.running()[snapshot["name"]]

    def gone(*args, **kwargs):
        raise docker.errors.NotFound("No such container (test)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernel.kc.hb_channel, "is_beating", lambda: False)
        patch.setattr(kernel.container, "reload", gone)
        with pytest.raises(UsageError, match=r"stopped during the cell \(it is gone.*next cell starts a fresh"):
            cell(shell, snapshot, "import time\ntime.sleep(30)")
    assert kernel.kc is None and kernel.container is None  # cleaned up: channels, container, socket folder
    assert cell(shell, snapshot, "print('lost' in globals())").stdout.strip() == "False"


# ------------------------------------------------------------- 3. kernels per project, rebuilt snapshots


def _copy_project(snapshot, folder: Path) -> dict:  # noqa: F811
    """Another project holding the same snapshot (same name, same manifest: its image is already built)."""
    shutil.copytree(Path(snapshot["project"]) / STORE_DIR / snapshot["name"], folder / STORE_DIR / snapshot["name"])
    return {**snapshot, "project": folder}


def test_one_name_in_two_projects_gets_two_kernels(shell, snapshot, tmp_path):  # noqa: F811
    other = _copy_project(snapshot, tmp_path / "other")
    cell(shell, snapshot, "where = 'first'")
    assert cell(shell, other, "print('where' in globals())").stdout.strip() == "False"
    assert cell(shell, snapshot, "print(where)").stdout.strip() == "first"
    ours = {key: kernel for key, kernel in registry.kernels().items() if key[1] == snapshot["name"]}
    assert set(ours) == {(Path(snapshot["project"]).resolve(), snapshot["name"]), (other["project"].resolve(),
                                                                                  snapshot["name"])}
    assert len({kernel.container.id for kernel in ours.values()}) == 2
    assert len([r for r in runtime.ps() if r.snapshot == snapshot["name"] and r.role == "kernel"]) == 2
    assert runtime.stop(snapshot["name"]) == [snapshot["name"]]  # both, by name
    assert not [k for k in registry.kernels() if k[1] == snapshot["name"]]


def test_a_rebuilt_snapshot_gets_a_fresh_kernel(shell, snapshot, tmp_path):  # noqa: F811
    own = _copy_project(snapshot, tmp_path / "own")
    key = (own["project"].resolve(), snapshot["name"])
    cell(shell, own, "state = 'old'")
    first = registry.kernels()[key].container.id

    loads = []
    real_load = Store.load
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "load", lambda self, ref: loads.append(ref) or real_load(self, ref))
        for _ in range(3):
            cell(shell, own, "pass")
    assert loads == []  # a warm cell of an unchanged manifest reads no manifest: one stat

    manifest = service.load(snapshot["name"], own["project"])
    manifest.setdefault("env", {})["YOLOSNAP_REBUILD_TEST"] = "1"  # a new digest, no new package: a quick build
    service.open_store(own["project"]).save(manifest)
    new_tag = names.image_tag(service.load(snapshot["name"], own["project"]))
    out = cell(shell, own, "print(state)")
    assert out.stdout.strip() == "old" and "changed since its kernel started but is not built yet" in out.stderr
    out = cell(shell, own, "print(state)")
    assert out.stdout.strip() == "old" and "not built yet" not in out.stderr  # said once
    with _Engine() as engine:
        latest = engine.images.get(f"{names.image_repository(snapshot['name'])}:latest").id
    private_tmp = tmp_path / "tmp"  # the build's and the kernel image's temporary folders, apart from others'
    private_tmp.mkdir()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tempfile, "tempdir", str(private_tmp))
            assert bake.build(snapshot["name"], own["project"]).image == new_tag
            out = cell(shell, own, "print('state' in globals())")  # makes the new kernel image too
        assert not list(private_tmp.iterdir()), "temporary build folders left behind"
        assert out.stdout.strip() == "False"
        assert f"snapshot {snapshot['name']!r} was rebuilt" in out.stderr and "variables were reset" in out.stderr
        kernel = registry.kernels()[key]
        assert kernel.container.id != first and kernel.image.snapshot_image == new_tag
        assert first not in {c.id for c in _containers_of(snapshot["name"], "kernel")}  # the old one is gone
    finally:
        runtime.stop()
        with _Engine() as engine:  # :latest back on the fixture's image first, so these removals delete the new
            engine.images.get(latest).tag(names.image_repository(snapshot["name"]), "latest")
            for tag in (f"{new_tag}-kernel", new_tag):
                try:
                    engine.images.remove(tag)
                except docker.errors.ImageNotFound:
                    pass


# ------------------------------------------------------------------- 4. GPUs the engine cannot give


@pytest.fixture
def h100_host(monkeypatch):
    """This host, as NVML on a real H100 machine (driver 570) answered: a GPU is there."""
    real = gpu.probe_gpus
    monkeypatch.setattr(gpu, "probe_gpus", lambda nvml=None: real(load_recording(NVML / "h100-driver-570.json")))


NO_RUNTIME = ("warning: this host has 1 GPU(s) but the Docker engine has no NVIDIA runtime: running on the CPU; "
              "install the NVIDIA Container Toolkit and restart the engine, or pass --gpus none to silence this")


def test_gpus_auto_says_once_that_the_engine_cannot_give_the_hosts_gpus(shell, snapshot, workspace,  # noqa: F811
                                                                          h100_host):
    with _Engine() as engine:
        assert not engine_gpu_runtime(engine)  # the real engine here: no NVIDIA runtime
    err = io.StringIO()
    done = runtime.run_script(snapshot["name"], ["python", "-c", "print('on the cpu')"], snapshot["project"],
                              cwd=str(workspace), stdout=io.StringIO(), stderr=err)
    assert done.exit_code == 0 and err.getvalue().splitlines() == [NO_RUNTIME]
    quiet = io.StringIO()
    runtime.run_script(snapshot["name"], ["true"], snapshot["project"], cwd=str(workspace), gpus="none",
                       stdout=io.StringIO(), stderr=quiet)
    assert quiet.getvalue() == ""
    first = cell(shell, snapshot, "pass")
    assert first.stderr.count("no NVIDIA runtime") == 1 and NO_RUNTIME in first.stderr
    assert "NVIDIA" not in cell(shell, snapshot, "pass").stderr  # said when the kernel started, not per cell


# --------------------------------------------------------------------- 5. pulled pickles are untrusted


def test_pull_brings_back_plain_data(shell, snapshot):  # noqa: F811
    import numpy as np

    code = ("import collections, datetime, decimal, numpy as np\n"
            "stats = {'losses': [0.5, 0.25], 'grid': np.arange(6).reshape(2, 3), 'mean': np.float64(0.375),\n"
            "         'names': np.array(['a', None], dtype=object), 'when': datetime.date(2024, 1, 2),\n"
            "         'counts': collections.Counter('aab'), 'lr': decimal.Decimal('0.1'), 'shape': (2, 3)}\n")
    cell(shell, snapshot, code, "--pull stats")
    got = shell.user_ns["stats"]
    assert got["losses"] == [0.5, 0.25] and got["shape"] == (2, 3) and got["counts"] == {"a": 2, "b": 1}
    assert isinstance(got["grid"], np.ndarray) and got["grid"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert got["mean"] == 0.375 and got["names"].tolist() == ["a", None] and str(got["lr"]) == "0.1"


def test_pull_refuses_code_unless_trusted(shell, snapshot, tmp_path):  # noqa: F811
    marker = tmp_path / "pwned"  # outside the working directory: only this host could create it
    for stale in ("bad", "ok", "ns"):
        shell.user_ns.pop(stale, None)
    evil = ("import os\n"
            "class Evil:\n"
            "    def __reduce__(self):\n"
            f"        return (os.system, ('touch {marker}',))\n"
            "bad = Evil()\n"
            "ok = [1, 2]\n")
    with pytest.raises(UsageError, match=r"cannot pull 'bad': it holds a posix\.system, .*pass --pull-trusted"):
        cell(shell, snapshot, evil, "--pull bad,ok")
    assert not marker.exists() and "bad" not in shell.user_ns
    assert shell.user_ns["ok"] == [1, 2]  # the plain one still arrived (PartialPull)

    with pytest.raises(UsageError, match=r"it holds a types\.SimpleNamespace"):
        cell(shell, snapshot, "import types\nns = types.SimpleNamespace(epochs=3)", "--pull ns")
    assert "ns" not in shell.user_ns
    cell(shell, snapshot, "pass", "--pull ns --pull-trusted")
    assert shell.user_ns["ns"] == types.SimpleNamespace(epochs=3)
