"""The last failed build of each snapshot, kept beside the server's runtime files so the panel still says
"build failed" and why after a page reload or a server restart.

One file per snapshot: ``<jupyter runtime dir>/yolosnap-builds/<hash of project and name>.json``, mode 0600,
written in one step when a build fails (not when the user cancels it) and removed when a build of that snapshot
succeeds or the snapshot is deleted. It holds the snapshot's manifest digest at the time: a record of an older
manifest is stale and is not shown. Files are read back as untrusted text: a link, a file over
:data:`MAX_BYTES` or a body that is not the expected object counts as no record (and is removed).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ..snapshot.store import write_atomic

FOLDER = "yolosnap-builds"
MAX_BYTES = 256 * 1024
#: The log tail a record keeps for the panel's details toggle.
TAIL_EVENTS = 80
MAX_MESSAGE = 2000


def folder() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir()) / FOLDER


def path(name: str, project: Path) -> Path:
    """The record of snapshot ``name`` in ``project``; the file name is a hash, so no path is built from either."""
    key = hashlib.sha256(f"{project}\0{name}".encode()).hexdigest()[:32]
    return folder() / f"{key}.json"


def utc_iso(seconds: float | None = None) -> str:
    """A time (now by default) as the panel reads it: ``2026-12-04T21:31:16Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _line(text: str) -> str:
    return " ".join(str(text).split())[:MAX_MESSAGE]


def write(name: str, project: Path, digest: str | None, error: str, events: list[dict]) -> Path:
    """Record a failed build of ``name`` (its one-line cause and the last events) in one step, mode 0600."""
    target = path(name, project)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tail = [{"kind": _line(e.get("kind", "")), "message": _line(e.get("message", ""))} for e in events[-TAIL_EVENTS:]]
    body = {"name": name, "project": str(project), "digest": digest, "state": "failed", "error": _line(error),
            "finished": utc_iso(), "events": tail}
    write_atomic(target, json.dumps(body), mode=0o600)
    return target


def remove(name: str, project: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path(name, project).unlink()


def read(name: str, project: Path, digest: str | None = None) -> dict[str, Any] | None:
    """The failed build recorded for ``name`` (for the manifest ``digest`` when given), or None."""
    entry = path(name, project)
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:  # a link (ELOOP) or unreadable: not ours to trust
        remove(name, project)
        return None
    try:
        with os.fdopen(fd, "rb") as source:
            raw = source.read(MAX_BYTES + 1)
        body = json.loads(raw) if len(raw) <= MAX_BYTES else None
    except (OSError, ValueError, RecursionError):
        body = None
    if not _valid(body, name, project):
        remove(name, project)
        return None
    if digest is not None and body["digest"] != digest:
        return None  # the manifest changed since: that failure is not this snapshot's any more
    return body


def _valid(body: Any, name: str, project: Path) -> bool:
    if not isinstance(body, dict) or body.get("name") != name or body.get("project") != str(project):
        return False
    if body.get("state") != "failed" or not all(isinstance(body.get(k), str) for k in ("error", "finished")):
        return False
    if body.get("digest") is not None and not isinstance(body["digest"], str):
        return False
    events = body.get("events")
    return isinstance(events, list) and all(
        isinstance(e, dict) and isinstance(e.get("kind"), str) and isinstance(e.get("message"), str) for e in events)


def view(body: dict[str, Any], since: int = 0) -> dict[str, Any]:
    """A record as the build endpoint answers it: a failed job the panel did not see end."""
    events = body["events"][since:]
    return {"state": "failed", "events": events, "next": since + len(events), "error": body["error"],
            "image": None, "finished": body["finished"], "persisted": True}


def summary(body: dict[str, Any] | None) -> dict[str, str] | None:
    """A record as the list shows it."""
    return None if body is None else {"state": "failed", "error": body["error"], "finished": body["finished"]}
