"""What the recipe must know about the outside world: wheel indexes, base image tags, heavy wheels.

The facts live in ``data/*.json``, each file with its ``source`` and the date it was ``updated``, and are read
once per process. The functions here only look them up, so a new torch, CUDA or Debian release is a data
edit, not a code change. They are pure (no engine, no network); every refusal is a :class:`RecipeError`
whose one-line message says what is wrong and what to do.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ..capture.packages import normalize_name
from ..exceptions import RecipeError

__all__ = [
    "TORCH_FAMILY",
    "check_requires_python",
    "compat_table",
    "cuda_base_image",
    "debian_codename",
    "is_heavy",
    "needs_system_cuda",
    "python_base_image",
    "requires_python_failures",
    "torch_family_indexes",
    "torch_index_url",
]

_DATA = Path(__file__).with_name("data")
_TABLES = ("torch_indexes", "cuda_base_images", "python_base_images", "heavy_packages")
_PYTHON_XYZ = re.compile(r"^\d+\.\d+\.\d+$")
_CUDA_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.\d+)*$")


@lru_cache(maxsize=None)
def compat_table(name: str) -> dict[str, Any]:
    """One file of ``recipe/data`` (``torch_indexes``, ``cuda_base_images``...), read once; do not modify it."""
    if name not in _TABLES:
        raise ValueError(f"unknown compatibility table {name!r}; known: {', '.join(_TABLES)}")
    with open(_DATA / f"{name}.json", encoding="utf-8") as handle:
        return json.load(handle)


def _data_path(name: str) -> str:
    return f"recipe/data/{name}.json"


# ------------------------------------------------------------------------------------- torch indexes

#: Distributions the PyTorch index publishes as ``+cuXXX`` / ``+cpu`` / ``+rocmX.Y`` builds (PEP 503 names).
TORCH_FAMILY: frozenset[str] = frozenset(compat_table("torch_indexes")["packages"])


def torch_index_url(version: str, name: str = "torch") -> str | None:
    """The PyTorch index serving this build, or None when PyPI serves it (no local ``+label``).

    PyPI never serves local versions such as ``2.1.2+cu121``, so reinstalling one needs the PyTorch index
    for that label. Labels come from the data table, not from a pattern: an unknown one is refused here,
    before the build, instead of failing inside pip. A ``.dev`` build lives under ``nightly/``, where old
    nightlies do not stay forever.
    """
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise RecipeError(f"{name} {version!r} is not a valid version: pin a released build of {name} "
                          "or pass --base with an image that already has it") from None
    if parsed.local is None:
        return None
    table = compat_table("torch_indexes")
    directory = table["local_versions"].get(parsed.local)
    if directory is None:
        raise RecipeError(f"{name} {version}: '+{parsed.local}' is not a known PyTorch build, so its wheel index "
                          f"is unknown: pass the index with --extra-index-url or add the build to "
                          f"{_data_path('torch_indexes')}")
    if parsed.dev is not None:
        directory = f"nightly/{directory}"
    return table["base_url"] + directory


def torch_family_indexes(packages: Iterable[dict]) -> list[str]:
    """The distinct PyTorch index URLs a manifest's index-installed torch-family pins need, sorted."""
    urls = set()
    for pkg in packages:
        if pkg.get("source", "index") != "index" or normalize_name(pkg["name"]) not in TORCH_FAMILY:
            continue
        url = torch_index_url(pkg["version"], name=pkg["name"])
        if url:
            urls.add(url)
    return sorted(urls)


# -------------------------------------------------------------------------------------- base images


