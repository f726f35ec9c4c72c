"""The real Docker engine and the stand-in base image that the rest of the suite builds on.

These tests fail (never skip) when no engine answers: CI always has one, started by
scripts/engine-up.sh, and the base image is made by scripts/standin-base.sh.
"""

from __future__ import annotations

import json
import platform
import sys
import uuid

import docker
import pytest

pytestmark = pytest.mark.engine

TEST_LABEL = "org.jupyter-yolosnap.test"
STANDIN_LABEL = "org.jupyter-yolosnap.standin"
BASE_TAG = f"python:{platform.python_version()}-slim-bookworm"

ENGINE_HINT = "no Docker engine answers ({}); start one with scripts/engine-up.sh (or run scripts/test.sh)"


def _connect():
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, a missing socket...
        pytest.fail(ENGINE_HINT.format(f"{type(exc).__name__}: {exc}"), pytrace=False)
    return client


@pytest.fixture(scope="session")
def engine():
    client = _connect()
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(engine):
    try:
        return engine.images.get(BASE_TAG)
    except docker.errors.ImageNotFound:
        pytest.fail(
            f"no image {BASE_TAG} for this interpreter ({sys.executable}); "
            f"build it with: scripts/standin-base.sh {sys.executable}",
            pytrace=False,
        )


class ContainerTracker:
    """Creates containers for one test, each labelled with that test's own id, and
    remembers them, so that teardown can remove what is left and tell about it."""

    def __init__(self, client):
        self.client = client
        self.run_id = uuid.uuid4().hex
        self.created: list[str] = []

    @property
    def filters(self):
        return {"label": f"{TEST_LABEL}={self.run_id}"}

    def _labels(self, kwargs):
        labels = dict(kwargs.pop("labels", None) or {})
        labels[TEST_LABEL] = self.run_id
        return labels

    def create(self, image, command=None, **kwargs):
        container = self.client.containers.create(image, command, labels=self._labels(kwargs), **kwargs)
        self.created.append(container.id)
        return container

    def run(self, image, command=None, **kwargs):
        """containers.run with the label; a detached container is recorded for teardown."""
        kwargs.setdefault("network_mode", "none")
        result = self.client.containers.run(image, command, labels=self._labels(kwargs), **kwargs)
        if kwargs.get("detach"):
            self.created.append(result.id)
        return result

    def leftovers(self):
        return self.client.containers.list(all=True, filters=self.filters)


@pytest.fixture
def containers(engine):
    tracker = ContainerTracker(engine)
    yield tracker
    leaked = {c.id: c for c in tracker.leftovers()}
    for cid in tracker.created:
        if cid in leaked:
            continue
        try:
            leaked[cid] = engine.containers.get(cid)
        except docker.errors.NotFound:
            pass
    for container in leaked.values():
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
    if leaked:
        pytest.fail(
            "the test left containers behind (removed now): "
            + ", ".join(f"{c.short_id} ({c.status})" for c in leaked.values()),
            pytrace=False,
        )


def test_engine_answers_ping():
    client = _connect()
    try:
        assert client.ping() is True
        version = client.version()
        assert version.get("Version"), version
    finally:
        client.close()


def test_standin_base_exists_for_this_interpreter(base_image):
    assert BASE_TAG in base_image.tags
    config = base_image.attrs["Config"]
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    assert env.get("PATH", "").split(":")[0] == "/usr/local/bin", env
    assert config.get("Cmd") == ["python3"]
    # A stand-in carries its label; the real official image (if one was loaded) does not.
    labels = config.get("Labels") or {}
    assert labels.get(STANDIN_LABEL) in (None, "1")


PROBE = r"""
import ctypes, json, os, platform, sqlite3, ssl, sys
print(json.dumps({
    "version_info": list(sys.version_info[:3]),
    "python_version": platform.python_version(),
    "prefix": sys.prefix,
    "executable": sys.executable,
    "openssl": ssl.OPENSSL_VERSION,
    "sqlite": sqlite3.sqlite_version,
    "ctypes_ok": ctypes.sizeof(ctypes.c_void_p) > 0,
    "net": sorted(os.listdir("/sys/class/net")),
}))
"""


def test_base_runs_this_python_offline(base_image, containers, engine):
    out = containers.run(base_image.id, ["python3", "-c", PROBE], network_mode="none", remove=True, stdout=True, stderr=False)
    probe = json.loads(out.decode().strip().splitlines()[-1])

    assert probe["version_info"] == list(sys.version_info[:3])
    assert probe["python_version"] == platform.python_version()
    assert probe["prefix"] == "/usr/local"
    assert probe["executable"] == "/usr/local/bin/python3"
    assert probe["openssl"].startswith("OpenSSL")
    assert probe["sqlite"]
    assert probe["ctypes_ok"] is True
    assert probe["net"] == ["lo"], "network_mode none must leave only the loopback interface"

    # remove=True took it away already: nothing with this test's label is left.
    assert containers.leftovers() == []


def test_base_pip_works_offline(base_image, containers):
    out = containers.run(base_image.id, ["pip", "--version"], network_mode="none", remove=True)
    assert out.decode().startswith("pip "), out
    assert "/usr/local/lib/python" in out.decode()
    assert containers.leftovers() == []


def test_tracker_removes_leftover_containers(base_image, engine):
    """The fixture's own contract: a container a test forgets is removed and reported."""
    tracker = ContainerTracker(engine)
    container = tracker.create(base_image.id, ["true"], network_mode="none")
    try:
        assert [c.id for c in tracker.leftovers()] == [container.id]
        assert engine.containers.get(container.id).labels[TEST_LABEL] == tracker.run_id
    finally:
        container.remove(force=True)
    assert tracker.leftovers() == []
