"""Snapshot archives on the real engine: export, remove the image, import into a fresh project (verified, ``check``
clean, ``%%in_env`` runs in it), and every tampered archive refused in one line with nothing left behind."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from jupyter_yolosnap import bake, runtime, service
from jupyter_yolosnap.engine import labels
from jupyter_yolosnap.events import Event
from jupyter_yolosnap.exceptions import ArchiveError, NoVerifiedImage, SnapshotExists
from jupyter_yolosnap.share import archive
from jupyter_yolosnap.snapshot import manifest as manifest_io, names
from jupyter_yolosnap.snapshot.store import open_store

from .conftest import yolosnap
from .share_support import Built, build_six_snapshot, fresh_project, remove_snapshot_images, save_other_environment
from .engine_support import BASE_TAG

pytestmark = pytest.mark.engine


@dataclass
class Exported(Built):
    """The module's snapshot, and its archive exported once."""
    root: Path = Path()
    archive: Path = Path()
    export_seconds: float = 0.0


@pytest.fixture(scope="module")
def built(tmp_path_factory, engine, base_image):
    """One snapshot (a venv with six) built once on the stand-in base, and its archive exported once."""
    root = tmp_path_factory.mktemp("share-archive")
    name, project, result = build_six_snapshot(tmp_path_factory, root, "share")
    started = time.perf_counter()
    exported = archive.export(open_store(project), name, root / f"{name}.tar.gz")
    seconds = time.perf_counter() - started
    yield Exported.of(name, project, result, root=root, archive=exported.path, export_seconds=seconds)
    runtime.stop()
    remove_snapshot_images(engine, name)


