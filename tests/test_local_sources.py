"""Local sources: the file set a build copies, its fingerprint, and an image that follows an editable package's code.

The unit tests need no engine; the last test builds on the real engine: an editable package whose code changes
between two saves (no version change) gets a new digest, the stale build is refused, and the rebuild reuses every
layer above the sources, runs the new code and checks clean.
"""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from jupyter_yolosnap import service, bake
from jupyter_yolosnap.engine import labels
from jupyter_yolosnap.snapshot import names
from jupyter_yolosnap.bake import local_sources
from jupyter_yolosnap.capture import sources
from jupyter_yolosnap.events import Event
from jupyter_yolosnap.exceptions import RecipeError

from .conftest import make_project, make_venv, run


def tree(root, files: dict) -> None:
    for rel, body in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)


CODE = {"pyproject.toml": "[project]\nname='m'\n", "m/__init__.py": "X = 1\n", "m/data/labels.txt": "a\n",
        "README.md": "hi\n"}
JUNK = {"data/train.csv": "1,2\n", "runs/exp1/results.csv": "1\n", ".venv/pyvenv.cfg": "home=/x\n",
        "env2/pyvenv.cfg": "home=/x\n", "env2/lib/x.py": "", "m/__pycache__/x.cpython-311.pyc": "",
        "m.egg-info/PKG-INFO": "", "build/lib/m/__init__.py": "", ".env": "TOKEN=s3cret\n", "w.ckpt": "w",
        "notes/private.txt": "x"}


def test_file_set_outside_git_keeps_code_and_leaves_junk(tmp_path):
    tree(tmp_path, {**CODE, **JUNK, ".dockerignore": "# checkpoints\n*.ckpt\nnotes/\n!keep.ckpt\n"})
    assert sources.file_set(str(tmp_path)) == sorted([*CODE, ".dockerignore"])  # m/data is package data: kept


def test_file_set_in_git_is_what_git_keeps(tmp_path):
    tree(tmp_path, {**CODE, "w.ckpt": "w", ".gitignore": "*.ckpt\n", "gone.py": "x\n"})
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid")
    run("git", "init", "-q", tmp_path)
    run("git", "-C", tmp_path, "add", ".", env=env)
    run("git", "-C", tmp_path, "commit", "-q", "-m", "x", env=env)
    (tmp_path / "gone.py").unlink()  # tracked, deleted in the work tree
    (tmp_path / "new.py").write_text("untracked, not ignored\n")
    (tmp_path / "m" / "__pycache__").mkdir()
    (tmp_path / "m" / "__pycache__" / "x.pyc").write_text("")
    assert sources.file_set(str(tmp_path)) == sorted([*CODE, ".gitignore", "new.py"])


def test_fingerprint_moves_with_code_not_with_junk(tmp_path):
    ignore = {".dockerignore": "*.ckpt\nnotes/\n"}
    tree(tmp_path, {**CODE, **JUNK, **ignore})
    first = sources.probe_source(str(tmp_path), {})
    assert first["files"] == len(CODE) + 1 and first["bytes"] == sum(len(v) for v in {**CODE, **ignore}.values())
    (tmp_path / "data" / "train.csv").write_text("3,4\n")  # data changed: not code
    assert sources.probe_source(str(tmp_path), {}) == first
    (tmp_path / "m" / "__init__.py").write_text("X = 2\n")  # same size, other code
    second = sources.probe_source(str(tmp_path), {})
    assert second["fingerprint"] != first["fingerprint"] and second["bytes"] == first["bytes"]
    os.chmod(tmp_path / "README.md", 0o755)
    assert sources.probe_source(str(tmp_path), {})["fingerprint"] != second["fingerprint"]
    # inside an image the build's own list decides: a file outside the list never counts
    listed = {str(tmp_path): ["README.md"]}
    assert sources.probe_source(str(tmp_path), listed)["files"] == 1


def test_a_stale_source_is_refused_before_building(tmp_path):
    src = make_project(tmp_path / "lib", "stale-lib")
    pkg = {"name": "stale-lib", "version": "0.1.0", "source": "editable", "url": src.as_uri(),
           **sources.probe_source(str(src), {})}
    assert local_sources.prepare(pkg).files == ("pyproject.toml", "stale_lib.py")
    (src / "stale_lib.py").write_text("VALUE = 2\n")
    with pytest.raises(RecipeError, match="changed since the snapshot was saved.*save the snapshot again"):
        local_sources.prepare(pkg)


