"""Manifest -> build plan: which base, which system packages, which pins in which layer.

Layers are ordered so caches survive change (most stable first): system packages, then the heavy ML
distributions, then the other pinned distributions, then local, VCS and editable sources. A plan is data;
:mod:`.dockerfile` renders it.
"""
from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from ..snapshot import grammar
from ..capture.packages import normalize_name
from ..exceptions import UnsafeValue
from .compat import is_heavy, torch_family_indexes

STRATEGIES = ("wheelhouse", "pinned")
#: Never removed from an image even when the snapshot lacks it: the build and later deltas need it.
KEPT_FROM_BASE = frozenset({"pip"})


@dataclass(frozen=True)
class BuildPlan:
    """What to install on top of ``base``, grouped by layer."""

    base: str
    strategy: str
    system_packages: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    heavy: tuple[dict, ...] = ()
    index: tuple[dict, ...] = ()
    local: tuple[dict, ...] = ()
    index_urls: tuple[str, ...] = ()
    source_builds: bool = False  # pinned strategy: let pip build sdists inside the image (their code runs there)
    native: tuple[str, ...] = ()  # the Debian packages of native libraries (system_packages adds git for VCS)
    vcs: bool = False             # VCS sources: pip clones them, so git is installed


def requirement(pkg: dict) -> str:
    """The pip requirement that reinstalls an index package exactly: ``name==version``, both checked against the
    field grammar here too (a requirements line or pip argument must never be an option such as
    ``--index-url``)."""
    name = grammar.require("package-name", pkg.get("name"), "packages[].name")
    version = grammar.require("version", pkg.get("version"), f"the version of {name}")
    try:
        Version(version)
    except InvalidVersion:
        raise UnsafeValue(f"the version of {name} = {grammar.shorten(version)} is not a PEP 440 version, so pip "
                          "cannot pin it; fix the manifest or re-save the snapshot") from None
    return f"{name}=={version}"


def native_packages(manifest: dict) -> set[str]:
    """Debian packages providing the native libraries the capture found on the system."""
    return {grammar.require("deb-name", lib["package"], f"native_libs[{lib.get('soname')!r}].package")
            for lib in manifest.get("native_libs") or [] if lib.get("status") == "system" and lib.get("package")}


def system_packages(manifest: dict, base_packages: set[str]) -> tuple[str, ...]:
    """Debian packages providing the native libraries the capture found on the system, minus the base's own."""
    wanted = native_packages(manifest)
    if any(p["source"] == "vcs" for p in manifest["packages"]):
        wanted.add("git")  # pip clones VCS sources
    return tuple(sorted(wanted - base_packages))


def make_plan(manifest: dict, base: str, base_facts: dict, strategy: str = "wheelhouse",
              source_builds: bool = False) -> BuildPlan:
    """Group the manifest's packages into layers for ``base`` (whose own capture is ``base_facts``)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    wanted = {p["name"] for p in manifest["packages"]}
    in_base = {normalize_name(p["name"]) for p in base_facts.get("packages") or []}
    base_debs = {p["name"] for p in (base_facts.get("os") or {}).get("packages") or []}
    heavy, index, local = [], [], []
    for pkg in manifest["packages"]:
        if pkg["source"] != "index":
            local.append(pkg)
        elif is_heavy(pkg["name"]):
            heavy.append(pkg)
        else:
            index.append(pkg)
    return BuildPlan(
        base=base, strategy=strategy,
        system_packages=system_packages(manifest, base_debs), native=tuple(sorted(native_packages(manifest))),
        vcs=any(p["source"] == "vcs" for p in manifest["packages"]),
        remove=tuple(grammar.require("package-name", n, "a base image distribution")
                     for n in sorted(in_base - wanted - KEPT_FROM_BASE)),
        heavy=tuple(heavy), index=tuple(index), local=tuple(local),
        index_urls=tuple(torch_family_indexes(manifest["packages"])), source_builds=source_builds,
    )


def delta(old: dict, new: dict) -> tuple[list[dict], list[str]] | None:
    """Index packages to install and names to remove to turn ``old``'s image into ``new``'s.

    None when a delta is not safe: anything but index pins changed (Python, system libraries, local sources)
    or a heavy distribution moved, since those deserve the full, layered build.
    """
    if old["python"].get("version") != new["python"].get("version"):
        return None
    if system_packages(old, set()) != system_packages(new, set()):
        return None
    before = {p["name"]: p for p in old["packages"]}
    after = {p["name"]: p for p in new["packages"]}
    install, remove = [], []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        for pkg in (a, b):
            if pkg is not None and (pkg["source"] != "index" or is_heavy(name)):
                return None
        if b is None:
            remove.append(name)
        else:
            install.append(b)
    return install, remove