def members_of(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        return [(info, tar.extractfile(info).read() if info.isreg() else b"") for info in tar.getmembers()]


@pytest.fixture(scope="module")
def members(built) -> list[tuple[tarfile.TarInfo, bytes]]:
    return members_of(built.archive)


def sums(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {info.name}\n" for info, data in entries
                   if info.name != archive.SUMS).encode()


def write_archive(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]], resum: bool = False) -> Path:
    """A tar.gz of ``entries`` (gzip level 0: quick); ``resum``: SHA256SUMS recomputed, as a careful forger would."""
    if resum:
        entries = [(info, sums(entries)) if info.name == archive.SUMS else (info, data) for info, data in entries]
    with gzip.open(path, "wb", compresslevel=0) as handle:
        with tarfile.open(fileobj=handle, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
            for info, data in entries:
                info = tarfile.TarInfo(info.name) if info.isreg() else info
                if info.isreg():
                    info.size = len(data)
                tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def entry(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def replace_member(entries, name: str, data: bytes):
    return [(info, data) if info.name == name else (info, old) for info, old in entries]


def image_tar(entries) -> bytes:
    return b"".join(data for info, data in entries if info.name.startswith(archive.PART_PREFIX))


def with_image_tar(entries, tar_bytes: bytes):
    """``entries`` with the image parts replaced by ``tar_bytes`` cut into parts of the same size."""
    parts = [tar_bytes[i:i + archive.PART_BYTES] for i in range(0, len(tar_bytes), archive.PART_BYTES)]
    head = [e for e in entries if not e[0].name.startswith(archive.PART_PREFIX) and e[0].name != archive.SUMS]
    tail = [e for e in entries if e[0].name == archive.SUMS]
    return head + [entry(f"{archive.PART_PREFIX}{i:06d}", part) for i, part in enumerate(parts)] + tail


def edit_image_tar(tar_bytes: bytes, edit) -> bytes:
    """Rewrite the ``docker save`` tar: ``edit(members)`` gets and returns (TarInfo, bytes) pairs."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        inner = [(info, tar.extractfile(info).read() if info.isreg() else b"") for info in tar.getmembers()]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in edit(inner):
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


class Leftovers:
    """What an import could leave: images of the snapshot (or the one it loaded), registered snapshots, temp files,
    probe containers. Only images this test can bring are compared: other tests change the engine meanwhile."""

    def __init__(self, engine, project: Path, folder: Path, name: str, *image_ids: str):
        self.engine, self.project, self.folder, self.name = engine, project, folder, name
        self.watched = set(image_ids)
        self.images = self._images()
        self.files = self._files()

    def _images(self) -> set[str]:
        present = set(self.engine.api.images(all=True, quiet=True))  # one call: others remove images meanwhile
        labelled = {row["Id"] for row in self.engine.api.images(
            all=True, filters={"label": f"{labels.SNAPSHOT}={self.name}"})}
        return (present & self.watched) | labelled

    def _files(self) -> set[str]:
        return {str(p) for root in (self.project, self.folder) for p in root.rglob("*")
                if not p.name.endswith(".tar.gz")}  # the archives the test writes

    def assert_nothing_left(self) -> None:
        assert self._images() - self.images == set(), "the refused import left an image"
        assert open_store(self.project).names() == [], "the refused import registered a snapshot"
        assert self._files() - self.files == set(), "the refused import left files"
        probes = self.engine.api.containers(all=True, filters={"label": f"{labels.ROLE}=probe"})
        assert not [c for c in probes if c.get("ImageID") in self.watched]


# ------------------------------------------------------------------------------------------------------ tests


def test_the_archive_layout(built, members):
    names_in_order = [info.name for info, _ in members]
    assert names_in_order[:4] == [archive.INDEX, archive.MANIFEST, "Dockerfile", "requirements/index.txt"]
    parts = [n for n in names_in_order if n.startswith(archive.PART_PREFIX)]
    assert parts == [f"{archive.PART_PREFIX}{i:06d}" for i in range(len(parts))] and len(parts) > 1
    assert names_in_order[-1] == archive.SUMS and len(names_in_order) == 4 + len(parts) + 1
    assert all(info.isreg() for info, _ in members)
    index = json.loads(members[0][1])
    assert index == {**index, "format": "jupyter_yolosnap-archive", "version": 1, "snapshot": built.name,
                     "digest": built.manifest["digest"], "image": built.image_id}
    assert members[-1][1] == sums(members)  # sha256sum -c would pass
    # the manifest is the stored one; the image tar names no tag (saved by id)
    assert manifest_io.loads(members[1][1].decode())["digest"] == built.manifest["digest"]
    with tarfile.open(fileobj=io.BytesIO(image_tar(members)), mode="r:") as tar:
        inner = json.load(tar.extractfile("manifest.json"))
    assert len(inner) == 1 and not inner[0]["RepoTags"]
    # gzip of several members (one per block): any gzip reader reads it
    with gzip.open(built.archive) as handle:
        assert handle.read(512)[:len(archive.INDEX)] == archive.INDEX.encode()


def test_export_remove_import_into_a_fresh_project_is_verified_and_runs(built, engine, tmp_path, monkeypatch):
    remove_snapshot_images(engine, built.name)
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(built.image_id)
    fresh = fresh_project(tmp_path)
    events: list[Event] = []
    started = time.perf_counter()
    imported = archive.import_archive(open_store(fresh), built.archive, listener=events.append)
    seconds = time.perf_counter() - started
    print(f"export {built.export_seconds:.1f} s, import {seconds:.1f} s "
          f"({built.archive.stat().st_size / 1e6:.0f} MB archive)")
    assert imported.image == built.tag and imported.image_id == built.image_id and imported.checked
    assert engine.images.get(built.tag).id == built.image_id
    assert engine.images.get(f"{names.image_repository(built.name)}:latest").id == built.image_id
    assert service.load(built.name, fresh)["digest"] == built.manifest["digest"]
    folder = fresh / ".yolosnap" / built.name
    assert (folder / "Dockerfile").read_text() == (built.project / ".yolosnap" / built.name / "Dockerfile").read_text()
    assert (folder / "requirements" / "index.txt").is_file()
    assert bake.check(built.name, fresh).clean
    assert any(e.kind == "step" for e in events) and events[-1].message == f"verified: {built.tag}"

    # %%in_env runs in the imported snapshot
    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_yolosnap")
    try:
        with capture_output() as out:
            shell.run_cell_magic("in_env", f"{built.name} --project {fresh}",
                                 "import six\nprint('six', six.__version__)")
    finally:
        runtime.stop()
    assert "six 1.16.0" in out.stdout

    # the same archive again: nothing to replace, the same image
    again = archive.import_archive(open_store(fresh), built.archive)
    assert again.previous is None and again.image_id == built.image_id


def test_the_doors_export_and_import(built, engine, tmp_path, monkeypatch):
    """The same round trip through the doors: ``yolosnap import`` and ``check`` in a fresh project, exit codes and
    one-line refusals; ``%snapshot export`` of the imported snapshot gives the same image."""
    remove_snapshot_images(engine, built.name)
    fresh = fresh_project(tmp_path)
    done = yolosnap("import", built.archive, "--project", fresh)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == built.tag and "Imported snapshot" in done.stdout
    checked = yolosnap("check", built.name, "--project", fresh)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    again = yolosnap("import", built.archive, "--project", fresh)  # the same environment: nothing to replace
    assert again.returncode == 0, again.stderr

    missing = yolosnap("import", tmp_path / "nowhere.tar.gz", "--project", fresh)
    hostile = yolosnap("export", "--x", tmp_path / "x.tar.gz", "--project", fresh)
    for refused in (missing, hostile):
        assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert not (tmp_path / "x.tar.gz").exists()

    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_yolosnap")
    target = tmp_path / "again.tar.gz"
    with capture_output():
        shell.run_line_magic("snapshot", f"export {built.name} {target} --project {fresh}")
    index = json.loads(members_of(target)[0][1])
    assert index["image"] == built.image_id and index["digest"] == built.manifest["digest"]


def test_an_existing_snapshot_of_another_environment_is_replaced_only_when_asked(built, engine, tmp_path):
    fresh = fresh_project(tmp_path)
    store = open_store(fresh)
    other = save_other_environment(store, built.manifest)
    with pytest.raises(SnapshotExists) as refused:
        archive.import_archive(store, built.archive)
    assert "--replace" in str(refused.value) and "\n" not in str(refused.value)
    assert store.load(built.name)["digest"] == other["digest"]
    replaced = archive.import_archive(store, built.archive, replace=True, verify=False)
    assert replaced.previous == other["digest"]
    assert [r.number for r in store.revisions(built.name)] == [1, 2]
    assert store.load(f"{built.name}@1")["digest"] == other["digest"]
    assert store.load(built.name)["digest"] == built.manifest["digest"]


def _flip_byte(raw: bytes) -> bytes:
    data = bytearray(raw)
    data[len(data) // 3] ^= 0x55
    return bytes(data)


def _flip_in_image(entries):
    """One byte changed inside an image part (then compressed again, so gzip's CRC holds): only SHA256SUMS tells."""
    part = f"{archive.PART_PREFIX}000002"
    data = bytearray(dict((i.name, d) for i, d in entries)[part])
    data[len(data) // 2] ^= 0x01
    return replace_member(entries, part, bytes(data))


def _manifest_edited(entries):
    text = dict((i.name, d) for i, d in entries)[archive.MANIFEST].decode()
    return replace_member(entries, archive.MANIFEST, text.replace('"1.16.0"', '"1.17.0"').encode())


def _manifest_swapped(entries):
    manifest = manifest_io.loads(dict((i.name, d) for i, d in entries)[archive.MANIFEST].decode())
    manifest["packages"] = [p for p in manifest["packages"] if p["name"] != "six"]
    manifest["digest"] = manifest_io.compute_digest(manifest)
    return replace_member(entries, archive.MANIFEST, manifest_io.dumps(manifest).encode())


def _insert_after_manifest(*extra):
    def edit(entries):
        return entries[:2] + list(extra) + entries[2:]
    return edit


def _symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, b""


def _newer_format(entries):
    index = json.loads(entries[0][1])
    index["version"] = 2
    return replace_member(entries, archive.INDEX, json.dumps(index).encode())


def _without_recipe(entries):
    return [e for e in entries if e[0].name not in ("Dockerfile", "requirements/index.txt")]


def _inner_repo_tags(entries):
    def edit(inner):
        out = []
        for info, data in inner:
            if info.name == "manifest.json":
                doc = json.loads(data)
                doc[0]["RepoTags"] = [BASE_TAG]
                data = json.dumps(doc).encode()
                info.size = len(data)
            out.append((info, data))
        return out
    return with_image_tar(entries, edit_image_tar(image_tar(entries), edit))


def _inner_link_out(entries):
    def edit(inner):
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        return [(link, b""), *inner]
    return with_image_tar(entries, edit_image_tar(image_tar(entries), edit))


def _inner_device(entries):
    def edit(inner):
        device = tarfile.TarInfo("null")
        device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3
        return [(device, b""), *inner]
    return with_image_tar(entries, edit_image_tar(image_tar(entries), edit))


# (id, how the archive is made, expected fragment of the one line, whether SHA256SUMS is recomputed)
TAMPERED = [
    ("one-byte-flipped", "raw", "is damaged", False),
    ("truncated", "raw", "truncated", False),
    ("checksum-of-an-image-part", _flip_in_image, "checksum of 'image/part-000002' does not match", False),
    ("member-replaced", lambda e: replace_member(e, "Dockerfile", b"FROM scratch\n"),
     "checksum of 'Dockerfile' does not match", False),
    ("manifest-edited", _manifest_edited, "changed after it was saved", True),
    ("manifest-swapped", _manifest_swapped, "is not the snapshot its index names", True),
    ("traversal-member", _insert_after_manifest(entry("../x", b"owned\n")), "leaves the archive's folder", True),
    ("absolute-member", _insert_after_manifest(entry("/tmp/x", b"owned\n")), "is an absolute path", True),
    ("symlink-member", _insert_after_manifest(_symlink("Dockerfile", "/etc/passwd")), "is a symbolic link", True),
    ("extra-member", lambda e: e[:-1] + [entry("notes.txt", b"hi\n")] + e[-1:],
     "expected SHA256SUMS, found member 'notes.txt'", True),
    ("extra-member-in-the-recipe", _insert_after_manifest(entry("notes.txt", b"hi\n")),
     "expected the recipe (Dockerfile, requirements/*.txt) or the image parts, found member 'notes.txt'", True),
    ("member-after-sums", lambda e: e + [entry("notes.txt", b"hi\n")], "comes after SHA256SUMS", False),
    ("duplicate-member", lambda e: e[:2] + [e[1]] + e[2:], "'snapshot.json' appears twice", True),
    ("missing-members", _without_recipe, "which the archive does not hold", False),
    ("missing-manifest", lambda e: e[:1] + e[2:], "expected snapshot.json, found member 'Dockerfile'", True),
    ("oversize-manifest", lambda e: replace_member(e, archive.MANIFEST, b" " * (33 * 1024 * 1024)),
     "more than a manifest can be", True),
    ("newer-format", _newer_format, "archive format 2, newer than this jupyter_yolosnap reads", True),
    ("image-tar-names-a-tag", _inner_repo_tags, f"would tag [{BASE_TAG!r}] on this engine", True),
    ("image-tar-links-out", _inner_link_out, "outside the image tar", True),
    ("image-tar-has-a-device", _inner_device, "holds a device", True),
]


@pytest.mark.parametrize("case, make, message, resum", TAMPERED, ids=[t[0] for t in TAMPERED])
def test_tampered_archives_are_refused_in_one_line_leaving_nothing(built, members, engine, tmp_path, case, make,
                                                                   message, resum):
    path = tmp_path / "tampered.tar.gz"
    raw = built.archive.read_bytes()
    if case == "one-byte-flipped":
        path.write_bytes(_flip_byte(raw))
    elif case == "truncated":
        path.write_bytes(raw[:len(raw) // 2])
    else:
        write_archive(path, make(list(members)), resum=resum)
    fresh = fresh_project(tmp_path)
    left = Leftovers(engine, fresh, tmp_path, built.name, built.image_id)
    with pytest.raises(ArchiveError) as refused:
        archive.import_archive(open_store(fresh), path)
    line = str(refused.value)
    assert message in line and "\n" not in line, line
    left.assert_nothing_left()
    assert not (fresh / ".yolosnap").exists() and not (fresh.parent / "x").exists()


def test_a_refused_import_removes_the_image_it_loaded(built, members, engine, tmp_path):
    """The image is not on the engine: the engine loads it, the checksums then refuse the archive, and the loaded
    image goes again."""
    path = write_archive(tmp_path / "replaced.tar.gz", replace_member(list(members), "Dockerfile", b"FROM x\n"))
    for tag in (built.tag, f"{names.image_repository(built.name)}:latest"):
        engine.images.get(tag)  # present from the earlier tests or the fixture
    remove_snapshot_images(engine, built.name)
    fresh = fresh_project(tmp_path)
    base = engine.images.get(BASE_TAG)
    left = Leftovers(engine, fresh, tmp_path, built.name, built.image_id, base.id)
    with pytest.raises(ArchiveError, match="checksum of 'Dockerfile' does not match"):
        archive.import_archive(open_store(fresh), path)
    left.assert_nothing_left()
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(built.image_id)
    # an archive whose image is another one (the base, with its checksums recomputed) is refused by id
    other = b"".join(base.save())
    index = json.loads(members[0][1])
    swapped = replace_member(with_image_tar(list(members), other), archive.INDEX, json.dumps(index).encode())
    path = write_archive(tmp_path / "swapped.tar.gz", swapped, resum=True)
    with pytest.raises(ArchiveError, match="not the image its index names"):
        archive.import_archive(open_store(fresh), path)
    index["image"] = base.id
    path = write_archive(tmp_path / "swapped.tar.gz",
                         replace_member(swapped, archive.INDEX, json.dumps(index).encode()), resum=True)
    with pytest.raises(ArchiveError, match="is labelled snapshot None"):
        archive.import_archive(open_store(fresh), path)
    left.assert_nothing_left()
    engine.images.get(base.id)  # the base image was there before: it stays
    # and the untampered archive still imports (the image comes back)
    archive.import_archive(open_store(fresh), built.archive, verify=False)
    assert engine.images.get(built.tag).id == built.image_id


def test_export_is_atomic_and_refuses_without_a_verified_image(built, tmp_path, engine):
    target = tmp_path / "out" / "snap.tar.gz"
    target.parent.mkdir()

    class Stop(Exception):
        pass

    def stop_at_the_second_part(event: Event) -> None:
        if event.kind == "step" and event.step == 2:
            raise Stop

    with pytest.raises(Stop):
        archive.export(open_store(built.project), built.name, target, stop_at_the_second_part)
    assert list(target.parent.iterdir()) == []
    # a folder as the target: <name>.tar.gz in it, mode from the umask
    exported = archive.export(open_store(built.project), built.name, target.parent)
    assert exported.path == target.parent / f"{built.name}.tar.gz"
    assert [p.name for p in target.parent.iterdir()] == [exported.path.name]
    assert exported.path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert exported.bytes == exported.path.stat().st_size and exported.image_bytes > exported.bytes
    with pytest.raises(ArchiveError, match="does not exist"):
        archive.export(open_store(built.project), built.name, tmp_path / "nowhere" / "x.tar.gz")

    unbuilt = fresh_project(tmp_path)
    store = open_store(unbuilt)
    save_other_environment(store, built.manifest)
    with pytest.raises(NoVerifiedImage, match="build it first"):
        archive.export(store, built.name, tmp_path / "unbuilt.tar.gz")
    assert not (tmp_path / "unbuilt.tar.gz").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_archive_that_is_not_one(tmp_path):
    fresh = fresh_project(tmp_path)
    for name, data, message in (("empty.tar.gz", b"", "truncated"),
                                ("plain.tar.gz", b"not gzip at all", "is damaged"),
                                ("other.tar.gz", None, "is not a snapshot archive")):
        path = tmp_path / name
        if data is None:
            write_archive(path, [entry("README", b"hello\n")])
        else:
            path.write_bytes(data)
        with pytest.raises(ArchiveError, match=message):
            archive.import_archive(open_store(fresh), path)
    with pytest.raises(ArchiveError, match="no archive at"):
        archive.import_archive(open_store(fresh), tmp_path / "missing.tar.gz")
    assert not (fresh / ".yolosnap").exists()


def _umask() -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        return next(int(line.split()[1], 8) for line in handle if line.startswith("Umask:"))


# ------------------------------------------------------------------------ the image tar filter, without an engine


def _inner(members: list[tuple[str, str, bytes | str]], fmt=tarfile.PAX_FORMAT) -> bytes:
    """A tar of (kind, name, data or link target) members, as a docker save of some engine could write."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:", format=fmt) as tar:
        for kind, name, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, payload
                tar.addfile(info)
    return out.getvalue()


def _filtered(data: bytes, step: int = 777) -> bytes:
    tar = archive._ImageTar("archive 'x'")
    out = []
    for start in range(0, len(data), step):
        out += [bytes(piece) for piece in tar.feed(memoryview(data[start:start + step]))]
    return b"".join(out + tar.finish())


GOOD_MANIFEST = json.dumps([{"Config": "c.json", "RepoTags": None, "Layers": ["l/layer.tar"]}]).encode()


def test_the_image_filter_passes_what_docker_save_writes_and_sends_the_metadata_last():
    long_name = "blobs/sha256/" + "a" * 120  # a pax path record
    data = _inner([("file", "manifest.json", GOOD_MANIFEST), ("dir", "l/", b""), ("file", "l/VERSION", b"1.0"),
                   ("file", long_name, b"x" * 5000), ("link", "l/layer.tar", "../" + long_name),
                   ("file", "index.json", b'{"manifests": [{"annotations": {"other": "1"}}]}'),
                   ("file", "c.json", b"{}")])
    for step in (1, 511, 512, 4096, len(data)):
        out = _filtered(data, step)
        with tarfile.open(fileobj=io.BytesIO(out), mode="r:") as tar:
            found = [(m.name, m.type, tar.extractfile(m).read() if m.isreg() else m.linkname)
                     for m in tar.getmembers()]
        assert [name for name, _, _ in found] == ["l", "l/VERSION", long_name, "l/layer.tar", "c.json",
                                                  "manifest.json", "index.json"]
        assert dict((n, p) for n, _, p in found)[long_name] == b"x" * 5000
        assert dict((n, p) for n, _, p in found)["manifest.json"] == GOOD_MANIFEST


@pytest.mark.parametrize("members, fmt, message", [
    ([("file", "../evil", b"x")], tarfile.PAX_FORMAT, "leaves the archive's folder"),
    ([("file", "a/" * 60 + "../../x", b"x")], tarfile.PAX_FORMAT, "leaves the archive's folder"),  # pax path
    ([("file", "a/" * 60 + "../../x", b"x")], tarfile.GNU_FORMAT, "leaves the archive's folder"),  # GNU long name
    ([("file", "/etc/x", b"x")], tarfile.USTAR_FORMAT, "is an absolute path"),
    ([("link", "blobs/x", "../../etc/shadow")], tarfile.USTAR_FORMAT, "outside the image tar"),
    ([("link", "blobs/x", "/etc/shadow")], tarfile.USTAR_FORMAT, "outside the image tar"),
    ([("hard", "x", "/etc/shadow")], tarfile.USTAR_FORMAT, "holds a hard link"),
    ([("file", "x", b"1"), ("file", "x", b"2")], tarfile.USTAR_FORMAT, "holds 'x' twice"),
    ([("link", "manifest.json", "c.json")], tarfile.USTAR_FORMAT, "as something other than a file"),
    ([("file", "c.json", b"{}")], tarfile.USTAR_FORMAT, "has no manifest.json"),
    ([("file", "manifest.json", GOOD_MANIFEST[:-1] + b", {}]")], tarfile.USTAR_FORMAT, "exactly one image"),
    ([("file", "manifest.json", b"[{\"RepoTags\": [\"victim:latest\"]}]")], tarfile.USTAR_FORMAT,
     "would tag ['victim:latest']"),
    ([("file", "manifest.json", GOOD_MANIFEST), ("file", "repositories", b'{"victim": {"latest": "abc"}}')],
     tarfile.USTAR_FORMAT, "'repositories' file"),
    ([("file", "manifest.json", GOOD_MANIFEST),
      ("file", "index.json", b'{"manifests": [{"annotations": {"io.containerd.image.name": "victim:1"}}]}')],
     tarfile.USTAR_FORMAT, "index.json names an image"),
    ([("file", "manifest.json", b"[" * 100000)], tarfile.USTAR_FORMAT, "manifest.json is not JSON"),
])
def test_the_image_filter_refuses(members, fmt, message):
    with pytest.raises(ArchiveError) as refused:
        _filtered(_inner(members, fmt))
    assert message in str(refused.value) and "\n" not in str(refused.value), str(refused.value)


def test_the_image_filter_refuses_a_truncated_tar_and_data_after_its_end():
    data = _inner([("file", "manifest.json", GOOD_MANIFEST), ("file", "c.json", b"{}" * 300)])
    with pytest.raises(ArchiveError, match="tar is incomplete"):
        _filtered(data[:700])
    with pytest.raises(ArchiveError, match="has data after its end"):
        _filtered(data + b"\1" * 512)
