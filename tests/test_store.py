"""The store: names, project discovery, atomic and concurrent writes, history, and failures."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_yolosnap.snapshot import manifest
from jupyter_yolosnap.exceptions import InvalidName, ManifestError, SnapshotNotFound, StoreError
from jupyter_yolosnap.snapshot.store import Store, find_project, validate_name

from .test_manifest import sample


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("name", ["yolo-v5-base", "a", "v1.2_final", "A" * 63])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", "a\\b", ".hidden", "-x", "a..b", "A" * 64, "sp ace",
                                  "naïve", "x\n"])
def test_invalid_names(name):
    with pytest.raises(InvalidName, match="invalid snapshot name"):
        validate_name(name)


def test_project_is_nearest_ancestor_with_a_store(tmp_path, monkeypatch):
    (tmp_path / ".yolosnap").mkdir()
    deep = tmp_path / "notebooks" / "exp1"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_project() == tmp_path.resolve()
    assert Store().project == tmp_path.resolve()
    other = tmp_path.parent / f"{tmp_path.name}-nostore"
    other.mkdir()
    assert find_project(other) == other.resolve()


def test_explicit_project_must_exist(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "nope", explicit=True)


def test_save_then_load(project):
    store = Store(project, explicit=True)
    path, previous = store.save(sample())
    assert previous is None
    assert path == project / ".yolosnap" / "yolo-v5-base" / "snapshot.json"
    assert store.load("yolo-v5-base") == sample() | {"created": store.load("yolo-v5-base")["created"]}
    assert store.names() == ["yolo-v5-base"]
    assert ".lock-*" in (project / ".yolosnap" / ".gitignore").read_text()
    assert not list(project.rglob("*.tmp"))


def test_resave_keeps_previous_revision(project):
    store = Store(project, explicit=True)
    first = sample()
    store.save(first)
    assert store.save(sample())[1] == first["digest"]  # same environment: no new revision
    assert len(store.revisions("yolo-v5-base")) == 1
    second = sample(packages=[{"name": "numpy", "version": "2.2.0", "source": "index"}])
    store.save(second)
    revisions = store.revisions("yolo-v5-base")
    assert [r.current for r in revisions] == [False, True]
    assert store.load("yolo-v5-base@1")["digest"] == first["digest"]
    assert store.load("yolo-v5-base@2")["digest"] == store.load("yolo-v5-base")["digest"] == second["digest"]
    with pytest.raises(SnapshotNotFound, match="has 2 revision"):
        store.load("yolo-v5-base@3")
    with pytest.raises(InvalidName, match="invalid revision"):
        store.load("yolo-v5-base@latest")


def test_resaving_the_same_environment_keeps_the_first_save(project):
    store = Store(project, explicit=True)
    first = sample()
    path, _ = store.save(first)
    text = path.read_text()
    again = sample()
    again["created"] = "2030-01-01T00:00:00Z"
    assert store.save(again)[1] == first["digest"]
    assert path.read_text() == text and store.load("yolo-v5-base")["created"] == first["created"]
    assert not list(project.rglob("*.tmp"))


def test_missing_snapshot_names_the_known_ones(project):
    store = Store(project, explicit=True)
    store.save(sample())
    with pytest.raises(SnapshotNotFound, match=r"no snapshot named 'other'.*known: yolo-v5-base"):
        store.load("other")


def test_corrupt_manifest_is_a_clear_error_and_can_be_resaved(project):
    store = Store(project, explicit=True)
    path, _ = store.save(sample())
    path.write_text('{"schema_version": 1, "name": "yolo-v5-base", ')
    with pytest.raises(ManifestError, match="is not valid JSON"):
        store.load("yolo-v5-base")
    store.save(sample())  # the corrupt one is archived, the new one is current
    assert store.load("yolo-v5-base")["digest"] == sample()["digest"]
    assert len(store.revisions("yolo-v5-base")) == 2


_WRITER = """
import sys
from jupyter_yolosnap.snapshot.store import Store
from tests.test_manifest import sample
store = Store(sys.argv[1], explicit=True)
for i in range(int(sys.argv[3])):
    store.save(sample(packages=[{"name": "w", "version": f"{sys.argv[2]}.{i}", "source": "index"}]))
"""


def test_concurrent_writers_never_corrupt(project):
    """Four processes save the same name 15 times each; every file left is a valid manifest."""
    repo = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(project), str(w), "15"], cwd=repo)
             for w in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    store = Store(project, explicit=True)
    revisions = store.revisions("yolo-v5-base")
    assert len(revisions) == 60
    versions = {store.load(f"yolo-v5-base@{r.number}")["packages"][0]["version"] for r in revisions}
    assert versions == {f"{w}.{i}" for w in range(4) for i in range(15)}
    assert not list(project.rglob("*.tmp"))


@pytest.fixture
def read_only(tmp_path):
    """A really read-only folder: a read-only bind mount as root (root ignores mode bits), else chmod."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        ok = subprocess.run(["mount", "--bind", str(folder), str(folder)]).returncode == 0 and \
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)]).returncode == 0
        if not ok:
            subprocess.run(["umount", str(folder)])
            pytest.skip("cannot make a read-only mount here")
        yield folder
        subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def test_read_only_project_leaves_nothing(read_only):
    store = Store(read_only, explicit=True)
    with pytest.raises(StoreError, match=r"cannot write snapshots into .* make it writable or pass --project"):
        store.save(sample())
    assert listing(read_only) == []


def test_read_only_snapshot_folder_removes_nothing_and_adds_nothing(project):
    store = Store(project, explicit=True)
    store.save(sample())
    before = listing(project)
    folder = project / ".yolosnap" / "yolo-v5-base"
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
    else:
        folder.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="cannot write snapshots"):
            store.save(sample(packages=[]))
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(folder)], check=True)
        else:
            folder.chmod(0o755)
    assert listing(project) == before
    assert store.load("yolo-v5-base")["digest"] == sample()["digest"]


def test_manifest_written_is_what_dumps_produces(project):
    store = Store(project, explicit=True)
    m = sample()
    assert store.save(m)[0].read_text() == manifest.dumps(m)