@pytest.mark.engine
def test_editable_code_change_rebuilds_only_the_sources_layer(tmp_path, project, engine):
    src = make_project(tmp_path / "src" / "follow-lib", "follow-lib", module_body="VALUE = 'old'\n")
    with open(src / "pyproject.toml", "a") as handle:  # one module: no package discovery over assets/
        handle.write('\n[tool.setuptools]\npy-modules = ["follow_lib"]\n')
    (src / "assets").mkdir()
    with open(src / "assets" / "big.bin", "wb") as handle:  # sparse: 51 MB to copy, no disk to speak of
        handle.truncate(51 * 1024 * 1024)
    python = make_venv(tmp_path / "venv")
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "setuptools>=64", "wheel", "six==1.16.0")
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-build-isolation", "-e", src)
    name = f"follow-{uuid.uuid4().hex[:8]}"
    try:
        first = service.save(name, str(python), project)
        pkg = next(p for p in first.manifest["packages"] if p["name"] == "follow-lib")
        assert pkg["fingerprint"].startswith("sha256:") and pkg["files"] == 3
        events: list[Event] = []
        built = bake.build(name, project, listener=events.append)
        assert built.check.clean
        assert any("brings 51 MB (3 files)" in e.message for e in events if e.kind == "phase")
        assert "six==1.16.0\n" in (project / ".yolosnap" / name / "requirements" / "index.txt").read_text()

        (src / "follow_lib.py").write_text("VALUE = 'new'\n")  # code, not version
        with pytest.raises(RecipeError, match="changed since the snapshot was saved"):
            bake.build(name, project)  # the manifest still names the old code
        second = service.save(name, str(python), project)
        assert second.previous_digest == first.manifest["digest"] != second.manifest["digest"]
        change = [c for c in service.diff(f"{name}@1", name, project=project).changes if c.section == "packages"]
        assert [c.item for c in change] == ["follow-lib"] and "code" in change[0].new

        log: list[Event] = []
        rebuilt = bake.build(name, project, listener=log.append)
        assert rebuilt.check.clean and not rebuilt.reused
        out = engine.containers.run(rebuilt.image, ["python", "-c", "import follow_lib; print(follow_lib.VALUE)"],
                                    network_mode="none", remove=True)
        assert out.decode().strip() == "new"
        steps = [(e.message, log[i + 1].message if i + 1 < len(log) else "") for i, e in enumerate(log)
                 if e.kind == "step"]
        sources_step = next(i for i, (step, _) in enumerate(steps) if step.startswith("COPY sources/"))
        assert all(after == "---> Using cache" for _, after in steps[1:sources_step]), steps  # FROM has none
        assert steps[sources_step][1] != "---> Using cache"
        old, new = (engine.images.get(i).attrs["RootFS"]["Layers"] for i in (built.image, rebuilt.image))
        assert new[:-2] == old[:-2] and new[-2:] != old[-2:]  # only COPY sources/ and its RUN are new layers
    finally:
        for image in engine.images.list(name=names.image_repository(name)):
            for tag in image.tags:
                engine.images.remove(tag, force=True)
        subprocess.run(["docker", "image", "prune", "-f", "--filter", f"label={labels.SNAPSHOT}={name}"],
                       capture_output=True)


# --- installers, broken installs: recorded, shown, never swapped silently -------------------------------------------
@pytest.fixture(scope="module")
def odd_env(tmp_path_factory):
    """A venv with a conda-installed distribution (its INSTALLER says conda), a metadata-only one (its module
    deleted by hand) and one installed with --no-deps (its requirement missing)."""
    root = tmp_path_factory.mktemp("odd-env")
    python = make_venv(root / "venv")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run(*pip, "setuptools>=64", "wheel", "six==1.16.0", "idna==3.7")
    needs = make_project(root / "src" / "needs-idna", "needs-idna")
    text = (needs / "pyproject.toml").read_text().replace('requires-python = ">=3.8"',
                                                            'requires-python = ">=3.8"\ndependencies = ["idna", '
                                                            '"tomli; python_version < \'3.11\'"]')
    (needs / "pyproject.toml").write_text(text)
    run(*pip, "--no-build-isolation", "--no-deps", needs)
    site = next((root / "venv" / "lib").glob("python*/site-packages"))
    (next(site.glob("six-*.dist-info")) / "INSTALLER").write_text("conda\n")
    gone = make_project(root / "src" / "gone-lib", "gone-lib")
    run(*pip, "--no-build-isolation", gone)
    (site / "gone_lib.py").unlink()
    run(python, "-m", "pip", "uninstall", "-q", "-y", "idna")
    return python


def test_odd_installs_are_recorded_and_shown(odd_env, project):
    from .conftest import yolosnap

    saved = yolosnap("save", "odd", "--python", odd_env, "--project", project)
    assert saved.returncode == 0, saved
    packages = {p["name"]: p for p in service.load("odd", project)["packages"]}
    assert packages["six"]["installer"] == "conda"
    assert packages["gone-lib"]["problem"].startswith("metadata only")
    assert packages["needs-idna"]["missing"] == ["idna"]  # tomli's marker is not evaluated: no false alarm
    for out in (saved.stdout, yolosnap("show", "odd", "--project", project).stdout):
        assert "gone-lib 0.1.0: metadata only" in out
        assert "needs-idna 0.1.0 needs idna, not installed" in out
        assert "1 distribution(s) were installed by conda (six)" in out
    assert "conda" in yolosnap("show", "odd", "--project", project).stdout.split("Packages", 1)[1]
    refused = yolosnap("build", "odd", "--project", project)
    assert refused.returncode == 2 and "--installers pypi" in refused.stderr, refused
    assert not (project / ".yolosnap" / "odd" / "Dockerfile").exists()


@pytest.mark.engine
def test_conda_swap_is_accepted_only_when_asked(odd_env, project, engine):
    from .conftest import yolosnap

    name = f"odd-{uuid.uuid4().hex[:8]}"
    service.save(name, str(odd_env), project)
    try:
        built = bake.build(name, project, installers="pypi")
        assert built.check.clean
        swapped = [c for c in built.check.shown if c.item == "six"]
        assert swapped and swapped[0].old == "1.16.0 (installed by conda)" and swapped[0].new == "1.16.0"
        assert engine.images.get(built.image).labels[labels.ACCEPTED] == "pypi"
        checked = yolosnap("check", name, "--project", project)
        assert checked.returncode == 0 and "installed by conda" in checked.stdout, checked
        assert "gone-lib 0.1.0: metadata only" in checked.stdout
    finally:
        for image in engine.images.list(name=names.image_repository(name)):
            for tag in image.tags:
                engine.images.remove(tag, force=True)
