"""Host-side wheel collection helpers and the loopback server.

The collection tests run the host's real pip, made hermetic: no pip configuration file, an index served on
127.0.0.1 by the test (or a server there that never answers), and a cache in the test's own folder. So no
traffic leaves 127.0.0.1 and nothing depends on this machine's pip settings.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import io
import os
import socket
import sys
import tarfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from jupyter_yolosnap.bake import wheelhouse
from jupyter_yolosnap.engine.build import stop_on
from jupyter_yolosnap.exceptions import BuildCancelled, RecipeError
from jupyter_yolosnap.recipe.dockerfile import UV_VERSION, WHEEL_SERVER

PY = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
MAJOR_MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"
CP = f"cp{sys.version_info.major}{sys.version_info.minor}"
OTHER_CP = f"cp{sys.version_info.major}{sys.version_info.minor + 1}"


def test_serves_the_folder_on_the_fixed_address_or_a_free_one(tmp_path):
    """Builds of one process that serve the same folder share the fixed address (same RUN lines, so Docker's
    cache holds for both); another folder, or another process holding the port, gets a free one."""
    import socket
    from urllib.parse import urlsplit

    (tmp_path / "six-1.16.0-py2.py3-none-any.whl").write_bytes(b"x")
    other = tmp_path / "other"
    other.mkdir()
    with wheelhouse.serve(tmp_path) as url:
        listing = urllib.request.urlopen(url, timeout=5).read().decode()
        assert "six-1.16.0-py2.py3-none-any.whl" in listing
        with wheelhouse.serve(tmp_path) as second:  # another build of this process at the same time
            assert second == url == WHEEL_SERVER
        assert "six-1.16.0" in urllib.request.urlopen(url, timeout=5).read().decode()  # still up for the first
        with wheelhouse.serve(other) as elsewhere:  # another folder: its own server
            assert elsewhere != url and elsewhere.startswith("http://127.0.0.1:")
    with pytest.raises(OSError):  # released when the last build ended
        urllib.request.urlopen(url, timeout=2)
    parts = urlsplit(WHEEL_SERVER)
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind((parts.hostname, parts.port))  # another process's build holds the address
    holder.listen()
    try:
        with wheelhouse.serve(tmp_path) as fallback:
            assert fallback != WHEEL_SERVER and "six-1.16.0" in urllib.request.urlopen(fallback, timeout=5).read().decode()
    finally:
        holder.close()
    with wheelhouse.serve(tmp_path) as again:  # the next build gets it back
        assert again == WHEEL_SERVER


def test_build_requires_of_local_sources(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["hatchling>=1.21"]\n')
    assert wheelhouse.build_requires({"source": "directory", "url": tmp_path.as_uri()}) == ("hatchling>=1.21",)
    # an editable build also asks the backend for more (hatchling: editables)
    assert wheelhouse.build_requires({"source": "editable", "url": tmp_path.as_uri()}) == ("hatchling>=1.21",
                                                                                            "editables")
    bare = tmp_path / "bare"
    bare.mkdir()
    assert wheelhouse.build_requires({"source": "editable", "url": bare.as_uri()}) == wheelhouse.DEFAULT_BUILD_REQUIRES
    assert wheelhouse.build_requires({"source": "archive", "url": "file:///x/a-1-py3-none-any.whl"}) == ()


@pytest.mark.parametrize("requires, refused", [
    ('["--index-url=http://127.0.0.1:9/", "setuptools"]', "'--index-url=http://127.0.0.1:9/'"),
    ('["setuptools @ file:///tmp/evil.tar.gz"]', "direct reference"),
    ('["setuptools >= 1; os_name ==="]', "not a valid requirement"),
    ('"setuptools"', "expected a list"),
    ('["ok", 3]', "refusing build requirement (in"),
])
def test_build_requires_from_an_untrusted_pyproject_are_refused(tmp_path, requires, refused):
    (tmp_path / "pyproject.toml").write_text(f"[build-system]\nrequires = {requires}\n")
    with pytest.raises(RecipeError) as err:
        wheelhouse.build_requires({"source": "directory", "url": tmp_path.as_uri()})
    assert refused in str(err.value) and "\n" not in str(err.value)


def test_cached_wheels_count_only_when_the_snapshot_python_can_install_them(tmp_path):
    for name in ("Foo_Bar-1.0-py3-none-any.whl", f"torch-2.1.2+cu121-{CP}-{CP}-linux_x86_64.whl",
                 f"numpy-2.1.3-{OTHER_CP}-{OTHER_CP}-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                 "junk.txt", "not-a-wheel.whl"):
        (tmp_path / name).write_bytes(b"")
    assert wheelhouse._have(tmp_path, PY) == {("foo-bar", "1.0"), ("torch", "2.1.2+cu121")}
    later = f"{sys.version_info.major}.{sys.version_info.minor + 1}"
    assert wheelhouse._have(tmp_path, later) == {("foo-bar", "1.0"), ("numpy", "2.1.3")}


# --- the host's real pip, hermetic ---------------------------------------------------------------------------
@pytest.fixture
def hermetic_pip(tmp_path, monkeypatch):
    """pip with no configuration and the given index only; a cache of this test's own holding a stand-in uv
    wheel (collect adds the installer's pin, and the test index has no uv)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "120")  # pip alone would wait this long for a silent index
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = wheelhouse.cache_dir()
    cache.mkdir(parents=True)
    (cache / f"uv-{UV_VERSION}-py3-none-any.whl").write_bytes(b"")

    def use_index(url: str) -> Path:
        monkeypatch.setenv("PIP_INDEX_URL", url)
        return cache

    return use_index


def _tiny_wheel(name: str, version: str) -> tuple[str, bytes]:
    """A minimal valid pure-Python wheel, named by the rules."""
    import zipfile

    dist = f"{name.replace('-', '_')}-{version}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}.py", "VALUE = 1\n")
        archive.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                    "Tag: py3-none-any\n")
        archive.writestr(f"{dist}.dist-info/RECORD", "")
    return f"{dist}-py3-none-any.whl", buffer.getvalue()


