"""Every installed distribution, and how it got there (PEP 610), read from metadata files only."""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Iterator
from urllib.parse import unquote, urlsplit

from . import sources
from .urls import strip_credentials

_NORMALIZE = re.compile(r"[-_.]+")
_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize_name(name: str) -> str:
    """PEP 503 normalisation, so ``Foo_Bar`` and ``foo-bar`` are one distribution."""
    return _NORMALIZE.sub("-", name).lower()


def _headers(text: str) -> dict[str, str]:
    """Read the first METADATA headers only: the body (long description) can be megabytes. ``Requires-Dist``
    repeats: its values are kept one per line."""
    out: dict[str, str] = {}
    for line in text.split("\n"):
        if not line.strip():
            break
        if line[:1] in (" ", "\t") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "requires-dist" and key in out:
            out[key] += "\n" + value.strip()
        else:
            out.setdefault(key, value.strip())
    return out


def unconditional_requirements(dist: "Distribution") -> list[str]:
    """Normalised names of the ``Requires-Dist`` entries without a marker (extras, platforms and Python versions
    are not evaluated here: no false alarms)."""
    names = []
    for line in (dist.headers.get("requires-dist") or "").split("\n"):
        if not line.strip() or ";" in line:
            continue
        match = _REQUIREMENT_NAME.match(line)
        if match:
            names.append(normalize_name(match.group(1)))
    return names


def metadata_only(dist: "Distribution") -> bool:
    """Whether a distribution's files are gone while its metadata stayed (a package folder deleted by hand): the
    first few files its RECORD names outside the metadata folder all missing."""
    record = dist.read_text("RECORD")
    if not record:
        return False
    info = os.path.basename(dist.info_dir)
    checked = 0
    for line in record.splitlines():
        path = line.rsplit(",", 2)[0].strip('"')
        if not path or path.startswith(("..", "/")) or path.split("/", 1)[0] == info or "__pycache__" in path:
            continue
        if os.path.lexists(dist.locate(path)):
            return False
        checked += 1
        if checked >= 5:
            break
    return checked > 0


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


def _local_folder(record: dict) -> str | None:
    """The folder of a directory or editable install (``file://`` URL), whose content a fingerprint covers."""
    if record.get("source") not in ("directory", "editable"):
        return None
    parts = urlsplit(record.get("url", ""))
    return unquote(parts.path) if parts.scheme == "file" else None


def probe_packages() -> tuple[list[dict], dict[str, list[str]]]:
    """Return the package records (sorted by name) and each distribution's shared objects."""
    records: list[dict] = []
    shared: dict[str, list[str]] = {}
    requirements: dict[str, list[str]] = {}
    listed: dict | None = None
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
        folder = _local_folder(record)
        if folder is not None:  # code can change without its version: fingerprint the content
            listed = sources.listed_in_image() if listed is None else listed
            found = sources.probe_source(folder, listed)
            if found is not None:
                record.update(found)
        if metadata_only(dist):
            record["problem"] = "metadata only: the files its RECORD lists are gone"
        records.append(record)
        requirements[record["name"]] = unconditional_requirements(dist)
        objects = _shared_objects(dist)
        if objects:
            shared[record["name"]] = objects
    installed = {r["name"] for r in records}
    for record in records:  # `pip install --no-deps x` leaves x without what it needs: say so, keep reproducing it
        missing = sorted(set(requirements[record["name"]]) - installed)
        if missing:
            record["missing"] = missing
    records.sort(key=lambda r: r["name"])
    return records, shared
