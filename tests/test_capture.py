"""The capture probe, run for real in venvs the tests build (index, editable, wheel, VCS, directory)."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_yolosnap.capture.cuda import cudnn_from_header, probe_torch, read_version_module
from jupyter_yolosnap.capture.environment import probe_environment
from jupyter_yolosnap.capture.git import probe_git
from jupyter_yolosnap.capture.packages import normalize_name, source_of
from jupyter_yolosnap.capture.system import read_dpkg_status, read_os_release
from jupyter_yolosnap.capture.urls import strip_credentials
from jupyter_yolosnap.exceptions import CaptureError
from jupyter_yolosnap.capture.runner import run_probe

from .conftest import run

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def captured(sample_env) -> dict:
    return run_probe(str(sample_env.python))


def by_name(capture: dict) -> dict[str, dict]:
    return {p["name"]: p for p in capture["packages"]}


def test_interpreter_is_recorded_to_the_micro_version(captured, sample_env):
    py = captured["python"]
    assert py["version"] == platform.python_version()
    assert py["version_info"] == list(sys.version_info[:3])
    assert py["implementation"] == "cpython"
    assert py["abi"] == f"cp{sys.version_info[0]}{sys.version_info[1]}"
    assert py["environment"] == "venv"
    assert py["prefix"] == str(sample_env.root / "venv")
    assert py["machine"] == platform.machine()


def test_index_installs(captured):
    pkgs = by_name(captured)
    assert pkgs["six"] == {"name": "six", "version": "1.16.0", "source": "index", "installer": "pip",
                           "requested": True, "requires_python": pkgs["six"]["requires_python"]}
    assert pkgs["idna"]["version"] == "3.7" and pkgs["idna"]["source"] == "index"
    assert pkgs["pip"]["requested"] is False or pkgs["pip"]["source"] == "index"


def test_editable_install(captured, sample_env):
    pkg = by_name(captured)["ysnap-editable"]
    assert pkg["source"] == "editable"
    assert pkg["url"] == sample_env.editable_src.as_uri()


def test_local_wheel_is_an_archive_with_its_hash(captured, sample_env):
    import hashlib

    pkg = by_name(captured)["ysnap-wheel"]
    assert pkg["source"] == "archive" and pkg["version"] == "2.0.0"
    assert pkg["url"] == sample_env.wheel.as_uri()
    assert pkg["hash"] == "sha256=" + hashlib.sha256(sample_env.wheel.read_bytes()).hexdigest()


def test_vcs_install_records_the_commit(captured, sample_env):
    pkg = by_name(captured)["ysnap-vcs"]
    assert pkg["source"] == "vcs" and pkg["vcs"] == "git"
    assert pkg["commit"] == sample_env.vcs_commit
    assert pkg["url"] == sample_env.vcs_plain_url


def test_local_directory_install(captured, sample_env):
    pkg = by_name(captured)["ysnap-dir"]
    assert pkg["source"] == "directory" and pkg["url"] == sample_env.directory_src.as_uri()


def test_only_the_venvs_packages_are_listed(captured):
    names = set(by_name(captured))
    assert {"six", "idna", "pip", "setuptools", "ysnap-editable", "ysnap-wheel", "ysnap-vcs", "ysnap-dir"} <= names
    assert "jupyter-yolosnap" not in names and "pytest" not in names  # the test runner's env does not leak in
    assert [p["name"] for p in captured["packages"]] == sorted(names)


def test_matches_pip_freeze(captured, sample_env):
    """Every distribution pip sees, the capture sees, at the same version."""
    frozen = run(sample_env.python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check").stdout
    expected = {normalize_name(p["name"]): p["version"] for p in json.loads(frozen)}
    assert {p["name"]: p["version"] for p in captured["packages"]} == expected


def test_probe_needs_nothing_installed_in_the_target(captured):
    assert captured["probe_version"] == 1
    assert captured["cuda"]["torch"] is None and captured["cuda"]["wheels"] == []


@pytest.mark.parametrize("direct_url, expected", [
    ({"url": "https://user:s3cret@git.example.invalid/x.git",
      "vcs_info": {"vcs": "git", "commit_id": "abc", "requested_revision": "v1"}},
     {"source": "vcs", "url": "https://git.example.invalid/x.git", "vcs": "git", "commit": "abc",
      "requested_revision": "v1"}),
    ({"url": "https://__token__:pypi-AgEI@files.example.invalid/a-1.tar.gz",
      "archive_info": {"hashes": {"sha256": "ff", "md5": "00"}}},
     {"source": "archive", "url": "https://files.example.invalid/a-1.tar.gz", "hash": "sha256=ff"}),
    ({"url": "ssh://git@git.example.invalid/x.git", "vcs_info": {"vcs": "git", "commit_id": "c"},
      "subdirectory": "pkg"},
     {"source": "vcs", "url": "ssh://git@git.example.invalid/x.git", "vcs": "git", "commit": "c",
      "subdirectory": "pkg"}),
    ({"url": "file:///src/a", "dir_info": {}}, {"source": "directory", "url": "file:///src/a"}),
    (None, {"source": "index"}),
])
def test_pep610_sources_with_credentials_stripped(direct_url, expected):
    assert source_of(direct_url) == expected


def test_strip_credentials_keeps_everything_else():
    assert strip_credentials("https://u:p@h.invalid:8443/p?q=1#f") == "https://h.invalid:8443/p?q=1#f"
    assert strip_credentials("https://h.invalid/p") == "https://h.invalid/p"


def test_torch_build_is_read_from_version_py_without_importing(tmp_path):
    """The fixture is torch 2.14.1's real ``torch/version.py``, taken from the cu130 wheel."""
    info = read_version_module(str(FIXTURES / "torch" / "version-2.14.1-cu130.py"))
    assert info["__version__"] == "2.14.1+cu130" and info["cuda"] == "13.0" and info["hip"] is None
    header = tmp_path / "cudnn_version.h"
    header.write_text("#define CUDNN_MAJOR 9\n#define CUDNN_MINOR 24\n#define CUDNN_PATCHLEVEL 0\n")
    assert cudnn_from_header(str(header)) == "9.24.0"
    assert read_version_module(str(tmp_path / "missing.py")) == {}


