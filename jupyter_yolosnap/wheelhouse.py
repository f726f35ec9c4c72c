"""Wheels collected on the host, served to the build over loopback: builds with no index access inside.

Collection uses the host's own pip and its configuration (private indexes, ``find-links`` folders,
credentials), so credentials stay on the host: the build sees only a plain HTTP listing on 127.0.0.1. Wheels
are kept in a per-user cache, so a rebuild downloads nothing it already has, and they never enter an image
layer (a ``COPY`` of wheels would stay in the image for good).
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from .capture.packages import normalize_name
from .events import Event, Listener, ignore
from .exceptions import RecipeError, YolosnapError
from .recipe.dockerfile import UV_VERSION, WHEEL_SERVER, local_path
from .recipe.plan import requirement

DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")
#: What common backends ask for on top of ``requires`` when building an *editable* install (PEP 660's
#: ``get_requires_for_build_editable``): a build with no index cannot discover these, so they are collected too.
EDITABLE_EXTRAS = {"hatchling": ("editables",), "setuptools": ("wheel",), "pdm-backend": ("editables",),
                   "scikit-build-core": ("editables",)}


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "jupyter_yolosnap" / "wheelhouse"


def collector_python(version: str) -> str:
    """A host interpreter of the snapshot's ``X.Y``, so collected wheels have the tags the image needs."""
    major_minor = ".".join(version.split(".")[:2])
    for candidate in (sys.executable, shutil.which(f"python{major_minor}")):
        if not candidate:
            continue
        try:
            out = subprocess.run([candidate, "-c", "import platform; print(platform.python_version())"],
                                 capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if out.rsplit(".", 1)[0] == major_minor:
            return candidate
    raise RecipeError(f"the wheelhouse strategy collects wheels with a Python {major_minor} on this host and none "
                      f"was found; install one (python{major_minor} on PATH) or use --strategy pinned")


def _have(folder: Path) -> set[tuple[str, str]]:
    """(name, version) of the wheels already in ``folder``."""
    found = set()
    for wheel in folder.glob("*.whl"):
        parts = wheel.name.split("-")
        if len(parts) >= 5:
            found.add((normalize_name(parts[0]), parts[1].replace("_", "-")))
    return found


def _pip(python: str, args: list[str], what: str) -> None:
    done = subprocess.run([python, "-m", "pip", *args, "--disable-pip-version-check", "-q"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip() and "WARNING" not in line]
        errors = [line for line in lines if line.startswith("ERROR")]
        detail = (errors or lines or ["no output"])[-1]
        raise RecipeError(f"collecting wheels for {what} failed: {detail.strip()[:300]}; check that each pin "
                          "exists for this platform and Python (or use --strategy pinned)")


def collect(packages: list[dict], local: list[dict], python_version: str, index_urls: list[str],
            listener: Listener = ignore) -> Path:
    """Make sure the wheel cache holds every index pin and the build backends of local sources."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    have = _have(folder)
    if packages:  # the installer the Dockerfile uses for pins
        packages = [*packages, {"name": "uv", "version": UV_VERSION, "source": "index"}]
    missing = [p for p in packages if (p["name"], p["version"]) not in have]
    python = collector_python(python_version)
    if missing:
        listener(Event("phase", f"collecting {len(missing)} wheel(s) on the host ({len(packages) - len(missing)} "
                                "cached)"))
        extra = [arg for url in index_urls for arg in ("--extra-index-url", url)]
        _pip(python, ["wheel", "--no-deps", "-w", str(folder), *extra, *map(requirement, missing)],
             f"{len(missing)} pinned package(s)")
    backends = sorted({req for pkg in local for req in build_requires(pkg)})
    if backends:
        marker = folder / (".backends-" + "-".join(sorted(backends)).replace("/", "_").replace(" ", "")[:200])
        if not marker.exists():
            listener(Event("phase", f"collecting build backends for {len(local)} local source(s)"))
            _pip(python, ["download", "-d", str(folder), *backends], "the build backends of local sources")
            marker.touch()
    return folder


def build_requires(pkg: dict) -> tuple[str, ...]:
    """``[build-system] requires`` of a local source (PEP 518 defaults when it has no pyproject.toml)."""
    if pkg["source"] == "archive" and pkg["url"].endswith(".whl"):
        return ()
    path = local_path(pkg["url"])
    pyproject = Path(path, pkg.get("subdirectory") or "", "pyproject.toml") if path else None
    requires = DEFAULT_BUILD_REQUIRES
    if pyproject is not None and pyproject.is_file():
        try:
            import tomllib
        except ModuleNotFoundError:  # Python < 3.11
            tomllib = None
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8")) if tomllib else {}
        except (OSError, ValueError):
            data = {}
        requires = tuple(data.get("build-system", {}).get("requires", DEFAULT_BUILD_REQUIRES))
    if pkg["source"] != "editable":
        return requires
    names = {normalize_name(re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0]) for req in requires}
    extras = (extra for backend, more in EDITABLE_EXTRAS.items() if backend in names for extra in more)
    return tuple(dict.fromkeys((*requires, *extras)))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder``'s listing on loopback for one build; yield its URL.

    The fixed address the Dockerfile names is tried first (same RUN lines, so Docker's cache holds); when
    another build holds it, any free port is used, at the price of that build's cache for the pip layers.
    """
    parts = urlsplit(WHEEL_SERVER)
    handler = functools.partial(_QuietHandler, directory=str(folder))
    try:
        server = http.server.ThreadingHTTPServer((parts.hostname, parts.port), handler)
    except OSError:
        try:
            server = http.server.ThreadingHTTPServer((parts.hostname, 0), handler)
        except OSError as err:
            raise YolosnapError(f"cannot serve wheels on {parts.hostname} ({err.strerror}); check the loopback "
                                "interface") from None
    thread = threading.Thread(target=server.serve_forever, name="yolosnap-wheelhouse", daemon=True)
    thread.start()
    try:
        yield f"http://{parts.hostname}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