def _with_mirror(image: str, mirror: str | None) -> str:
    """A Docker Hub reference (``python:3.11.7-slim-bookworm``, ``nvidia/cuda:...``) pulled through ``mirror``.

    A prefix without a path is a registry host (``mirror.example.invalid:5000``): the image keeps its full
    Docker Hub name there, official images included (``library/python``). A prefix with a path
    (``mirror.example.invalid/library/``) is used as given, followed by the name as it is typed for Docker
    Hub (``python``, ``nvidia/cuda``). Trailing and repeated slashes are normalised.
    """
    if mirror is None or not mirror.strip():
        return image
    prefix = re.sub(r"/+", "/", mirror.strip()).rstrip("/")
    if "://" in mirror:
        raise RecipeError(f"registry mirror {mirror!r} has a URL scheme: give it as host[:port][/path], "
                          "without 'https://'")
    if not prefix or prefix.startswith("/") or any(ch.isspace() for ch in prefix):
        raise RecipeError(f"registry mirror {mirror!r} is not host[:port][/path]: give the registry host, "
                          "optionally with the path its images live under")
    if "/" in prefix:
        return f"{prefix}/{image}"
    repository = image.split(":", 1)[0]
    return f"{prefix}/{image}" if "/" in repository else f"{prefix}/library/{image}"


def python_base_image(version: str, codename: str = "bookworm", mirror: str | None = None) -> str:
    """The official slim Debian ``python`` image for this exact Python (``python:3.11.7-slim-bookworm``).

    Exact to the micro version because pins are checked against ``Requires-Python`` with it: Debian's own
    3.11.2 cannot install ``soupsieve==4.1.3`` (``>=3.11.5``) that the kernel's 3.11.7 ran.
    """
    if not isinstance(version, str) or not _PYTHON_XYZ.match(version.strip()):
        raise RecipeError(f"Python version {version!r} is not X.Y.Z: official python images are tagged by full "
                          "version; use the snapshot's full version (e.g. 3.11.7) or pass --base")
    table = compat_table("python_base_images")
    if codename not in table["codenames"]:
        raise RecipeError(f"Debian codename {codename!r} has no official python image (known: "
                          f"{', '.join(table['codenames'])}): use one of those or add it to "
                          f"{_data_path('python_base_images')}")
    return _with_mirror(f"{table['image']}:{version.strip()}-slim-{codename}", mirror)


def debian_codename(manifest_os: dict | None) -> str:
    """The Debian release to base on for a manifest's ``os`` section: the kernel's own when it ran Debian.

    Any other system (Ubuntu, Fedora, nothing recorded) gets the default, since the base is Debian anyway
    and the Python inside it is the image's own build.
    """
    table = compat_table("python_base_images")
    known = table["debian_versions"]
    system = manifest_os or {}
    if str(system.get("id") or "").strip().lower() == "debian":
        by_version = known.get(str(system.get("version_id") or "").strip())
        if by_version:
            return by_version
        codename = str(system.get("codename") or "").strip().lower()
        if codename in known.values():
            return codename
    return table["default_codename"]


def cuda_base_image(cuda: str, cudnn_major: int | None = None, flavor: str = "runtime",
                    os_tag: str = "ubuntu22.04", mirror: str | None = None) -> str:
    """An ``nvidia/cuda`` tag ``<x.y.z>-[cudnn<N>-]<flavor>-<os>`` that the data table says exists.

    ``cuda`` is what torch or nvcc reports (``12.1``, ``12.1.105``); the tag uses the newest patch release
    known to be tagged for that minor version. The cuDNN word changed over time (``cudnn8`` up to 12.2,
    ``cudnn9`` for 12.3, a bare ``cudnn`` from 12.4.1), which is why it comes from the table.
    """
    match = _CUDA_VERSION.match(str(cuda).strip())
    if not match:
        raise RecipeError(f"CUDA version {cuda!r} is not like '12.1': pass the version torch.version.cuda or "
                          "nvcc reports")
    minor = f"{int(match.group(1))}.{int(match.group(2))}"
    table = compat_table("cuda_base_images")
    entry = table["versions"].get(minor)
    if entry is None:
        raise RecipeError(f"no {table['image']} base image is known for CUDA {minor} (known: "
                          f"{', '.join(table['versions'])}): pass --base or add it to "
                          f"{_data_path('cuda_base_images')}")
    if flavor not in table["flavors"]:
        raise RecipeError(f"{table['image']} has no {flavor!r} flavor: use one of {', '.join(table['flavors'])}")
    if os_tag not in entry["os"]:
        raise RecipeError(f"no {table['image']} {entry['tag_version']} image is known for {os_tag} (known: "
                          f"{', '.join(entry['os'])}): use one of those, pass --base, or add it to "
                          f"{_data_path('cuda_base_images')}")
    parts = [entry["tag_version"]]
    if cudnn_major is not None:
        word = entry["cudnn"].get(str(cudnn_major))
        if word is None:
            majors = ", ".join(f"cuDNN {m}" for m in entry["cudnn"])
            raise RecipeError(f"{table['image']} {entry['tag_version']} images carry {majors}, not cuDNN "
                              f"{cudnn_major}: use that cuDNN, a CUDA whose images carry cuDNN {cudnn_major}, "
                              "or pass --base")
        if flavor not in table["cudnn_flavors"]:
            raise RecipeError(f"{table['image']} has no cuDNN variant of the {flavor!r} flavor: use "
                              f"{' or '.join(table['cudnn_flavors'])}, or no cuDNN")
        parts.append(word)
    parts += [flavor, os_tag]
    return _with_mirror(f"{table['image']}:{'-'.join(parts)}", mirror)


