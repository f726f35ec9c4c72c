"""Where a snapshot went and came from: ``.yolosnap/<name>/registry.json``, one record per push or pull.

Each record names the reference, the registry's digest of what was pushed or pulled (so a Kubernetes job can
run ``REPO@sha256:...``), the local image id and the snapshot digest it holds. The file is committed beside the
manifest like the rest of the snapshot, so teammates read where it was published; it is read as untrusted
input (size-limited, records of another shape dropped) and written atomically. It never holds a credential:
logins stay with the engine (``docker login``).
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from ..snapshot.store import Store, read_text, refuse_link, write_atomic
from ..exceptions import StoreError

RECORDS_FILE = "registry.json"
MAX_RECORDS = 200
MAX_BYTES = 1024 * 1024
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,400}")
OPS = ("push", "pull")


def _valid(record: object) -> bool:
    if not isinstance(record, dict) or set(record) != {"op", "reference", "digest", "image", "snapshot_digest", "at"}:
        return False
    return (record["op"] in OPS and isinstance(record["reference"], str) and _REFERENCE.fullmatch(record["reference"])
            is not None and (record["digest"] is None or isinstance(record["digest"], str)
                             and _DIGEST.fullmatch(record["digest"]) is not None)
            and isinstance(record["image"], str) and _DIGEST.fullmatch(record["image"]) is not None
            and isinstance(record["snapshot_digest"], str) and _DIGEST.fullmatch(record["snapshot_digest"]) is not None
            and isinstance(record["at"], str) and re.fullmatch(r"[0-9TZ:-]{1,32}", record["at"]) is not None)


def read(store: Store, name: str) -> list[dict]:
    """The records of snapshot ``name``, oldest first (an unreadable file or odd records count as none)."""
    path = store.folder(name) / RECORDS_FILE
    if not path.exists() and not path.is_symlink():
        return []
    refuse_link(path)
    try:
        text = read_text(path)
        data = json.loads(text) if len(text) <= MAX_BYTES else None
    except (StoreError, ValueError, RecursionError):
        return []
    records = data.get("records") if isinstance(data, dict) else None
    return [r for r in records if _valid(r)] if isinstance(records, list) else []


def append(store: Store, name: str, op: str, reference: str, digest: str | None, image: str,
           snapshot_digest: str) -> Path:
    """Add one record (the newest ``MAX_RECORDS`` are kept); returns the file."""
    record = {"op": op, "reference": reference, "digest": digest, "image": image,
              "snapshot_digest": snapshot_digest,
              "at": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")}
    if not _valid(record):
        raise StoreError(f"cannot record {op} of {reference!r}: not a reference this tool writes")
    records = [*read(store, name), record][-MAX_RECORDS:]
    path = store.folder(name) / RECORDS_FILE
    refuse_link(path)
    try:
        write_atomic(path, json.dumps({"records": records}, indent=2, sort_keys=True) + "\n")
    except OSError as err:
        raise StoreError(f"cannot write {path}: {err.strerror}; the {op} itself succeeded") from None
    return path


def published(store: Store, name: str, snapshot_digest: str) -> str | None:
    """``REPO@sha256:...`` of the newest push or pull of this very manifest that has a registry digest, or None."""
    for record in reversed(read(store, name)):
        if record["snapshot_digest"] == snapshot_digest and record["digest"]:
            reference = record["reference"].split("@", 1)[0]
            head, _, tail = reference.rpartition(":")
            repository = head if head and "/" not in tail else reference
            return f"{repository}@{record['digest']}"
    return None
