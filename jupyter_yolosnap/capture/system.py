"""The operating system: distribution, C library, kernel, and the Debian packages installed.

The dpkg database is read as a file rather than through ``dpkg-query`` because it is faster and works in
any image that has the file, with or without dpkg's tools.
"""
from __future__ import annotations

import os
import platform

DPKG_STATUS = "/var/lib/dpkg/status"


def read_os_release(path: str = "/etc/os-release") -> dict[str, str]:
    """Parse os-release's KEY=value lines (values may be quoted)."""
    out: dict[str, str] = {}
    for candidate in (path, "/usr/lib/os-release"):
        try:
            with open(candidate, encoding="utf-8") as handle:
                for line in handle:
                    key, sep, value = line.strip().partition("=")
                    if sep and key and not key.startswith("#"):
                        out[key] = value.strip().strip("'\"")
            return out
        except OSError:
            continue
    return out


def libc_version() -> dict:
    """glibc's version decides which manylinux wheels run; musl shows as unknown."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # type: ignore[union-attr]
        return {"name": name, "version": version}
    except (AttributeError, ValueError, OSError):
        lib, version = platform.libc_ver()
        return {"name": lib or None, "version": version or None}


def read_dpkg_status(path: str = DPKG_STATUS) -> list[dict]:
    """Installed Debian packages as ``{name, version, arch}``, sorted; empty when there is no dpkg."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return []
    packages = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.split("\n"):
            if line and line[0] not in " \t":
                key, _, value = line.partition(":")
                if key in ("Package", "Status", "Version", "Architecture"):
                    fields[key] = value.strip()
        if fields.get("Package") and fields.get("Status", "").endswith(" installed"):
            packages.append({"name": fields["Package"], "version": fields.get("Version", ""),
                             "arch": fields.get("Architecture", "")})
    packages.sort(key=lambda p: (p["name"], p["arch"]))
    return packages


def probe_system() -> dict:
    """The OS facts a base image is chosen by, and the package list a rebuild can draw system libraries from."""
    release = read_os_release()
    return {
        "id": release.get("ID"),
        "version_id": release.get("VERSION_ID"),
        "codename": release.get("VERSION_CODENAME"),
        "pretty_name": release.get("PRETTY_NAME"),
        "kernel": platform.release(),
        "libc": libc_version(),
        "packages": read_dpkg_status(),
    }
