"""Wheels collected on the host, served to the build over loopback: builds with no index access inside.

Collection uses the host's own pip and its configuration (private indexes, ``find-links`` folders,
credentials), so credentials stay on the host: the build sees only a plain HTTP listing on 127.0.0.1. Wheels
are kept in a per-user cache, so a rebuild downloads nothing it already has, and they never enter an image
layer (a ``COPY`` of wheels would stay in the image for good).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from packaging import tags
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..snapshot import grammar
from ..engine.build import stop_requested
from ..events import Event, Listener, ignore
from ..exceptions import BuildCancelled, RecipeError, YolosnapError
from ..recipe.dockerfile import UV_VERSION, WHEEL_SERVER, local_path

DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")
#: What common backends ask for on top of ``requires`` when building an *editable* install (PEP 660's
#: ``get_requires_for_build_editable``): a build with no index cannot discover these, so they are collected too.
EDITABLE_EXTRAS = {"hatchling": ("editables",), "setuptools": ("wheel",), "pdm-backend": ("editables",),
                   "scikit-build-core": ("editables",)}
#: How long one host ``pip`` run may take (seconds) unless ``YOLOSNAP_PIP_TIMEOUT`` says otherwise.
PIP_TIMEOUT_S = 30 * 60
#: How often a running pip is looked at for a stop request (the server's cancel) or its deadline.
PIP_POLL_S = 0.25
_NO_MATCH = re.compile(r"(?:No matching distribution found for|satisfies the requirement) (\S+)")


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


def _short(value: object) -> str:
    """``repr`` of an untrusted value, cut to one readable line."""
    return grammar.shorten(value, 80)


def _checked_requirement(text: object, what: str) -> str:
    """``text`` if it is a plain PEP 508 requirement: never a pip option, a URL or a direct reference.

    Each one becomes an argument of the host's pip, where ``--find-links=/x`` or ``foo @ file:///x`` would turn a
    manifest into code run on this host. The manifest's grammar refuses such values on load; this is the check
    right where they are used, for values that reached here some other way.
    """
    if not isinstance(text, str) or not text.strip() or text.lstrip().startswith("-"):
        raise RecipeError(f"refusing {what} {_short(text)}: not a requirement (it would be read as a pip option); "
                          "fix or remove it")
    try:
        parsed = Requirement(text)
    except InvalidRequirement:
        raise RecipeError(f"refusing {what} {_short(text)}: not a valid requirement (PEP 508); fix or remove "
                          "it") from None
    if parsed.url:
        raise RecipeError(f"refusing {what} {_short(text)}: a direct reference ('name @ URL') would make the "
                          "host's pip fetch and build it; name a released version instead")
    return text


def _pin(pkg: dict) -> str:
    """``name==version`` of an index pin, once it parses back into exactly that name and that version."""
    name, version = pkg.get("name"), pkg.get("version")
    if not grammar.matches("package-name", name):  # the manifest grammar's own rule, checked again at its use
        raise RecipeError(f"refusing package name {_short(name)}: not a distribution name (PEP 508); fix or "
                          "remove it in snapshot.json")
    try:
        Version(version)
    except (InvalidVersion, TypeError):
        raise RecipeError(f"refusing version {_short(version)} of {name}: not a version (PEP 440); fix it in "
                          "snapshot.json") from None
    text = f"{name}=={version}"
    parsed = Requirement(_checked_requirement(text, "pin"))
    if canonicalize_name(parsed.name) != canonicalize_name(name) or [str(s) for s in parsed.specifier] != \
            [f"=={version}"] or parsed.marker or parsed.extras:
        raise RecipeError(f"refusing pin {_short(text)}: it does not read back as {name} version {version}; fix "
                          "it in snapshot.json")
    return text


def _index_url(url: object) -> str:
    """An extra index for the host's pip: http(s) only, one argument, never an option."""
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or any(c.isspace() for c in url):
        raise RecipeError(f"refusing index URL {_short(url)}: expected an http(s) URL without spaces")
    return url


def supported_tags(python_version: str) -> frozenset[tags.Tag]:
    """The wheel tags a CPython ``X.Y`` on this host's platform installs (the image runs on this machine)."""
    major, minor = (int(part) for part in python_version.split(".")[:2])
    platforms = list(tags.platform_tags())
    interpreter = f"cp{major}{minor}"
    return frozenset((*tags.cpython_tags((major, minor), platforms=platforms),
                      *tags.compatible_tags((major, minor), interpreter=interpreter, platforms=platforms)))


