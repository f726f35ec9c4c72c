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
from ..exceptions import SnapshotNotFound, StoreError
from .names import is_valid_name, split_reference, validate_name

STORE_DIR = ".yolosnap"
MANIFEST_FILE = "snapshot.json"
HISTORY_DIR = "history"
_STORE_GITIGNORE = "# written by jupyter_yolosnap: lock and temp files are not part of a snapshot\n.lock-*\n*.tmp\n"


def find_project(start: str | os.PathLike | None = None) -> Path:
    """The nearest ancestor of ``start`` (default: cwd) holding ``.yolosnap/``, else ``start`` itself."""
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / STORE_DIR).is_dir():
            return candidate
    return here


def open_store(project: str | os.PathLike | None = None) -> "Store":
    """``--project DIR`` if given (must exist), else the nearest ancestor with ``.yolosnap/``, else cwd."""
    return Store(project, explicit=project is not None)


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
        """``.yolosnap/<name>``; refused when it (or ``.yolosnap``) is a symbolic link: a cloned repository can hold
        links that point anywhere, and a snapshot is never read or written through one."""
        folder = self.root / validate_name(name)
        refuse_link(self.root)
        refuse_link(folder)
        return folder

    def names(self) -> list[str]:
        """Snapshot names that have a manifest, sorted."""
        if not self.root.is_dir():
            return []
        refuse_link(self.root)
        return sorted(p.name for p in self.root.iterdir()
                      if is_valid_name(p.name) and not p.is_symlink()
                      and (p / MANIFEST_FILE).is_file())

    def revisions(self, name: str) -> list[Revision]:
        """Every stored revision of ``name``, oldest first; the last is the current one."""
        folder = self.folder(name)
        refuse_link(folder / HISTORY_DIR)
        history = sorted(p for p in (folder / HISTORY_DIR).glob("*.json")
                         if not p.is_symlink()) if (folder / HISTORY_DIR).is_dir() else []
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
        return manifest_io.loads(read_text(path), where=str(path))

    def save(self, manifest: dict) -> tuple[Path, str | None]:
        """Write ``manifest`` as the current revision of its name, keeping the previous one in history.

        Returns the manifest's path and the digest of the revision it replaced (None for a first save).
        """
        name = validate_name(manifest["name"])
        manifest_io.validate(manifest, where=f"the capture for snapshot {name!r}")  # never write what load refuses
        text = manifest_io.dumps(manifest)
        folder = self.folder(name)
        created_folders = [p for p in (self.root, folder) if not p.exists()]
        try:
            self._ensure_store()
            folder.mkdir(exist_ok=True)
            with self._locked(name):
                current = folder / MANIFEST_FILE
                refuse_link(current)
                temp = _write_temp(folder, text)
                previous = None
                try:
                    if current.is_file():
                        previous = self._archive(current, manifest.get("digest"))
                    if previous is not None and previous == manifest.get("digest"):
                        os.unlink(temp)  # the same environment: the file keeps the time it was first saved
                    else:
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
            previous = json.loads(read_text(current))
        except (ValueError, RecursionError):
            previous = {"created": "unreadable", "digest": "sha256:" + os.urandom(6).hex()}
        if not isinstance(previous, dict):
            previous = {"created": "unreadable", "digest": "sha256:" + os.urandom(6).hex()}
        if previous.get("digest") == new_digest:
            return new_digest
        history = current.parent / HISTORY_DIR
        refuse_link(history)
        history.mkdir(exist_ok=True)
        target = history / history_name(previous)
        if target.parent != history or target.is_symlink():  # defence in depth: history_name allows no '/'
            raise StoreError(f"refusing to write history file {target}; remove it and save again")
        if not target.exists():
            with contextlib.suppress(OSError):
                os.link(current, target)
            if not target.exists():
                shutil.copy2(current, target)
        return str(previous.get("digest"))

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """An exclusive advisory lock per snapshot: concurrent writers queue instead of interleaving."""
        lock = self.root / f".lock-{validate_name(name)}"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, file_mode())
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise StoreError(f"{lock} is a symbolic link; remove it (locks are never followed) and try "
                                 "again") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def refuse_link(path: Path) -> None:
    """``StoreError`` when ``path`` is a symbolic link (snapshots are never read or written through links)."""
    if path.is_symlink():
        raise StoreError(f"{path} is a symbolic link; jupyter_yolosnap never follows links in .yolosnap (a cloned "
                         "repository could point them anywhere): replace it with a real folder or file")


def read_text(path: Path) -> str:
    """A store file's text, opened without following a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        if err.errno == errno.ELOOP:
            refuse_link(path)
        raise StoreError(f"cannot read {path}: {err.strerror}; check its permissions") from None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def history_name(previous: dict) -> str:
    """``<created, digits only>-<digest prefix>.json`` from the manifest being replaced, whatever it holds: a
    ``created`` of ``../../x`` names no path, only a file in ``history/``."""
    created = previous.get("created")
    stamp = re.sub(r"[^0-9TZ]", "", created)[:32] if isinstance(created, str) else ""
    digest = str(previous.get("digest") or "")
    prefix = digest[7:19] if re.fullmatch(r"sha256:[0-9a-f]{64}", digest) else os.urandom(6).hex()
    return f"{stamp or 'unknown'}-{prefix}.json"


def file_mode() -> int:
    """0666 less the process umask (read from /proc, so no thread ever changes it), like ``open()`` gives."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def _write_temp(folder: Path, text: str, mode: int | None = None) -> str:
    """A temp file beside the target, fsynced; ``mode``, by default 0666 less the umask (mkstemp's 0600 would
    hide history from teammates)."""
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode() if mode is None else mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return temp


def write_atomic(path: Path, text: str, mode: int | None = None) -> bool:
    """Write ``text`` to ``path`` in one step (temp file + rename; ``mode``, by default 0666 less the umask: 0600
    for a record only its owner may read), only when it changed; a link at ``path`` is replaced, never followed.
    The temp file's name starts with ``.`` and ends with ``.tmp``. Returns whether the file was written."""
    with contextlib.suppress(OSError, StoreError):
        if not path.is_symlink() and read_text(path) == text:
            return False
    temp = _write_temp(path.parent, text, mode)
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return True


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
