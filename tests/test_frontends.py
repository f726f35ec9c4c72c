"""The four doors share one parser and one service: the same options, defaults and verbs everywhere.

``delete`` through the CLI and the magic, ``%config SnapshotMagics.*`` settings, ``%%in_env`` and ``run``
accepting the same container options, and hostile lines refused in one line with nothing written.
"""
from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from jupyter_yolosnap import service
from jupyter_yolosnap.frontends import commands

PACKAGE = Path(__file__).resolve().parent.parent / "jupyter_yolosnap"
HOSTILE = ["../x", "a;rm -rf /", "--x", "a\nb", "$(id)", "x" * 300, "a/b", ".."]


@pytest.fixture()
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_yolosnap")
    yield ip
    InteractiveShell.clear_instance()


def yolosnap(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_yolosnap", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_delete_through_cli_removes_every_revision_and_says_images_stay(project):
    assert yolosnap("save", "base", cwd=project).returncode == 0
    folder = project / ".yolosnap" / "base"
    assert folder.is_dir()
    done = yolosnap("delete", "base", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "Deleted snapshot 'base'" in done.stdout and "docker image ls yolosnap/base" in done.stdout
    assert not folder.exists()
    again = yolosnap("delete", "base", cwd=project)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "no snapshot named 'base'" in again.stderr


@pytest.mark.parametrize("name", HOSTILE)
def test_delete_refuses_hostile_names_one_line_touching_nothing(project, name):
    (project / ".yolosnap").mkdir()
    (project / "keep.txt").write_text("keep")
    before = sorted(p.name for p in project.rglob("*"))
    done = yolosnap("delete", name, cwd=project)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert sorted(p.name for p in project.rglob("*")) == before


def test_delete_through_the_magic(shell, project):
    assert shell.run_cell(f"%snapshot save base --project {project}").success
    result = shell.run_cell(f"%snapshot delete base --project {project}")
    assert result.success and "Deleted snapshot 'base'" in str(result.result)
    assert not (project / ".yolosnap" / "base").exists()


def test_config_settings_fill_what_the_line_leaves_out(shell, project):
    magics = shell.magics_manager.registry["SnapshotMagics"]
    shell.run_line_magic("config", 'SnapshotMagics.gpus = "none"')
    shell.run_line_magic("config", 'SnapshotMagics.strategy = "pinned"')
    shell.run_line_magic("config", f'SnapshotMagics.project = "{project}"')
    assert (magics.gpus, magics.strategy, magics.project) == ("none", "pinned", str(project))
    args = commands.fill_defaults(commands.parse(["run", "x", "--", "true"], raising=True), **magics._settings())
    assert (args.gpus, args.network, args.project) == ("none", "none", str(project))
    explicit = commands.parse(["run", "x", "--gpus", "2", "--", "true"], raising=True)
    assert commands.fill_defaults(explicit, **magics._settings()).gpus == "2"  # the line wins
    build = commands.fill_defaults(commands.parse(["build", "x"], raising=True), **magics._settings())
    assert build.strategy == "pinned"
    # The project setting is where %snapshot saves without --project.
    assert shell.run_cell("%snapshot save from-config").success
    assert (project / ".yolosnap" / "from-config" / "snapshot.json").is_file()


def test_cli_defaults_are_the_services():
    run = commands.fill_defaults(commands.parse(["run", "x", "--", "true"]))
    build = commands.fill_defaults(commands.parse(["build", "x"]))
    assert (run.gpus, run.network, build.strategy) == (service.DEFAULT_GPUS, service.DEFAULT_NETWORK,
                                                       service.DEFAULT_STRATEGY)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: action for action in parser._actions for opt in action.option_strings}


def test_run_and_in_env_define_their_container_options_once():
    run = next(a for a in commands.build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]
    run_opts, cell_opts = _options(run), _options(commands.in_env_parser())
    for flag in ("--gpus", "-e", "--env", "-v", "--volume", "--project"):
        a, b = run_opts[flag], cell_opts[flag]
        assert (a.default, a.help, a.metavar, type(a)) == (b.default, b.help, b.metavar, type(b)), flag
    # -e KEY (this process's value) is accepted by both doors.
    assert commands.in_env_parser().parse_args(["snap", "-e", "HOME"]).env == ["HOME"]
    assert commands.parse(["run", "snap", "-e", "HOME", "--", "true"]).env == ["HOME"]


@pytest.mark.parametrize("line", ["", "snap --gpus", "snap --frobnicate", "a b"])
def test_in_env_usage_errors_are_one_line(shell, line):
    result = shell.run_cell(f"%%in_env {line}\nx = 1\n")
    assert not result.success
    assert "%%in_env" in str(result.error_in_exec) and "\n" not in str(result.error_in_exec)
    assert "x" not in shell.user_ns


def test_every_verb_of_the_parser_is_a_service_function():
    verbs = set(commands.build_parser()._subparsers._group_actions[0].choices)
    assert verbs == {"save", "list", "show", "history", "diff", "delete", "build", "check", "run", "restore", "ps",
                     "stop", "k8s", "export", "import", "push", "pull"}
    named = {"list": "list_snapshots", "show": "load", "k8s": "k8s_job", "import": "import_archive"}
    for verb in verbs:
        assert callable(getattr(service, named.get(verb, verb))), verb


def _imports(path: Path) -> set[str]:
    """The jupyter_yolosnap modules ``path`` imports, as dotted names relative to the package."""
    tree = ast.parse(path.read_text())
    here = path.relative_to(PACKAGE).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(here[:len(here) - (node.level - 1)]) + (node.module.split(".") if node.module else [])
            found.update(".".join(base + [alias.name]) if not node.module else ".".join(base) for alias in node.names)
    return found


@pytest.mark.parametrize("door", ["frontends/cli.py", "frontends/magics.py", "frontends/in_env.py",
                                  "frontends/commands.py", "server/handlers.py"])
def test_doors_reach_stages_only_through_the_service(door):
    """A front door imports the service, other doors' parsing and rendering, and small shared parts (names,
    errors, the runtime's identifier rule) — never a stage's orchestration (bake, runtime registry, engine)."""
    stages = {"bake", "engine", "runtime.registry", "runtime.script", "kernelspec", "capture"}
    bad = {m for m in _imports(PACKAGE / door) if m.split(".")[0] in stages or m in stages}
    assert not bad, f"{door} imports {bad}: call jupyter_yolosnap.service instead"


def test_cli_reading_a_manifest_starts_fast(project):
    assert yolosnap("save", "base", cwd=project).returncode == 0
    code = ("import time, sys; t = time.perf_counter(); from jupyter_yolosnap.frontends.cli import main; "
            "import io, contextlib; out = io.StringIO()\nwith contextlib.redirect_stdout(out): main(['list'])\n"
            "print(time.perf_counter() - t); print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('docker', 'IPython', 'tornado', 'kubernetes')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60)
    seconds, heavy = done.stdout.splitlines()[-2:]
    assert heavy == "[]", heavy
    assert float(seconds) < 0.5


DIGEST_IMAGE = "registry.internal.ai/yolo-train@sha256:" + "9c" * 32


def test_k8s_prints_the_job_of_a_snapshot(project):
    import yaml

    assert yolosnap("save", "base", cwd=project).returncode == 0
    done = yolosnap("k8s", "base", "--image", DIGEST_IMAGE, "--gpus", "2", "-v", "/mnt/coco:/workspace/data/coco",
                    "--", "python", "train.py", "--img", "640", cwd=project)
    assert done.returncode == 0, done.stderr
    job = yaml.safe_load(done.stdout)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert job["kind"] == "Job" and container["image"] == DIGEST_IMAGE
    assert container["args"] == ["python", "train.py", "--img", "640"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"


@pytest.mark.parametrize("args, says", [
    (["--gpus", "all"], "--gpus"),
    (["--image", "registry/x:latest"], "push"),
    ([], "--image"),
    (["-v", "../etc:/data"], "-v"),
])
def test_k8s_bad_options_are_one_line(project, args, says):
    assert yolosnap("save", "base", cwd=project).returncode == 0
    image = [] if any(a == "--image" for a in args) or not args else ["--image", DIGEST_IMAGE]
    done = yolosnap("k8s", "base", *image, *args, "--", "python", "train.py", cwd=project)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
