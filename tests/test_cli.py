"""The ``yolosnap`` CLI, run as a real subprocess against real venvs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_yolosnap.snapshot.manifest import loads

from .conftest import run, yolosnap


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_error_line(done) -> str:
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("yolosnap: "), done.stderr
    return lines[0]


def test_save_show_list_diff_a_venv(sample_env, project):
    done = yolosnap("save", "base", "--python", sample_env.python, "--project", project)
    assert done.returncode == 0, done.stderr
    assert "Saved snapshot 'base' (first revision)" in done.stdout
    path = project / ".yolosnap" / "base" / "snapshot.json"
    manifest = loads(path.read_text())
    assert {p["name"]: p["source"] for p in manifest["packages"]}["ysnap-vcs"] == "vcs"
    assert manifest["python"]["prefix"] == str(sample_env.root / "venv")

    shown = yolosnap("show", "base", "--json", "--project", project)
    assert shown.returncode == 0 and loads(shown.stdout) == manifest
    table = yolosnap("show", "base", "--project", project).stdout
    assert "ysnap-editable" in table and "editable" in table

    listed = yolosnap("list", "--project", project)
    assert listed.returncode == 0 and "\nbase " in listed.stdout

    same = yolosnap("diff", "base", "--python", sample_env.python, "--project", project)
    assert same.returncode == 0 and "identical" in same.stdout, same.stdout + same.stderr

    # drift: upgrade one package in the venv, then the live diff finds exactly it
    run(sample_env.python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "idna==3.8")
    try:
        drift = yolosnap("diff", "base", "--python", sample_env.python, "--project", project, "--json")
        assert drift.returncode == 1
        changes = json.loads(drift.stdout)["changes"]
        assert [(c["item"], c["old"], c["new"]) for c in changes if c["section"] == "packages"] == [
            ("idna", "3.7", "3.8")]
        yolosnap("save", "base", "--python", sample_env.python, "--project", project)
        history = yolosnap("history", "base", "--project", project).stdout
        assert "base@1" in history and "base@2" in history
        between = yolosnap("diff", "base@1", "base", "--project", project)
        assert between.returncode == 1 and "idna" in between.stdout
    finally:
        run(sample_env.python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "idna==3.7")


def test_project_defaults_to_the_working_directory(project):
    done = yolosnap("save", "here", cwd=project)
    assert done.returncode == 0, done.stderr
    assert (project / ".yolosnap" / "here" / "snapshot.json").is_file()
    sub = project / "notebooks"
    sub.mkdir()
    assert "here" in yolosnap("list", cwd=sub).stdout  # found from a subfolder


@pytest.mark.parametrize("args, message", [
    (["save", "../evil"], "invalid snapshot name '../evil'"),
    (["save", "a/b"], "invalid snapshot name"),
    (["save", "ok", "--python", "/bin/ls"], "'/bin/ls' is not a Python"),
    (["save", "ok", "--python", "/no/such/python"], "was not found"),
    (["show", "missing"], "no snapshot named 'missing'"),
    (["diff", "missing"], "no snapshot named 'missing'"),
    (["show", "x@0"], "invalid revision"),
    (["build", "x", "--strategy", "pinned", "--ca-bundle", "/no/such.pem"], "--ca-bundle '/no/such.pem' is not a file"),
    (["build", "../x"], "invalid snapshot name"),
    (["check", "missing"], "no snapshot named 'missing'"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(project, args, message):
    done = yolosnap(*args, "--project", project)
    assert message in one_error_line(done)
    assert files(project) == []


def test_missing_project_directory(tmp_path):
    assert "does not exist" in one_error_line(yolosnap("list", "--project", tmp_path / "nope"))


def test_corrupt_manifest(project):
    assert yolosnap("save", "x", "--project", project).returncode == 0
    path = project / ".yolosnap" / "x" / "snapshot.json"
    path.write_text(path.read_text().replace('"packages": [', '"packages": 7, "x": ['))
    line = one_error_line(yolosnap("show", "x", "--project", project))
    assert "is not a valid snapshot manifest: packages = 7: must be array" in line and "re-save" in line


def test_usage_errors_exit_2(project):
    done = yolosnap("frobnicate")
    assert done.returncode == 2 and "invalid choice" in done.stderr
    assert yolosnap("diff", "a", "b", "--python", "python3", "--project", project).returncode == 2
