"""Cells and scripts inside a snapshot's verified image, on the real engine, through a real IPython shell."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from jupyter_yolosnap import service, bake, runtime
from jupyter_yolosnap.snapshot import names
from jupyter_yolosnap.frontends import render
from jupyter_yolosnap.bake import kernel_layer
from jupyter_yolosnap.runtime import containers as runtime_containers, registry
from jupyter_yolosnap.runtime.containers import OWNER_HOST, OWNER_PID, ROLE, SCRATCH, SNAPSHOT
from jupyter_yolosnap.exceptions import RemoteError

from .conftest import make_venv, run

pytestmark = pytest.mark.engine
PIP = ["-m", "pip", "install", "-q", "--disable-pip-version-check"]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory, engine, base_image):
    """One snapshot (six, matplotlib, tensorboard), built once, with its kernel image; removed afterwards."""
    root = tmp_path_factory.mktemp("runtime")
    python = make_venv(root / "venv")
    run(python, *PIP, "six==1.16.0", "matplotlib", "tensorboard")
    project = root / "project"
    project.mkdir()
    name = f"rt-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:  # the wheel cache of the test session, as conftest does
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
        service.save(name, str(python), project)
        built = bake.build(name, project)
        made = kernel_layer.ensure(engine, service.load(name, project))
    yield {"name": name, "project": project, "image": built.image, "kernel": made}
    runtime.stop()
    stray = engine.containers.list(all=True, filters={"label": f"{SNAPSHOT}={name}"})
    for container in stray:
        container.remove(force=True)
    assert not stray, "containers of the test snapshot left behind: " + ", ".join(c.short_id for c in stray)
    for image in engine.images.list(name=names.image_repository(name)):
        for tag in image.tags:
            engine.images.remove(tag, force=True)


def _ours(engine) -> list:
    found = engine.containers.list(all=True, filters={"label": f"{OWNER_PID}={os.getpid()}"})
    return [c for c in found if c.labels.get(ROLE) in ("kernel", "run")]


@pytest.fixture
def workspace(tmp_path, monkeypatch, engine):
    """The notebook's working directory; every kernel stopped and no runtime container left afterwards."""
    folder = tmp_path / "ws"
    folder.mkdir()
    monkeypatch.chdir(folder)
    yield folder
    runtime.stop()
    leftovers = _ours(engine)
    for container in leftovers:
        container.remove(force=True)
    assert not leftovers, "runtime containers left behind: " + ", ".join(c.short_id for c in leftovers)


@pytest.fixture
def shell(workspace):
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_yolosnap")  # %snapshot and %%in_env, as a user loads them
    return ip


def cell(shell, snapshot, code: str, options: str = ""):
    """Run ``%%in_env`` directly (errors raise here), capturing stdout, stderr and displays."""
    with capture_output() as captured:
        shell.run_cell_magic("in_env", f"{snapshot['name']} --project {snapshot['project']} {options}", code)
    return captured


def test_kernel_image_adds_one_layer_and_keeps_the_snapshot(snapshot, engine):
    made = snapshot["kernel"]
    assert made.kernel_path == kernel_layer.KERNEL_PATH and made.image.endswith("-kernel")
    base_layers = engine.images.get(snapshot["image"]).attrs["RootFS"]["Layers"]
    kernel_layers = engine.images.get(made.image).attrs["RootFS"]["Layers"]
    assert kernel_layers[:len(base_layers)] == base_layers and len(kernel_layers) == len(base_layers) + 1
    again = kernel_layer.ensure(engine, service.load(snapshot["name"], snapshot["project"]))
    assert again.image == made.image and not again.built  # cached


