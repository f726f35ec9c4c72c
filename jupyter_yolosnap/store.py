"""Where snapshots live: ``<project>/.yolosnap/<name>/snapshot.json``, plus earlier revisions.

Writes are atomic (temp file in the same folder, fsync, ``os.replace``) and serialised per snapshot with an
advisory lock, so two kernels saving the same name never interleave. Re-saving a changed environment moves
the previous manifest into ``history/`` first, so every revision stays retrievable as ``NAME@N``.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import manifest as manifest_io
from .exceptions import InvalidName, SnapshotNotFound, StoreError

STORE_DIR = ".yolosnap"
MANIFEST_FILE = "snapshot.json"
HISTORY_DIR = "history"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_STORE_GITIGNORE = "# written by jupyter_yolosnap: lock and temp files are not part of a snapshot\n.lock-*\n*.tmp\n"


def validate_name(name: str) -> str:
    """Accept names that are one safe folder name everywhere: letters, digits, ``.``, ``_``, ``-``."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InvalidName(
            f"invalid snapshot name {name!r}: use 1-63 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit, no '/' or '..' (e.g. yolo-v5-base)")
    return name


def split_reference(ref: str) -> tuple[str, int | None]:
    """``name`` or ``name@N`` (N = revision number from ``history``)."""
    name, sep, rev = ref.partition("@")
    validate_name(name)
    if not sep:
        return name, None
    if not rev.isdigit() or int(rev) < 1:
        raise InvalidName(f"invalid revision in {ref!r}: use NAME@N with N a revision number from "
                          f"'yolosnap history {name}'")
    return name, int(rev)


def find_project(start: str | os.PathLike | None = None) -> Path:
    """The nearest ancestor of ``start`` (default: cwd) holding ``.yolosnap/``, else ``start`` itself."""
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / STORE_DIR).is_dir():
            return candidate
    return here


@dataclass(frozen=True)
class Revision:
    """One saved version of a snapshot; ``number`` counts from 1 (oldest)."""

    number: int
    path: Path
    current: bool


class Store:
    """The snapshots of one project."""

    def __init__(self, project: str | os.PathLike | None = None, *, explicit: bool = False):
        if project is not None and explicit:
            root = Path(project).expanduser()
            if not root.is_dir():
                raise StoreError(f"project directory {str(root)!r} does not exist; create it or pass another --project")
            self.project = root.resolve()
        else:
            self.project = find_project(project)

    @property
    def root(self) -> Path:
        return self.project / STORE_DIR

    def folder(self, name: str) -> Path:
        return self.root / validate_name(name)

    def names(self) -> list[str]:
        """Snapshot names that have a manifest, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if NAME_PATTERN.fullmatch(p.name) and (p / MANIFEST_FILE).is_file())

    def revisions(self, name: str) -> list[Revision]:
        """Every stored revision of ``name``, oldest first; the last is the current one."""
        folder = self.folder(name)
        history = sorted((folder / HISTORY_DIR).glob("*.json")) if (folder / HISTORY_DIR).is_dir() else []
        paths = [*history, folder / MANIFEST_FILE] if (folder / MANIFEST_FILE).is_file() else history
        return [Revision(i + 1, p, p.name == MANIFEST_FILE) for i, p in enumerate(paths)]

    def path_of(self, ref: str) -> Path:
        """The manifest file for ``name`` or ``name@N``; clear error when it is not stored."""
        name, number = split_reference(ref)
        revisions = self.revisions(name)
        if not revisions:
            known = ", ".join(self.names()) or "none yet"
            raise SnapshotNotFound(f"no snapshot named {name!r} in {self.project} (known: {known}); "
                                   f"save one with: %snapshot save {name}")
        if number is None:
            return revisions[-1].path
        if number > len(revisions):
            raise SnapshotNotFound(f"snapshot {name!r} has {len(revisions)} revision(s), not {number}; "
                                   f"see: yolosnap history {name}")
        return revisions[number - 1].path

    def load(self, ref: str) -> dict:
        """Read and validate a stored manifest."""
        path = self.path_of(ref)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise StoreError(f"cannot read {path}: {err.strerror}; check its permissions") from None
        return manifest_io.loads(text, where=str(path))

    def save(self, manifest: dict) -> tuple[Path, str | None]:
        """Write ``manifest`` as the current revision of its name, keeping the previous one in history.

        Returns the manifest's path and the digest of the revision it replaced (None for a first save).
        """
        name = validate_name(manifest["name"])
        text = manifest_io.dumps(manifest)
        folder = self.folder(name)
        created_folders = [p for p in (self.root, folder) if not p.exists()]
        try:
            self._ensure_store()
            folder.mkdir(exist_ok=True)
            with self._locked(name):
                current = folder / MANIFEST_FILE
                temp = _write_temp(folder, text)
                previous = None
                try:
                    if current.is_file():
                        previous = self._archive(current, manifest.get("digest"))
                    os.replace(temp, current)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(temp)
                    raise
            _fsync_dir(folder)
            return current, previous
        except OSError as err:
            for path in reversed(created_folders):
                shutil.rmtree(path, ignore_errors=True)
            raise StoreError(_write_failure(self.project, err)) from None

    def delete(self, name: str) -> None:
        """Remove snapshot ``name`` with all its revisions (images built from it are left alone).

        Under the snapshot's lock the folder is first renamed out of the store in one step, so a reader sees
        the whole snapshot or none of it; the renamed copy is then removed.
        """
        name = validate_name(name)
        self.path_of(name)  # a clear SnapshotNotFound when there is nothing to delete
        try:
            with self._locked(name):
                trash = Path(tempfile.mkdtemp(dir=self.root, prefix=f".deleted-{name}-"))
                os.replace(self.folder(name), trash / name)
            _fsync_dir(self.root)
        except OSError as err:
            raise StoreError(_write_failure(self.project, err)) from None
        shutil.rmtree(trash, ignore_errors=True)

    def _ensure_store(self) -> None:
        self.root.mkdir(exist_ok=True)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            os.replace(_write_temp(self.root, _STORE_GITIGNORE), ignore)

    def _archive(self, current: Path, new_digest: str | None) -> str:
        """Keep the manifest being replaced, unless it holds the same environment; return its digest."""
        try:
            previous = json.loads(current.read_text(encoding="utf-8"))
        except ValueError:
            previous = {"created": "unreadable", "digest": "sha256:" + os.urandom(6).hex()}
        if not isinstance(previous, dict):
            previous = {"created": "unreadable", "digest": "sha256:" + os.urandom(6).hex()}
        if previous.get("digest") == new_digest:
            return new_digest
        history = current.parent / HISTORY_DIR
        history.mkdir(exist_ok=True)
        stamp = str(previous.get("created", "unknown")).replace(":", "").replace("-", "")
        digest = str(previous.get("digest", "sha256:unknown")).split(":")[-1][:12]
        target = history / f"{stamp}-{digest}.json"
        if not target.exists():
            with contextlib.suppress(OSError):
                os.link(current, target)
            if not target.exists():
                shutil.copy2(current, target)
        return str(previous.get("digest"))

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """An exclusive advisory lock per snapshot: concurrent writers queue instead of interleaving."""
        with open(self.root / f".lock-{name}", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _write_temp(folder: Path, text: str) -> str:
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return temp


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_failure(project: Path, err: OSError) -> str:
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write snapshots into {project} ({err.strerror}); make it writable or pass "
                "--project DIR with a writable folder")
    if err.errno == errno.ENOSPC:
        return f"no space left to write the snapshot in {project}; free some disk space and save again"
    return f"cannot write the snapshot in {project}: {err.strerror or err}; check the folder and save again"