def needs_system_cuda(manifest: dict) -> bool:
    """Whether the image needs a CUDA toolkit of its own (an ``nvidia/cuda`` base) rather than python-slim.

    Pip wheels of torch >= 2 bring the CUDA runtime and cuDNN as ``nvidia-*`` wheels, so torch alone does not;
    a recorded ``nvcc`` means something built against the system toolkit (custom ops, JIT extensions).
    """
    return (manifest.get("cuda") or {}).get("nvcc") is not None


# ---------------------------------------------------------------------------------- Requires-Python


def _python(version: str) -> Version:
    try:
        return Version(str(version).strip())
    except InvalidVersion:
        raise RecipeError(f"Python version {version!r} is not a version: use X.Y.Z, e.g. 3.11.7") from None


def requires_python_failures(packages: Iterable[dict], python_version: str) -> list[str]:
    """One line per pin whose ``Requires-Python`` excludes ``python_version``: what pip would refuse.

    Checked before the build so the failure names every pin at once. Malformed specifiers (legacy
    metadata) are ignored, as pip ignores them.
    """
    target = _python(python_version)
    lines = []
    for pkg in packages:
        spec = pkg.get("requires_python")
        if not isinstance(spec, str) or not spec.strip():
            continue
        try:
            allowed = SpecifierSet(spec)
        except InvalidSpecifier:
            continue
        if not allowed.contains(target, prereleases=True):
            lines.append(f"{pkg['name']} {pkg['version']} requires Python {' '.join(spec.split())}")
    return lines


def check_requires_python(packages: Iterable[dict], python_version: str,
                          snapshot_python: str | None = None) -> None:
    """Raise one :class:`RecipeError` naming the pins (at most three) that cannot run on ``python_version``."""
    failures = requires_python_failures(packages, python_version)
    if not failures:
        return
    shown = "; ".join(failures[:3])
    if len(failures) > 3:
        shown += f"; and {len(failures) - 3} more"
    what = "pinned package cannot" if len(failures) == 1 else "pinned packages cannot"
    wanted = f"Python {snapshot_python} (the snapshot's)" if snapshot_python else "the snapshot's Python"
    raise RecipeError(f"{len(failures)} {what} run on Python {python_version} ({shown}): "
                      f"use a base image with {wanted} or pass --base")


# ------------------------------------------------------------------------------------ heavy packages


@lru_cache(maxsize=1)
def _heavy() -> tuple[frozenset[str], tuple[str, ...], frozenset[str]]:
    table = compat_table("heavy_packages")
    return frozenset(table["names"]), tuple(table["prefixes"]), frozenset(table.get("not_heavy", ()))


def is_heavy(name: str) -> bool:
    """Whether a distribution is a large wheel that gets its own image layer, so other pin changes reuse it."""
    names, prefixes, exceptions = _heavy()
    normalized = normalize_name(name)
    return normalized not in exceptions and (normalized in names or normalized.startswith(prefixes))
