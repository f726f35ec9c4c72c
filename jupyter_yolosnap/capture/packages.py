"""Every installed distribution, and how it got there (PEP 610), read from metadata files only."""
from __future__ import annotations

import json
import re
from importlib import metadata
from typing import Iterable

from .urls import strip_credentials

_NORMALIZE = re.compile(r"[-_.]+")


def normalize_name(name: str) -> str:
    """PEP 503 normalisation, so ``Foo_Bar`` and ``foo-bar`` are one distribution."""
    return _NORMALIZE.sub("-", name).lower()


def _headers(text: str) -> dict[str, str]:
    """Read the first METADATA headers only: the body (long description) can be megabytes."""
    out: dict[str, str] = {}
    for line in text.split("\n"):
        if not line.strip():
            break
        if line[:1] in (" ", "\t") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        out.setdefault(key.strip().lower(), value.strip())
    return out


def source_of(direct_url: dict | None) -> dict:
    """Turn a PEP 610 ``direct_url.json`` into this manifest's ``source`` fields."""
    if not direct_url:
        return {"source": "index"}
    url = strip_credentials(str(direct_url.get("url", "")))
    if "vcs_info" in direct_url:
        vcs = direct_url["vcs_info"]
        out = {"source": "vcs", "url": url, "vcs": vcs.get("vcs"), "commit": vcs.get("commit_id")}
        if vcs.get("requested_revision"):
            out["requested_revision"] = vcs["requested_revision"]
    elif "archive_info" in direct_url:
        info = direct_url["archive_info"]
        digest = info.get("hash")
        hashes = info.get("hashes") or {}
        if not digest and hashes:
            algo = "sha256" if "sha256" in hashes else sorted(hashes)[0]
            digest = f"{algo}={hashes[algo]}"
        out = {"source": "archive", "url": url, "hash": digest}
    else:
        editable = bool((direct_url.get("dir_info") or {}).get("editable"))
        out = {"source": "editable" if editable else "directory", "url": url}
    if direct_url.get("subdirectory"):
        out["subdirectory"] = direct_url["subdirectory"]
    return out


def _shared_objects(dist: metadata.Distribution) -> list[str]:
    """Absolute paths of the ELF files a distribution installed, from its RECORD, for the native scan."""
    record = dist.read_text("RECORD")
    if not record:
        return []
    found = []
    for line in record.splitlines():
        if ".so" not in line:
            continue
        path = line.rsplit(",", 2)[0].strip('"')
        name = path.rsplit("/", 1)[-1]
        if name.endswith(".so") or ".so." in name:
            found.append(str(dist.locate_file(path)))
    return found


def iter_distributions() -> Iterable[metadata.Distribution]:
    """Distributions in import order; a name seen twice is shadowed (pip shows the first, so do we)."""
    seen: set[str] = set()
    for dist in metadata.distributions():
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
        headers = _headers(text)
        name = headers.get("name")
        if not name:
            continue
        key = normalize_name(name)
        if key in seen:
            continue
        seen.add(key)
        dist._yolosnap_headers = headers  # type: ignore[attr-defined]
        yield dist


def probe_packages() -> tuple[list[dict], dict[str, list[str]]]:
    """Return the package records (sorted by name) and each distribution's shared objects."""
    records: list[dict] = []
    shared: dict[str, list[str]] = {}
    for dist in iter_distributions():
        headers = dist._yolosnap_headers  # type: ignore[attr-defined]
        raw = dist.read_text("direct_url.json")
        try:
            direct = json.loads(raw) if raw else None
        except ValueError:
            direct = None
        record = {"name": normalize_name(headers["name"]), "version": headers.get("version", "")}
        record.update(source_of(direct))
        installer = (dist.read_text("INSTALLER") or "").strip()
        if installer:
            record["installer"] = installer
        record["requested"] = dist.read_text("REQUESTED") is not None
        if headers.get("requires-python"):
            record["requires_python"] = headers["requires-python"]
        records.append(record)
        objects = _shared_objects(dist)
        if objects:
            shared[record["name"]] = objects
    records.sort(key=lambda r: r["name"])
    return records, shared