def test_stdout_state_and_timings(shell, snapshot, workspace):
    started = time.perf_counter()
    out = cell(shell, snapshot, "import six, sys, os\nx = 41\nprint('six', six.__version__, six.__file__)\n"
                                "print('err line', file=sys.stderr)\nprint(os.getcwd())")
    first = time.perf_counter() - started
    assert "six 1.16.0" in out.stdout and "/opt/yolosnap" not in out.stdout  # the snapshot's own six wins
    assert str(workspace) in out.stdout and "err line" in out.stderr
    out = cell(shell, snapshot, "x += 1\nprint(x)")
    assert out.stdout.strip() == "42"
    # the container says which snapshot it is, and its name resolves (host network: not the host's name)
    out = cell(shell, snapshot, "import platform, socket\nprint(platform.node(), socket.gethostbyname(platform.node()))")
    assert out.stdout.split() == [names.container_hostname(snapshot["name"]), "127.0.0.1"], out.stdout

    remote, local = [], []
    for _ in range(50):
        t = time.perf_counter()
        cell(shell, snapshot, "pass")
        remote.append(time.perf_counter() - t)
        t = time.perf_counter()
        with capture_output():
            shell.run_cell("pass", store_history=False)
        local.append(time.perf_counter() - t)
    kernel = registry.running()[snapshot["name"]]
    print(f"\nfirst cell {first:.2f} s (kernel start {kernel.started_s:.2f} s); warm no-op cell median "
          f"{statistics.median(remote) * 1000:.1f} ms vs local {statistics.median(local) * 1000:.2f} ms")
    assert first < 30 and statistics.median(remote) < 0.5


def test_rich_display_comes_back(shell, snapshot):
    code = ("from IPython.display import display, HTML\n"
            "display(HTML('<b>shown</b>'))\n"
            "class Fig:\n"
            "    def _repr_html_(self): return '<i>fig</i>'\n"
            "    def _repr_png_(self): return b'\\x89PNG\\r\\n\\x1a\\nfake'\n"
            "Fig()\n")
    out = cell(shell, snapshot, code)
    datas = [o.data for o in out.outputs]
    assert any(d.get("text/html") == "<b>shown</b>" for d in datas)
    fig = next(d for d in datas if d.get("text/html") == "<i>fig</i>")
    assert "image/png" in fig


def test_exception_fails_the_cell_and_the_next_cell_works(shell, snapshot):
    with pytest.raises(RemoteError) as failure:
        cell(shell, snapshot, "y = 5\ndef f():\n    return 1 / 0\nf()")
    assert failure.value.ename == "ZeroDivisionError" and "division by zero" in str(failure.value)
    assert any("f()" in line or "1 / 0" in line for line in failure.value._render_traceback_())
    # through run_cell as a notebook does: the cell fails, the remote traceback is what is shown
    with capture_output() as shown:
        result = shell.run_cell(f"%%in_env {snapshot['name']} --project {snapshot['project']}\nraise KeyError('k')")
    assert isinstance(result.error_in_exec, RemoteError)
    assert "KeyError" in shown.stdout + shown.stderr
    assert cell(shell, snapshot, "print(y * 2)").stdout.strip() == "10"


def test_push_and_pull(shell, snapshot):
    shell.user_ns.update(config={"lr": 0.1, "layers": [1, 2]}, steps=3)
    cell(shell, snapshot, "metrics = {'loss': config['lr'] * steps, 'n': len(config['layers'])}",
         "--push config,steps --pull metrics")
    assert shell.user_ns["metrics"] == {"loss": pytest.approx(0.3), "n": 2}

    with pytest.raises(UsageError, match="has no variable 'nope'"):
        cell(shell, snapshot, "z = 1", "--pull nope")
    with pytest.raises(UsageError, match="cannot push 'missing': there is no variable"):
        cell(shell, snapshot, "pass", "--push missing")
    shell.user_ns["gen"] = (i for i in range(3))
    with pytest.raises(UsageError, match="cannot push 'gen': a generator cannot be pickled"):
        cell(shell, snapshot, "pass", "--push gen")
    with pytest.raises(UsageError, match="cannot pull 'g': it cannot be pickled"):
        cell(shell, snapshot, "g = (i for i in range(3))", "--pull g")
    assert cell(shell, snapshot, "print(z, steps)").stdout.split() == ["1", "3"]  # the kernel survived


def test_interrupt_stops_a_loop_and_keeps_the_kernel(shell, snapshot):
    import _thread

    cell(shell, snapshot, "kept = 'yes'")
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    started = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            cell(shell, snapshot, "while True:\n    pass")
    finally:
        timer.cancel()
    assert time.perf_counter() - started < 10
    assert cell(shell, snapshot, "print(kept)").stdout.strip() == "yes"


def test_files_belong_to_the_user(shell, snapshot, workspace):
    shell.user_ns.pop("uid", None)
    cell(shell, snapshot, "import os\nopen('out.txt', 'w').write('x')\nuid = os.getuid()", "--pull uid")
    assert shell.user_ns["uid"] == os.getuid()
    assert (workspace / "out.txt").stat().st_uid == os.getuid()


