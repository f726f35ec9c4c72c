"""Every installed distribution, and how it got there (PEP 610), read from metadata files only."""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Iterator

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


class Distribution:
    """One ``*.dist-info`` (or ``*.egg-info``) folder found on ``sys.path``."""

    __slots__ = ("info_dir", "site_dir", "headers")

    def __init__(self, info_dir: str, site_dir: str, headers: dict[str, str]):
        self.info_dir, self.site_dir, self.headers = info_dir, site_dir, headers

    def read_text(self, name: str) -> str | None:
        try:
            with open(os.path.join(self.info_dir, name), encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return None

    def locate(self, relative: str) -> str:
        return os.path.normpath(os.path.join(self.site_dir, relative))


def _read_headers(info_dir: str) -> dict[str, str]:
    for name in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(info_dir, name), encoding="utf-8", errors="replace") as handle:
                return _headers(handle.read(16384))
        except (OSError, IsADirectoryError):
            continue
    if os.path.isfile(info_dir):  # a single-file egg-info holds PKG-INFO itself
        try:
            with open(info_dir, encoding="utf-8", errors="replace") as handle:
                return _headers(handle.read(16384))
        except OSError:
            pass
    return {}


def iter_distributions(path: list[str] | None = None) -> Iterator[Distribution]:
    """Distributions in ``sys.path`` order; a name seen twice is shadowed, as for imports and pip.

    This is what ``importlib.metadata.distributions()`` finds, read directly: importing that module costs
    more than the whole scan of a typical environment.
    """
    seen: set[str] = set()
    for entry in sys.path if path is None else path:
        site_dir = entry or os.getcwd()
        try:
            names = sorted(os.listdir(site_dir))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            info_dir = os.path.join(site_dir, name)
            headers = _read_headers(info_dir)
            if not headers.get("name"):
                continue
            key = normalize_name(headers["name"])
            if key in seen:
                continue
            seen.add(key)
            yield Distribution(info_dir, site_dir, headers)


def _shared_objects(dist: Distribution) -> list[str]:
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
            found.append(dist.locate(path))
    return found


def probe_packages() -> tuple[list[dict], dict[str, list[str]]]:
    """Return the package records (sorted by name) and each distribution's shared objects."""
    records: list[dict] = []
    shared: dict[str, list[str]] = {}
    for dist in iter_distributions():
        raw = dist.read_text("direct_url.json")
        try:
            direct = json.loads(raw) if raw else None
        except ValueError:
            direct = None
        record = {"name": normalize_name(dist.headers["name"]), "version": dist.headers.get("version", "")}
        record.update(source_of(direct))
        installer = (dist.read_text("INSTALLER") or "").strip()
        if installer:
            record["installer"] = installer
        record["requested"] = os.path.exists(os.path.join(dist.info_dir, "REQUESTED"))
        if dist.headers.get("requires-python"):
            record["requires_python"] = dist.headers["requires-python"]
        records.append(record)
        objects = _shared_objects(dist)
        if objects:
            shared[record["name"]] = objects
    records.sort(key=lambda r: r["name"])
    return records, shared
