"""Shared fixtures: real venvs with real installs of every PEP 610 kind, made once per test session."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*argv: str | os.PathLike, cwd: str | os.PathLike | None = None, env: dict | None = None
        ) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output when it fails."""
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def make_project(root: Path, name: str, version: str = "0.1.0", module_body: str = "VALUE = 1\n") -> Path:
    """A minimal setuptools project that pip can build offline (``--no-build-isolation``)."""
    module = name.replace("-", "_")
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "{version}"
        requires-python = ">=3.8"
        """))
    (root / f"{module}.py").write_text(module_body)
    return root


def make_venv(path: Path) -> Path:
    """A real venv with pip; returns its python."""
    venv.EnvBuilder(with_pip=True, symlinks=True).create(path)
    return path / "bin" / "python"


class SampleEnv:
    """A venv holding one install of every kind the capture must tell apart."""

    def __init__(self, root: Path):
        self.root = root
        self.python = make_venv(root / "venv")
        pip = [self.python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-build-isolation"]
        # setuptools is in a new 3.11 venv; make sure a PEP 660 capable one is there for the editable install
        run(self.python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "setuptools>=64", "wheel")
        # 1. from the index
        run(*pip, "six==1.16.0", "idna==3.7")
        # 2. editable, from a local folder
        self.editable_src = make_project(root / "src" / "ysnap-editable", "ysnap-editable")
        run(*pip, "-e", self.editable_src)
        # 3. a local wheel file (an archive)
        wheel_src = make_project(root / "src" / "ysnap-wheel", "ysnap-wheel", "2.0.0")
        run(self.python, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", root / "wheels",
            wheel_src)
        self.wheel = next((root / "wheels").glob("ysnap_wheel-2.0.0-*.whl"))
        run(*pip, self.wheel)
        # 4. a VCS install from a local git repository, pinned to a commit
        repo = make_project(root / "src" / "ysnap-vcs", "ysnap-vcs", "0.3.0")
        git_env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
                       GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")
        run("git", "init", "-q", repo)
        run("git", "-C", repo, "add", ".", env=git_env)
        run("git", "-C", repo, "commit", "-q", "-m", "first", env=git_env)
        self.vcs_commit = run("git", "-C", repo, "rev-parse", "HEAD").stdout.strip()
        self.vcs_url = f"git+file://{repo}"
        self.vcs_plain_url = repo.as_uri()  # PEP 610 keeps the scheme without "git+"
        run(*pip, f"{self.vcs_url}@{self.vcs_commit}#egg=ysnap-vcs")
        # 5. a plain local directory (not editable)
        self.directory_src = make_project(root / "src" / "ysnap-dir", "ysnap-dir", "0.0.1")
        run(*pip, self.directory_src)


@pytest.fixture(scope="session")
def sample_env(tmp_path_factory: pytest.TempPathFactory) -> SampleEnv:
    return SampleEnv(tmp_path_factory.mktemp("sample-env"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project folder, and the working directory for the test."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the native-library cache and the Jupyter runtime files (build failure records, kernel records) out of
    the user's home."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path_factory.getbasetemp() / "jupyter-runtime"))


def yolosnap(*args: str | os.PathLike, cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """The real CLI, as a user runs it (a subprocess of this test's interpreter)."""
    return subprocess.run([sys.executable, "-m", "jupyter_yolosnap", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=dict(os.environ))


from .engine_support import base_image, containers, engine  # noqa: E402,F401  (fixtures for engine tests)