def test_torch_absent_is_none():
    assert probe_torch([]) is None  # no torch among the packages


def test_environment_variables_keep_cuda_settings_and_drop_secrets():
    env = {
        "CUDA_VISIBLE_DEVICES": "0,1", "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
        "OMP_NUM_THREADS": "8", "HOME": "/root", "AWS_SECRET_ACCESS_KEY": "x",
        "HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz", "NCCL_IB_DISABLE": "1",
        "TORCH_HOME": "https://me:pw@cache.example.invalid/torch", "NVIDIA_API_KEY": "nvapi-1",
        "CUDA_CACHE": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    }
    assert probe_environment(env) == {
        "CUDA_VISIBLE_DEVICES": "0,1", "NCCL_IB_DISABLE": "1", "OMP_NUM_THREADS": "8",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
        "TORCH_HOME": "https://cache.example.invalid/torch",
    }


def test_git_commit_and_dirty_state(tmp_path):
    assert probe_git(str(tmp_path)) is None
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@x.invalid")
    run("git", "init", "-q", "-b", "main", tmp_path)
    (tmp_path / "train.py").write_text("print(1)\n")
    run("git", "-C", tmp_path, "add", ".", env=env)
    run("git", "-C", tmp_path, "commit", "-q", "-m", "x", env=env)
    head = run("git", "-C", tmp_path, "rev-parse", "HEAD").stdout.strip()
    assert probe_git(str(tmp_path)) == {"commit": head, "branch": "main", "dirty": False}
    (tmp_path / "train.py").write_text("print(2)\n")
    assert probe_git(str(tmp_path))["dirty"] is True


def test_os_and_dpkg_are_read_from_files():
    release = read_os_release()
    assert release.get("ID")
    packages = read_dpkg_status()
    if shutil.which("dpkg-query"):
        listed = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}${Package} ${Version}\n"],
                                capture_output=True, text=True).stdout.splitlines()
        expected = {tuple(line[3:].split(" ", 1)) for line in listed if line.startswith("ii")}
        assert {(p["name"], p["version"]) for p in packages} == expected
    assert read_dpkg_status("/nonexistent/status") == []


@pytest.mark.parametrize("python, message", [
    ("/nonexistent/python3", "was not found"),
    ("/bin/ls", "is not a Python"),
    ("/tmp", "not an executable"),
])
def test_python_that_is_not_a_python(python, message):
    with pytest.raises(CaptureError, match=message):
        run_probe(python)
