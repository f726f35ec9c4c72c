"""Snapshot names, and the one place every other name is derived from them.

A snapshot name is one safe folder name everywhere (``<project>/.yolosnap/<name>/``): 1-63 letters, digits,
``.``, ``_`` or ``-``, starting with a letter or digit, never ``..``. Docker repositories and Jupyter kernelspec
names allow only lower case and single separators, so a name that is not already such a component is encoded:
its lower-cased slug plus ``__`` and 8 hex digits of the name's SHA-256. A name that is kept as it is never
contains ``__``, so two different names never share an image repository or a kernelspec (``Foo`` and ``foo``:
``yolosnap/foo__1cbec737`` and ``yolosnap/foo``).
"""
from __future__ import annotations

import hashlib
import re

from ..exceptions import InvalidName
from .grammar import shorten

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
#: A path component of a Docker repository (distribution's reference grammar), also a valid kernelspec name.
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
IMAGE_NAMESPACE = "yolosnap"
KERNEL_PREFIX = "yolosnap-"


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(NAME_PATTERN.fullmatch(name)) and ".." not in name


def validate_name(name: object) -> str:
    """``name`` when it is a valid snapshot name, else an ``InvalidName`` that says what is allowed."""
    if not is_valid_name(name):
        raise InvalidName(
            f"invalid snapshot name {name!r}: use 1-63 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit, no '/' or '..' (e.g. yolo-v5-base)")
    return name  # type: ignore[return-value]


def split_reference(ref: str) -> tuple[str, int | None]:
    """``name`` or ``name@N`` (N = revision number from ``history``)."""
    if not isinstance(ref, str):
        raise InvalidName(f"invalid snapshot reference {shorten(ref)}: use NAME or NAME@N")
    name, sep, rev = ref.partition("@")
    validate_name(name)
    if not sep:
        return name, None
    if not (rev.isascii() and rev.isdigit()) or len(rev) > 9 or int(rev) < 1:  # '²' is a digit to isdigit
        raise InvalidName(f"invalid revision in {shorten(ref)}: use NAME@N with N a revision number from "
                          f"'yolosnap history {name}'")
    return name, int(rev)


def slug(name: str) -> str:
    """The name as one lower-case Docker/kernelspec component, injective over valid names (module docstring)."""
    validate_name(name)
    if _COMPONENT.fullmatch(name) and "__" not in name:
        return name
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "snapshot"
    return f"{base}__{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def container_hostname(name: str) -> str:
    """``snapshot-<slug>``: the host name of snapshot ``name``'s containers, so ``platform.node()`` and a shell
    prompt say where code runs (on the host network a container would otherwise show the host's name); a valid
    DNS label (a-z, 0-9 and ``-``, at most 63 characters)."""
    label = re.sub(r"[^a-z0-9-]+", "-", slug(name)).strip("-")
    return f"snapshot-{label}"[:63].rstrip("-")


def image_repository(name: str) -> str:
    """``yolosnap/<slug>``: where every image of snapshot ``name`` is tagged."""
    return f"{IMAGE_NAMESPACE}/{slug(name)}"


def image_tag(manifest: dict) -> str:
    """``yolosnap/<slug>:<12 hex of the manifest digest>``: the tag that means "verified for this manifest"."""
    return f"{image_repository(manifest['name'])}:{manifest['digest'].split(':')[1][:12]}"


def kernel_name(name: str) -> str:
    """``yolosnap-<slug>``: the kernelspec of snapshot ``name``'s restored kernel."""
    return KERNEL_PREFIX + slug(name)


def display_name(name: str) -> str:
    """What the kernel picker shows for snapshot ``name``'s kernel."""
    return f"{name} (snapshot container)"