def test_another_uid_is_mapped(shell, snapshot, workspace, monkeypatch):
    """The container runs as the host user: shown with a uid that is not root's (the tests run as root)."""
    if os.getuid() != 0:
        pytest.skip("mapping another uid needs root")
    monkeypatch.setattr(runtime_containers, "host_user", lambda: "4321:4321")
    workspace.chmod(0o777)
    cell(shell, snapshot, "import os\nopen('mine.txt', 'w').write('x')\nuid = os.getuid()", "--pull uid")
    assert shell.user_ns["uid"] == 4321
    assert (workspace / "mine.txt").stat().st_uid == 4321


def test_run_script_exit_code_and_log(snapshot, workspace, engine, capsys):
    code = "import sys, six; print('hello', six.__version__); print('oops', file=sys.stderr); sys.exit(3)"
    done = runtime.run_script(snapshot["name"], ["python", "-c", code], snapshot["project"], cwd=str(workspace))
    assert done.exit_code == 3 and int(done) == 3
    seen = capsys.readouterr()
    assert "hello 1.16.0" in seen.out and "oops" in seen.err
    assert done.log.parent == workspace / ".yolosnap-runs" and done.log.name.startswith(snapshot["name"] + "-")
    text = done.log.read_text()
    assert "hello 1.16.0" in text and "oops" in text and "exit code 3" in text
    manifest = service.load(snapshot["name"], snapshot["project"])
    image_id = engine.images.get(done.image).id
    assert text.splitlines()[:4] == [f"# snapshot {snapshot['name']}  manifest {manifest['digest']}",
                                     f"# image {image_id}", "# code not a git work tree",
                                     f"# command python -c {shlex.quote(code)}  (cwd {workspace})"]
    assert done.gpu_csv is None and done.gpu_summary is None  # a CPU run samples nothing
    assert runtime.run_script(snapshot["name"], ["true"], snapshot["project"], cwd=str(workspace)).exit_code == 0


