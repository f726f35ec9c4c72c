"""Which project a request means: the notebook's folder under the server's root, found as the CLI finds it.

The store is the nearest folder holding ``.yolosnap/`` from ``root_dir/path`` upwards, but never above
``root_dir``: a request can only reach what the server itself serves.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from tornado.web import HTTPError

from ..snapshot.store import open_store
from ..snapshot.store import STORE_DIR, Store


def folder_of(root_dir: str, path: str | None) -> Path:
    """``root_dir/path`` after refusing absolute paths, ``..`` and links that lead outside ``root_dir``."""
    rel = (path or "").strip().replace("\\", "/")
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":") or ".." in PurePosixPath(rel).parts:
        raise HTTPError(400, f"path {path!r} must be a folder relative to the server's root, without '..'; "
                             "pass the notebook's folder as shown in the file browser")
    root = Path(root_dir).expanduser().resolve()
    try:
        folder = (root / rel).resolve()
        is_dir = folder.is_dir()
    except OSError as err:  # a name too long, a loop of links
        raise HTTPError(400, f"path {path[:60]!r} cannot be a folder here ({err.strerror}); pass the notebook's "
                             "folder") from None
    if folder != root and root not in folder.parents:
        raise HTTPError(400, f"path {path!r} leads outside the server's root (a link?); pass a folder inside it")
    if not is_dir:
        raise HTTPError(404, f"folder {rel!r} does not exist under the server's root; pass the notebook's folder")
    return folder


def store_for(root_dir: str, path: str | None) -> Store:
    """The store of the project holding ``root_dir/path`` (that folder itself when none holds one)."""
    folder = folder_of(root_dir, path)
    root = Path(root_dir).expanduser().resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / STORE_DIR).is_dir():
            return open_store(candidate)
        if candidate == root:
            break
    return open_store(folder)