def _have(folder: Path, python_version: str) -> set[tuple[str, str]]:
    """(name, version) of the wheels in ``folder`` that a Python ``python_version`` can install.

    A cp311 wheel of a pin must not count for a cp312 snapshot: the build's ``--no-index`` install would fail.
    """
    supported = supported_tags(python_version)
    found = set()
    for wheel in folder.glob("*.whl"):
        try:
            name, version, _, wheel_tags = parse_wheel_filename(wheel.name)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if wheel_tags & supported:
            found.add((canonicalize_name(name), str(version)))
    return found


def _key(pkg: dict) -> tuple[str, str]:
    return canonicalize_name(pkg["name"]), str(Version(pkg["version"]))


def pip_timeout() -> float:
    """Seconds one host pip run may take: ``YOLOSNAP_PIP_TIMEOUT``, else 30 minutes."""
    raw = os.environ.get("YOLOSNAP_PIP_TIMEOUT", "").strip()
    if not raw:
        return PIP_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise RecipeError(f"YOLOSNAP_PIP_TIMEOUT={_short(raw)} must be a number of seconds above 0")
    return value


def _kill(proc: subprocess.Popen) -> None:
    """Kill pip and whatever it started (a build backend in ``--host-builds`` mode): its own process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=10)


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """pip's output once it ended; kills it at the deadline or when the build is stopped (server cancel)."""
    stop = stop_requested()
    deadline = time.monotonic() + timeout
    while True:
        try:
            return proc.communicate(timeout=max(0.01, min(PIP_POLL_S, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
        if stop is not None and stop.is_set():
            _kill(proc)
            raise BuildCancelled("the build was cancelled while collecting wheels")
        if time.monotonic() >= deadline:
            _kill(proc)
            raise RecipeError(f"collecting wheels timed out after {timeout:g} s; check this host's access to its "
                              "package index (pip config list), or allow longer with YOLOSNAP_PIP_TIMEOUT=SECONDS")


def _pip(python: str, args: list[str], requirements: list[str], what: str, quiet: bool = True) -> str:
    """Run the host's pip with ``requirements`` after ``--``, so none of them can be read as an option.

    Returns pip's standard output; raises ``_PipFailed`` (a ``RecipeError``) with pip's last error line.
    """
    argv = [python, "-m", "pip", *args, "--disable-pip-version-check", *(["-q"] if quiet else []), "--",
            *requirements]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    except OSError as err:
        raise RecipeError(f"cannot run {python} -m pip ({err.strerror}); check the collecting Python or use "
                          "--strategy pinned") from None
    stdout, stderr = _wait(proc, pip_timeout())
    if proc.returncode != 0:
        lines = [line for line in stderr.strip().splitlines() if line.strip() and "WARNING" not in line]
        errors = [line for line in lines if line.startswith("ERROR")]
        detail = (errors or lines or ["no output"])[-1]
        raise _PipFailed(detail.strip(), what)
    return stdout


class _PipFailed(RecipeError):
    """pip's own failure, before :func:`_explain_missing` may say it is a pin without a wheel."""

    def __init__(self, detail: str, what: str):
        super().__init__(f"collecting wheels for {what} failed: {detail[:300]}; check that each pin exists for "
                         "this platform and Python (or use --strategy pinned)")
        self.detail = detail


def _explain_missing(err: _PipFailed, missing: dict[str, dict], python_version: str, python: str,
                     extra: list[str]) -> RecipeError:
    """The one-line reason when pip found no wheel of a pin (``--only-binary``), with what to do instead.

    pip says the same for a release that has only an sdist and for one that does not exist: the index's listing
    (sdists included, nothing built) tells them apart; a release that does not exist keeps pip's own line.
    """
    match = _NO_MATCH.search(err.detail)
    try:
        wanted = canonicalize_name(Requirement(match.group(1)).name) if match else None
    except InvalidRequirement:
        wanted = None
    for pin, pkg in missing.items():
        if canonicalize_name(pkg["name"]) != wanted:
            continue
        released = _released(python, pkg["name"], extra)
        if released is not None and Version(pkg["version"]) not in released:
            return err
        major_minor = ".".join(python_version.split(".")[:2])
        return RecipeError(f"{pin} has no wheel for Python {major_minor} on this platform; building it on the host "
                           "would run its setup code: rebuild with --strategy pinned (it then builds inside the "
                           "image) or allow it with --host-builds")
    return err


def _released(python: str, name: str, extra: list[str]) -> set[Version] | None:
    """Every version of ``name`` the indexes list, sdists included (read from the listing: nothing is built);
    None when pip cannot say."""
    try:
        out = _pip(python, ["index", "versions", "--pre", *extra], [name], f"the releases of {name}", quiet=False)
    except _PipFailed:
        return None
    found = re.search(r"^Available versions: (.*)$", out, re.MULTILINE)
    if not found:
        return None
    versions = set()
    for text in found.group(1).split(","):
        with contextlib.suppress(InvalidVersion):
            versions.add(Version(text.strip()))
    return versions


@contextlib.contextmanager
def _landing(folder: Path) -> Iterator[Path]:
    """A private folder in the cache for one pip run; its finished wheels move into the cache at the end.

    A pip killed mid-download (timeout, cancel) leaves a half-written file there, never in the cache, and the
    folder goes in every case.
    """
    landing = Path(tempfile.mkdtemp(prefix=".incoming-", dir=folder))
    try:
        yield landing
        for wheel in landing.glob("*.whl"):
            os.replace(wheel, folder / wheel.name)
    finally:
        shutil.rmtree(landing, ignore_errors=True)


def collect(packages: list[dict], local: list[dict], python_version: str, index_urls: list[str],
            listener: Listener = ignore, host_builds: bool = False) -> Path:
    """Make sure the wheel cache holds every index pin and the build backends of local sources.

    Only wheels are taken (``--only-binary=:all:``): an sdist's build would run its code on this host, from a
    manifest that may come from anyone. ``host_builds`` allows that for the pins (``--host-builds``).
    """
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    have = _have(folder, python_version)
    if packages:  # the installer the Dockerfile uses for pins
        packages = [*packages, {"name": "uv", "version": UV_VERSION, "source": "index"}]
    pins = {_pin(pkg): pkg for pkg in packages}  # every pin checked, cached or not
    missing = {pin: pkg for pin, pkg in pins.items() if _key(pkg) not in have}
    extra = [f"--extra-index-url={_index_url(url)}" for url in index_urls]
    python = collector_python(python_version)
    if missing:
        listener(Event("phase", f"collecting {len(missing)} wheel(s) on the host ({len(pins) - len(missing)} "
                                "cached)"))
        binary = [] if host_builds else ["--only-binary=:all:"]
        with _landing(folder) as landing:
            try:
                _pip(python, ["wheel", "--no-deps", *binary, "-w", str(landing), *extra], list(missing),
                     f"{len(missing)} pinned package(s)")
            except _PipFailed as err:
                raise (err if host_builds else _explain_missing(err, missing, python_version, python, extra)) \
                    from None
    _collect_backends(python, folder, local, python_version, listener)
    return folder


def _collect_backends(python: str, folder: Path, local: list[dict], python_version: str,
                      listener: Listener) -> None:
    """Wheels of the build backends local sources need (the build has no index to fetch them from)."""
    backends = sorted({_checked_requirement(req, "build requirement") for pkg in local for req in build_requires(pkg)})
    if not backends:
        return
    major_minor = ".".join(python_version.split(".")[:2])
    digest = hashlib.sha256("\n".join(backends).encode()).hexdigest()[:16]
    marker = folder / f".backends-py{major_minor}-{digest}"
    if marker.exists():
        return
    listener(Event("phase", f"collecting build backends for {len(local)} local source(s)"))
    with _landing(folder) as landing:
        _pip(python, ["download", "--only-binary=:all:", "-d", str(landing)], backends,
             "the build backends of local sources")
    marker.touch()


def build_requires(pkg: dict) -> tuple[str, ...]:
    """``[build-system] requires`` of a local source (PEP 518 defaults when it has no pyproject.toml).

    The file is as untrusted as the manifest that points at it: every entry must be a plain requirement.
    """
    if pkg["source"] == "archive" and pkg["url"].endswith(".whl"):
        return ()
    path = local_path(pkg["url"])
    pyproject = Path(path, pkg.get("subdirectory") or "", "pyproject.toml") if path else None
    requires: tuple[str, ...] = DEFAULT_BUILD_REQUIRES
    if pyproject is not None and pyproject.is_file():
        requires = _declared_requires(pyproject)
    if pkg["source"] != "editable":
        return requires
    names = {canonicalize_name(Requirement(req).name) for req in requires}
    extras = (extra for backend, more in EDITABLE_EXTRAS.items() if backend in names for extra in more)
    return tuple(dict.fromkeys((*requires, *extras)))


def _declared_requires(pyproject: Path) -> tuple[str, ...]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        tomllib = None
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8")) if tomllib else {}
    except (OSError, ValueError):
        data = {}
    system = data.get("build-system") if isinstance(data, dict) else None
    requires = system.get("requires", DEFAULT_BUILD_REQUIRES) if isinstance(system, dict) else DEFAULT_BUILD_REQUIRES
    if not isinstance(requires, (list, tuple)):
        raise RecipeError(f"refusing [build-system] requires = {_short(requires)} in {pyproject}: expected a list "
                          "of requirements")
    return tuple(_checked_requirement(req, f"build requirement (in {pyproject})") for req in requires)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


def uv_binary(folder: Path, target: Path) -> Path:
    """The ``uv`` executable of the wheelhouse's uv wheel, copied out to ``target``/uv (mode 0755), for a delta
    layer to mount read-only: the installer is used inside the container and never enters the image. Only that
    one member of the wheel is read, by its fixed name; ``RecipeError`` when the wheel is not there."""
    wheels = sorted(folder.glob(f"uv-{UV_VERSION}-*.whl"))
    member = f"uv-{UV_VERSION}.data/scripts/uv"
    for wheel in wheels:
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
                target.mkdir(parents=True, exist_ok=True)
                binary = target / "uv"
                with open(binary, "wb") as out:
                    shutil.copyfileobj(source, out)
                binary.chmod(0o755)
                return binary
        except (KeyError, OSError, zipfile.BadZipFile):  # another platform's wheel, or a broken download
            continue
    raise RecipeError(f"the wheel cache {folder} has no usable uv {UV_VERSION} wheel for the delta build; build "
                      "again (the next collect fetches it) or pass --no-incremental")


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder``'s listing on loopback for one build; yield its URL.

    The fixed address the Dockerfile names is tried first (same RUN lines, so Docker's cache holds). Builds of
    this process that serve the same folder at the same time share one server (the Jupyter server's build
    jobs, two notebook builds), so each gets the fixed address; it stops when the last of them ends. When
    another process holds the address, any free port is used, at the price of that build's cache for the pip
    layers.
    """
    key = str(Path(folder).resolve())
    with _SERVING_LOCK:
        shared = _SERVING.get(key)
        if shared is None:
            shared = _SERVING[key] = _Served(_start_server(folder))
        shared.users += 1
    try:
        yield shared.url
    finally:
        with _SERVING_LOCK:
            shared.users -= 1
            last = shared.users == 0
            if last:
                del _SERVING[key]
        if last:
            shared.stop()


class _Served:
    """One running wheel server and how many builds use it."""

    def __init__(self, server: http.server.ThreadingHTTPServer):
        self.server = server
        self.users = 0
        self.url = f"http://{server.server_address[0]}:{server.server_address[1]}/"
        self.thread = threading.Thread(target=server.serve_forever, name="yolosnap-wheelhouse", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


_SERVING: dict[str, _Served] = {}
_SERVING_LOCK = threading.Lock()


def _start_server(folder: Path) -> http.server.ThreadingHTTPServer:
    parts = urlsplit(WHEEL_SERVER)
    handler = functools.partial(_QuietHandler, directory=str(folder))
    try:
        return http.server.ThreadingHTTPServer((parts.hostname, parts.port), handler)
    except OSError:
        try:
            return http.server.ThreadingHTTPServer((parts.hostname, 0), handler)
        except OSError as err:
            raise YolosnapError(f"cannot serve wheels on {parts.hostname} ({err.strerror}); check the loopback "
                                "interface") from None
