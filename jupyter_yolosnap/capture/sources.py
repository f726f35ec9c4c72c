"""Local sources (directory and editable installs): the files they consist of, and a fingerprint of that content.

A version number says nothing about an editable package whose code changed, so the manifest records a content
fingerprint: sha256 over the sorted file list with each file's mode and content hash. The file set is the one a
build copies into the image, so the same fingerprint can be computed again inside the image by ``check``:

- in a git work tree, what git keeps (tracked files, and untracked ones it does not ignore);
- elsewhere, the folder minus the patterns of its own ``.dockerignore`` and ``.gitignore``;
- never virtualenvs (any folder with a ``pyvenv.cfg``), caches, build output, ``*.egg-info``, or top-level data
  and run folders (``data/``, ``runs/``, ``wandb/``...).

Inside a built image the build leaves the exact list it copied in ``SOURCES_LIST``; the probe uses it there.
Standard library only: this runs in the probe.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
import subprocess

#: Written by the build inside the image: ``{path: [relative file, ...]}`` of every local source it copied.
SOURCES_LIST = "/opt/yolosnap/sources.json"
EXCLUDED_NAMES = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".yolosnap",
                            ".yolosnap-runs", ".ipynb_checkpoints", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                            ".tox", ".nox", ".eggs", ".DS_Store", ".env"})
EXCLUDED_PATTERNS = ("*.egg-info", "*.pyc", "*.pyo")
#: Top-level folders that hold data or run output, not code.
TOP_LEVEL_EXCLUDED = frozenset({"build", "dist", "data", "datasets", "runs", "wandb", "mlruns", "checkpoints",
                                "outputs", "lightning_logs"})
IGNORE_FILES = (".dockerignore", ".gitignore")
GIT_SAFE = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null")


def _excluded(parts: list, is_dir: bool) -> bool:
    name = parts[-1]
    if name in EXCLUDED_NAMES or any(fnmatch.fnmatch(name, p) for p in EXCLUDED_PATTERNS):
        return True
    return is_dir and len(parts) == 1 and name in TOP_LEVEL_EXCLUDED


def _ignore_patterns(root: str) -> list:
    """``(pattern, anchored, dir_only)`` from the folder's own ignore files (negations are not supported)."""
    patterns = []
    for name in IGNORE_FILES:
        try:
            with open(os.path.join(root, name), encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.strip()
            if not line or line.startswith(("#", "!")):
                continue
            dir_only = line.endswith("/")
            line = line.strip("/")
            if line:
                patterns.append((line, "/" in line, dir_only))
    return patterns


def _ignored(rel: str, is_dir: bool, patterns: list) -> bool:
    base = rel.rsplit("/", 1)[-1]
    for pattern, anchored, dir_only in patterns:
        if dir_only and not is_dir:
            continue
        if fnmatch.fnmatch(rel if anchored else base, pattern) or (anchored and fnmatch.fnmatch(rel, pattern + "/*")):
            return True
    return False


def git_files(root: str) -> list | None:
    """What git keeps in ``root`` (relative paths), or None outside a git work tree (or without git)."""
    try:
        done = subprocess.run(["git", *GIT_SAFE, "-C", root, "ls-files", "-z", "--cached", "--others",
                               "--exclude-standard"], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return [n for n in done.stdout.decode("utf-8", "surrogateescape").split("\0") if n]


def _walk(root: str) -> list:
    patterns = _ignore_patterns(root)
    found = []
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        prefix = [] if rel_folder == "." else rel_folder.split(os.sep)
        keep = []
        for name in sorted(dirs):
            parts = [*prefix, name]
            if os.path.exists(os.path.join(folder, name, "pyvenv.cfg")) or _excluded(parts, True) or \
                    _ignored("/".join(parts), True, patterns):
                continue
            if os.path.islink(os.path.join(folder, name)):
                found.append("/".join(parts))  # a link to a folder is copied as a link, never followed
                continue
            keep.append(name)
        dirs[:] = keep
        for name in files:
            parts = [*prefix, name]
            if not _excluded(parts, False) and not _ignored("/".join(parts), False, patterns):
                found.append("/".join(parts))
    return found


def file_set(root: str) -> list:
    """The relative paths (``/``-separated, sorted) of the files a build copies from the source at ``root``."""
    listed = git_files(root)
    if listed is None:
        return sorted(_walk(root))
    kept = []
    for rel in listed:
        parts = rel.split("/")
        if ".." in parts or any(_excluded(parts[:i + 1], i < len(parts) - 1) for i in range(len(parts))):
            continue
        if os.path.lexists(os.path.join(root, rel)):  # a tracked file deleted in the work tree is not there
            kept.append(rel)
    return sorted(kept)


def fingerprint(root: str, files: list) -> dict:
    """``{"fingerprint": "sha256:...", "files": N, "bytes": B}`` over ``files`` of ``root``: names, executable
    bits, link targets and contents, so any change of code (not only of version) moves it."""
    digest = hashlib.sha256()
    total = 0
    for rel in sorted(files):
        path = os.path.join(root, rel)
        try:
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                kind, body = "l", os.readlink(path).encode("utf-8", "surrogateescape")
            else:
                kind = "x" if info.st_mode & 0o111 else "f"
                with open(path, "rb") as handle:
                    body = handle.read()
        except OSError:
            kind, body = "?", b""
        total += len(body)
        digest.update(f"{rel}\0{kind}\0{hashlib.sha256(body).hexdigest()}\n".encode("utf-8", "surrogateescape"))
    return {"fingerprint": "sha256:" + digest.hexdigest(), "files": len(files), "bytes": total}


def listed_in_image() -> dict:
    try:
        with open(SOURCES_LIST, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def probe_source(path: str, listed: dict | None = None) -> dict | None:
    """The fingerprint of the local source at ``path``, None when it is not a folder here."""
    if not os.path.isdir(path):
        return None
    listed = listed_in_image() if listed is None else listed
    files = listed.get(path)
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        files = file_set(path)
    return fingerprint(path, files)