def test_a_run_log_names_the_code_it_ran_and_the_command_can_be_copied(snapshot, workspace, engine):
    """Provenance: the git commit of the folder the command ran in, and whether it was dirty; the command as
    the terminal would need it typed again."""
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    (workspace / "train.py").write_text("import sys; print(sys.argv[1:])\n")
    for args in (["add", "train.py"], ["-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "first"]):
        subprocess.run(["git", "-C", str(workspace), *args], check=True)
    commit = subprocess.run(["git", "-C", str(workspace), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    argv = ["python", "train.py", "--name", "my run", "$(touch pwned)", "a;b"]
    done = runtime.run_script(snapshot["name"], argv, snapshot["project"], cwd=str(workspace))
    lines = done.log.read_text().splitlines()
    assert lines[2] == f"# code git {commit} (clean)"
    assert lines[3] == f"# command python train.py --name 'my run' '$(touch pwned)' 'a;b'  (cwd {workspace})"
    assert shlex.split(lines[3][len("# command "):lines[3].rindex("  (cwd")]) == argv  # copy, paste, same argv
    assert "['--name', 'my run', '$(touch pwned)', 'a;b']" in lines[4] and not (workspace / "pwned").exists()
    report = str(render.render_run(done))
    assert report.startswith("python train.py --name 'my run' '$(touch pwned)' 'a;b': succeeded")
    assert f"git {commit} (clean)" in report
    (workspace / "train.py").write_text("print('changed')\n")
    again = runtime.run_script(snapshot["name"], ["python", "train.py"], snapshot["project"], cwd=str(workspace))
    assert again.log.read_text().splitlines()[2] == f"# code git {commit} (dirty: uncommitted changes)"


def test_killed_container_gives_a_clear_error(shell, snapshot, engine):
    cell(shell, snapshot, "lost = 1")
    kernel = registry.running()[snapshot["name"]]
    killer = threading.Timer(1.0, lambda: engine.containers.get(kernel.container.id).kill())
    killer.start()
    with pytest.raises(UsageError, match=r"stopped during the cell \(exit code 137"):
        cell(shell, snapshot, "import time\ntime.sleep(30)")
    killer.join()
    assert snapshot["name"] not in registry.running() or registry.running()[snapshot["name"]].kc is None
    out = cell(shell, snapshot, "print('lost' in globals())")  # a fresh kernel
    assert out.stdout.strip() == "False"


def test_gpus_on_an_engine_without_them(shell, snapshot, engine):
    before = {c.id for c in engine.containers.list(all=True)}
    with pytest.raises(UsageError, match="cannot give this container GPUs.*--gpus none"):
        cell(shell, snapshot, "pass", "--gpus all")
    assert not [c for c in engine.containers.list(all=True) if c.id not in before
                and c.labels.get(SNAPSHOT) == snapshot["name"]]
    with pytest.raises(UsageError, match="--gpus 'lots' is not understood"):
        cell(shell, snapshot, "pass", "--gpus lots")
    cell(shell, snapshot, "pass", "--gpus auto")  # no driver here: auto means none


def test_ps_stop_and_sweep_of_dead_owners(shell, snapshot, engine, containers):
    cell(shell, snapshot, "pass")
    rows = [r for r in runtime.ps() if r.snapshot == snapshot["name"]]
    assert len(rows) == 1 and rows[0].mine and rows[0].role == "kernel"
    assert snapshot["name"] in str(render.render_ps(rows))
    assert runtime.stop(snapshot["name"]) == [snapshot["name"]]
    assert not [r for r in runtime.ps() if r.snapshot == snapshot["name"]]

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    orphan = containers.run(snapshot["image"], ["sleep", "60"], detach=True, labels={
        ROLE: "kernel", SNAPSHOT: snapshot["name"], OWNER_PID: str(dead.pid), OWNER_HOST: socket.gethostname()})
    assert orphan.short_id in runtime.sweep()
    assert not containers.leftovers()



def test_matplotlib_figure_comes_back(shell, snapshot):
    code = ("import matplotlib.pyplot as plt\n"
            "plt.plot([3, 1, 2]); plt.title('losses')\n"
            "plt.show()\n")
    out = cell(shell, snapshot, code)
    figures = [o.data for o in out.outputs if "image/png" in o.data]
    assert len(figures) == 1, [sorted(o.data) for o in out.outputs]
    png = figures[0]["image/png"]
    assert (png if isinstance(png, bytes) else base64.b64decode(png)).startswith(b"\x89PNG")


def test_an_in_env_cell_with_gpus_is_sampled_and_a_cpu_cell_is_not(shell, snapshot, workspace, monkeypatch):
    """A real warm kernel; the GPUs are a recording (no GPU here): the sampler the service gives for the
    kernel's container runs while the cell runs, and the cell says its peak memory and where gpu.csv is."""
    import json as json_module

    from jupyter_yolosnap.gpu import telemetry

    from .nvml_replay import RecordedNvml

    cell(shell, snapshot, "warm = 1")
    assert not list(workspace.glob(".yolosnap-runs/*.gpu.csv"))  # a CPU container: nothing sampled, nothing said
    recording = json_module.loads((Path(__file__).parent / "fixtures" / "nvml" / "two-h100-training.json").read_text())
    given = []

    def sampler_for(container, path):
        given.append(container)
        return telemetry.Sampler(["0"], path, nvml=RecordedNvml(recording), interval=0.01)

    monkeypatch.setattr(service, "gpu_sampler", sampler_for)
    out = cell(shell, snapshot, "import time; time.sleep(0.3); print('trained')")
    [path] = workspace.glob(f".yolosnap-runs/{snapshot['name']}-cell-*.gpu.csv")
    assert "trained" in out.stdout and f"({path})" in out.stdout
    assert re.search(r"GPU: peak [0-9,]+ MiB of 81,559 MiB GPU memory, [0-9]+ sample\(s\)", out.stdout), out.stdout
    assert given and given[0].id == registry.get(snapshot["name"], snapshot["project"]).container.id


RESULTS = ("import csv, os\n"
           "os.makedirs('runs/train/exp', exist_ok=True)\n"
           "with open('runs/train/exp/results.csv', 'w', newline='') as f:\n"
           "    w = csv.writer(f)\n"
           "    w.writerow(['               epoch', '      train/box_loss', '     metrics/mAP_0.5'])\n"
           "    for e in range(5):\n"
           "        w.writerow([f'{e:>20}', f'{0.1 / (e + 1):>18.5f}', f'{0.1 * e:>18.5f}'])\n"
           "        print('epoch', e, flush=True)\n")


def test_snapshot_run_in_the_notebook_plots_results_csv(shell, snapshot, workspace):
    (workspace / "train.py").write_text(RESULTS)
    with capture_output() as out:
        result = shell.run_cell(f"%snapshot run {snapshot['name']} --project {snapshot['project']} "
                                "-- python train.py --epochs 5")
    assert result.error_in_exec is None, result.error_in_exec
    assert "epoch 4" in out.stdout  # live lines
    report = result.result
    assert report.png.startswith(b"\x89PNG") and "data:image/png;base64," in report._repr_html_()
    text = str(report)
    assert "succeeded" in text and "results.csv (5 rows; epoch 4: train/box_loss=0.02" in text
    plots = list((workspace / ".yolosnap-runs").glob("*.png"))
    assert len(plots) == 1 and plots[0].read_bytes() == report.png


def test_snapshot_run_that_fails_fails_the_cell(shell, snapshot, workspace):
    with capture_output():
        result = shell.run_cell(f"%snapshot run {snapshot['name']} --project {snapshot['project']} "
                                "-- python -c 'import sys; sys.exit(5)'")
    assert isinstance(result.error_in_exec, UsageError)
    assert re.search(r"exited with code 5 in snapshot .*; its log: .*\.yolosnap-runs/.*\.log",
                     str(result.error_in_exec))
    with capture_output():  # unknown snapshot: one line, no container, no log folder left behind
        result = shell.run_cell(f"%snapshot run nope --project {snapshot['project']} -- true")
    assert "no snapshot named 'nope'" in str(result.error_in_exec)


def test_cli_run_exit_code_ps_and_stop(snapshot, workspace, engine):
    cli = [sys.executable, "-m", "jupyter_yolosnap"]
    done = subprocess.run([*cli, "run", snapshot["name"], "--project", str(snapshot["project"]), "-e", "WHO=ci",
                           "--", "python", "-c", "import os, sys; print('who', os.environ['WHO']); sys.exit(4)"],
                          capture_output=True, text=True, cwd=workspace)
    assert done.returncode == 4, done.stderr
    assert "who ci" in done.stdout and "exited with code 4" in done.stdout
    sleeper = subprocess.Popen([*cli, "run", snapshot["name"], "--project", str(snapshot["project"]), "--",
                                "sleep", "60"], cwd=workspace, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not [r for r in runtime.ps() if r.snapshot == snapshot["name"] and r.role == "run"]:
            assert time.monotonic() < deadline, "the run's container never showed in ps"
            time.sleep(0.2)
        listed = subprocess.run([*cli, "ps"], capture_output=True, text=True)
        assert snapshot["name"] in listed.stdout and " run " in listed.stdout
        polite = subprocess.run([*cli, "stop", snapshot["name"]], capture_output=True, text=True)
        assert "left alone; add --all" in polite.stdout  # its owner (the CLI run) is alive
        forced = subprocess.run([*cli, "stop", snapshot["name"], "--all"], capture_output=True, text=True)
        assert "Stopped 1 container" in forced.stdout
        assert sleeper.wait(timeout=20) != 0  # the run saw its container end
    finally:
        sleeper.kill()
    assert not [r for r in runtime.ps() if r.snapshot == snapshot["name"]]


def test_tensorboard_serves_while_the_run_lasts(snapshot, workspace):
    seen: dict = {}

    class Watch(io.StringIO):
        def write(self, text):
            found = re.search(r"http://127\.0\.0\.1:\d+/", text)
            if found and "url" not in seen:
                seen["url"] = found.group(0)
                seen["ps"] = [r.role for r in runtime.ps() if r.snapshot == snapshot["name"]]
                with urllib.request.urlopen(seen["url"], timeout=10) as page:
                    seen["status"] = page.status
            return super().write(text)

    done = runtime.run_script(snapshot["name"], ["python", "-c", "print('training')"], snapshot["project"],
                              cwd=str(workspace), tensorboard="runs/tb", stdout=Watch())
    assert done.exit_code == 0 and done.tensorboard == seen["url"]
    assert seen["status"] == 200 and "tensorboard" in seen["ps"]
    assert not [r for r in runtime.ps() if r.snapshot == snapshot["name"]]  # it ended with the run


def test_kernel_restart_and_kill_leave_no_container(snapshot, workspace, engine):
    """A real notebook kernel: a restart ends its snapshot kernel; after a SIGKILL the next kernel sweeps it."""
    from jupyter_client.manager import start_new_kernel

    code = (f"%load_ext jupyter_yolosnap\nget_ipython().run_cell_magic('in_env', "
            f"'{snapshot['name']} --project {snapshot['project']}', 'print(1)')")

    def owned_by(pid: int) -> list:
        return engine.containers.list(all=True, filters={"label": f"{OWNER_PID}={pid}"})

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(workspace))
    try:
        assert kc.execute_interactive(code, timeout=120)["content"]["status"] == "ok"
        pid = km.provisioner.process.pid
        assert len(owned_by(pid)) == 1
        km.restart_kernel(now=False)
        deadline = time.monotonic() + 20
        while owned_by(pid):
            assert time.monotonic() < deadline, "the restarted kernel's container is still there"
            time.sleep(0.2)
        kc.wait_for_ready(timeout=60)
        assert kc.execute_interactive(code, timeout=120)["content"]["status"] == "ok"
        pid = km.provisioner.process.pid
        assert len(owned_by(pid)) == 1
        scratch = owned_by(pid)[0].labels[SCRATCH]  # the kernel's socket folder on the host
        assert os.path.isdir(scratch)
        os.kill(pid, signal.SIGKILL)  # no clean exit: the container stays until someone sweeps
        time.sleep(1)
        assert len(owned_by(pid)) == 1
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(workspace))
    try:
        assert kc.execute_interactive(code, timeout=120)["content"]["status"] == "ok"
        assert not owned_by(pid) and not os.path.exists(scratch)  # swept by the new kernel's first %%in_env
        pid = km.provisioner.process.pid
    finally:
        kc.stop_channels()
        km.shutdown_kernel()  # a clean shutdown, as Jupyter does it: the kernel's exit ends its container
    assert not owned_by(pid)


def test_cli_restore_installs_a_kernelspec(snapshot, tmp_path):
    env = dict(os.environ, JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"))
    cli = [sys.executable, "-m", "jupyter_yolosnap"]
    done = subprocess.run([*cli, "restore", snapshot["name"], "--project", str(snapshot["project"])],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    kernel = done.stdout.strip().splitlines()[-1]
    assert kernel == f"yolosnap-{snapshot['name']}"
    spec = json.loads((tmp_path / "jupyter-data" / "kernels" / kernel / "kernel.json").read_text())
    provisioner = spec["metadata"]["kernel_provisioner"]
    assert provisioner["provisioner_name"] == "yolosnap-docker-provisioner"
    assert provisioner["config"]["snapshot"] == snapshot["name"]
    assert provisioner["config"]["project"] == str(snapshot["project"])
    assert spec["argv"][1:4] == ["-m", "jupyter_yolosnap.kernelspec", snapshot["name"]]  # the refusal
    assert spec["interrupt_mode"] == "signal"
    gone = subprocess.run([*cli, "restore", snapshot["name"], "--project", str(snapshot["project"]), "--remove"],
                          capture_output=True, text=True, env=env)
    assert gone.returncode == 0 and f"Removed kernel {kernel}" in gone.stdout
    assert not (tmp_path / "jupyter-data" / "kernels" / kernel).exists()
    unbuilt = subprocess.run([*cli, "restore", "nope", "--project", str(snapshot["project"])],
                             capture_output=True, text=True, env=env)
    assert unbuilt.returncode == 2 and "no snapshot named 'nope'" in unbuilt.stderr


def test_interrupted_run_leaves_nothing_running(snapshot, workspace, engine):
    import _thread

    timer = threading.Timer(2.0, _thread.interrupt_main)
    timer.start()
    started = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            runtime.run_script(snapshot["name"], ["python", "-c", "import time\nprint('up', flush=True)\n"
                                                  "time.sleep(60)"], snapshot["project"], cwd=str(workspace))
    finally:
        timer.cancel()
    assert time.perf_counter() - started < 20
    assert not [r for r in runtime.ps() if r.snapshot == snapshot["name"]]
    log = next((workspace / ".yolosnap-runs").glob("*.log")).read_text()
    assert "up" in log and "# interrupted" in log


def test_unbuilt_snapshot_is_a_clear_error(shell, snapshot, workspace, engine):
    service.save("not-built", sys.executable, snapshot["project"])
    before = {c.id for c in engine.containers.list(all=True)}
    with pytest.raises(UsageError, match=r"snapshot 'not-built' has no image .*build it first: "
                                         r"%snapshot build not-built"):
        cell(shell, {**snapshot, "name": "not-built"}, "pass")
    assert {c.id for c in engine.containers.list(all=True)} == before