def _sdist(name: str, version: str, marker: Path) -> tuple[str, bytes]:
    """An sdist whose in-tree build backend writes ``marker`` when it runs: proof that its code ran here."""
    module = name.replace("-", "_")
    wheel_name, wheel_bytes = _tiny_wheel(name, version)
    backend = textwrap.dedent(f"""\
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("the sdist's build code ran on the host")
        WHEEL = {wheel_bytes!r}
        def get_requires_for_build_wheel(config_settings=None):
            return []
        def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
            pathlib.Path(wheel_directory, {wheel_name!r}).write_bytes(WHEEL)
            return {wheel_name!r}
        """)
    files = {"pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
             "backend.py": backend, "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{module}-{version}/{path}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return f"{module}-{version}.tar.gz", buffer.getvalue()


@pytest.fixture
def sdist_index(tmp_path):
    """A simple index on 127.0.0.1 holding ysnap-sdist-only 1.0 as an sdist only, and ysnap-wheel-only 1.0 as
    a wheel; yields (index URL, find-links folder with the sdist, marker its build code would write)."""
    marker = tmp_path / "sdist-code-ran"
    index = tmp_path / "index"
    name, data = _sdist("ysnap-sdist-only", "1.0", marker)
    (index / "ysnap-sdist-only").mkdir(parents=True)
    (index / "ysnap-sdist-only" / name).write_bytes(data)
    (index / "ysnap-wheel-only").mkdir()
    wheel_name, wheel_data = _tiny_wheel("ysnap-wheel-only", "1.0")
    (index / "ysnap-wheel-only" / wheel_name).write_bytes(wheel_data)
    links = tmp_path / "links"
    links.mkdir()
    (links / name).write_bytes(data)
    with _serve_on_any_port(index) as url:
        yield url, links, marker


@contextlib.contextmanager
def _serve_on_any_port(folder: Path):
    """A directory listing on 127.0.0.1 (pip reads it as a simple index); not the wheelhouse's fixed port, which
    a real build running at the same time needs for its layer cache."""
    handler = functools.partial(wheelhouse._QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("package, refused", [
    ({"name": "--find-links=/tmp/evil", "version": "1.0"}, "refusing package name '--find-links=/tmp/evil'"),
    ({"name": "six @ file:///tmp/evil.tar.gz", "version": "1.0"}, "refusing package name"),
    ({"name": "six", "version": "1.0 ; os_name == 'posix'"}, "refusing version"),
    ({"name": "six", "version": "--pre"}, "refusing version '--pre'"),
    ({"name": "x" * 300, "version": "1.0"}, "..."),
])
def test_manifest_values_never_become_pip_options(hermetic_pip, sdist_index, package, refused):
    url, links, marker = sdist_index
    hermetic_pip(url)
    with pytest.raises(RecipeError) as err:
        wheelhouse.collect([{**package, "source": "index"}], [], PY, [])
    line = str(err.value)
    assert refused in line and "\n" not in line and len(line) < 300
    assert not marker.exists()


def test_requirements_come_after_double_dash(hermetic_pip, sdist_index, tmp_path):
    """Defence in depth: even an unchecked '--find-links=DIR' reaches pip as a (bad) requirement, not an option
    that would make it build the sdist in DIR on the host."""
    url, links, marker = sdist_index
    hermetic_pip(url)
    with pytest.raises(RecipeError) as err:
        wheelhouse._pip(sys.executable, ["wheel", "--no-deps", "-w", str(tmp_path / "out")],
                        [f"--find-links={links}", "ysnap-sdist-only==1.0"], "a test")
    assert "Invalid requirement" in str(err.value)
    assert not marker.exists()


def test_pins_without_a_wheel_are_refused_unless_host_builds(hermetic_pip, sdist_index):
    url, links, marker = sdist_index
    cache = hermetic_pip(url)
    with pytest.raises(RecipeError) as err:
        wheelhouse.collect([{"name": "ysnap-sdist-only", "version": "1.0", "source": "index"}], [], PY, [])
    assert str(err.value) == (f"ysnap-sdist-only==1.0 has no wheel for Python {MAJOR_MINOR} on this platform; "
                              "building it on the host would run its setup code: rebuild with --strategy pinned "
                              "(it then builds inside the image) or allow it with --host-builds")
    assert not marker.exists()
    assert not list(cache.glob(".incoming-*"))
    # a release that does not exist at all keeps pip's own line: there is nothing to build anywhere
    with pytest.raises(RecipeError) as err:
        wheelhouse.collect([{"name": "ysnap-sdist-only", "version": "9.9", "source": "index"}], [], PY, [])
    assert "failed: ERROR: No matching distribution found for ysnap-sdist-only==9.9" in str(err.value)
    # a pin with a wheel is collected as before
    wheelhouse.collect([{"name": "ysnap-wheel-only", "version": "1.0", "source": "index"}], [], PY, [])
    assert (cache / "ysnap_wheel_only-1.0-py3-none-any.whl").is_file()
    # --host-builds: the user allowed the sdist's code to run here
    wheelhouse.collect([{"name": "ysnap-sdist-only", "version": "1.0", "source": "index"}], [], PY, [],
                       host_builds=True)
    assert marker.exists() and (cache / "ysnap_sdist_only-1.0-py3-none-any.whl").is_file()
    assert not list(cache.glob(".incoming-*"))


def test_build_backends_are_wheels_only(hermetic_pip, sdist_index, tmp_path):
    """A local source whose pyproject asks for an sdist-only backend: refused, its code never runs here."""
    url, links, marker = sdist_index
    hermetic_pip(url)
    source = tmp_path / "local-src"
    source.mkdir()
    (source / "pyproject.toml").write_text('[build-system]\nrequires = ["ysnap-sdist-only"]\n')
    with pytest.raises(RecipeError) as err:
        wheelhouse.collect([], [{"name": "local-src", "version": "0.1", "source": "directory",
                                 "url": source.as_uri()}], PY, [], host_builds=True)
    assert "the build backends of local sources failed" in str(err.value)
    assert not marker.exists()


def test_cached_wheel_of_another_python_is_collected_again(hermetic_pip, sdist_index):
    url, links, marker = sdist_index
    cache = hermetic_pip(url)
    stale = cache / f"ysnap_wheel_only-1.0-{OTHER_CP}-{OTHER_CP}-linux_x86_64.whl"
    stale.write_bytes(b"not installable on this snapshot's Python")
    phases = []
    wheelhouse.collect([{"name": "ysnap-wheel-only", "version": "1.0", "source": "index"}], [], PY, [],
                       lambda event: phases.append(event.message))
    assert phases == ["collecting 1 wheel(s) on the host (1 cached)"]  # uv counted, the other-Python wheel not
    assert (cache / "ysnap_wheel_only-1.0-py3-none-any.whl").is_file() and stale.is_file()


class SilentIndex:
    """A TCP server on 127.0.0.1 that accepts connections and never answers: an index that hangs."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/simple/"
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def wait_for_client(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while not self.accepted and time.monotonic() < deadline:
            time.sleep(0.02)
        return bool(self.accepted)

    def clients_hung_up(self, within: float) -> bool:
        """Whether every connection pip opened was closed (pip was killed) within ``within`` seconds."""
        deadline = time.monotonic() + within
        for conn in self.accepted:
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                while conn.recv(4096):
                    pass
            except (socket.timeout, OSError):
                return False
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accept(): a bare close() would leave the port listening
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent_index():
    index = SilentIndex()
    yield index
    index.close()


def test_a_hanging_pip_is_killed_at_the_timeout(hermetic_pip, silent_index, monkeypatch):
    cache = hermetic_pip(silent_index.url)
    monkeypatch.setenv("YOLOSNAP_PIP_TIMEOUT", "1")
    started = time.monotonic()
    with pytest.raises(RecipeError) as err:
        wheelhouse.collect([{"name": "ysnap-hangs", "version": "1.0", "source": "index"}], [], PY, [])
    elapsed = time.monotonic() - started
    assert str(err.value).startswith("collecting wheels timed out after 1 s; ")
    assert "YOLOSNAP_PIP_TIMEOUT" in str(err.value) and "\n" not in str(err.value)
    assert 1 <= elapsed < 4, elapsed
    assert not list(cache.glob(".incoming-*")) and not list(cache.glob("ysnap*"))
    assert silent_index.clients_hung_up(within=3)  # pip is gone, not left hanging in the background


def test_a_stopped_build_kills_its_pip(hermetic_pip, silent_index):
    """The server's cancel reaches the host's pip too (engine.build.stop_on), long before its timeout."""
    cache = hermetic_pip(silent_index.url)
    stop = threading.Event()
    threading.Thread(target=lambda: silent_index.wait_for_client(30) and stop.set(), daemon=True).start()
    started = time.monotonic()
    with stop_on(stop), pytest.raises(BuildCancelled):
        wheelhouse.collect([{"name": "ysnap-hangs", "version": "1.0", "source": "index"}], [], PY, [])
    assert time.monotonic() - started < 10  # pip alone would wait PIP_DEFAULT_TIMEOUT (120 s), then retry
    assert silent_index.accepted and silent_index.clients_hung_up(within=3)
    assert not list(cache.glob(".incoming-*"))


def test_pip_timeout_setting(monkeypatch):
    monkeypatch.delenv("YOLOSNAP_PIP_TIMEOUT", raising=False)
    assert wheelhouse.pip_timeout() == 30 * 60
    monkeypatch.setenv("YOLOSNAP_PIP_TIMEOUT", "2.5")
    assert wheelhouse.pip_timeout() == 2.5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv("YOLOSNAP_PIP_TIMEOUT", bad)
        with pytest.raises(RecipeError, match="YOLOSNAP_PIP_TIMEOUT"):
            wheelhouse.pip_timeout()
