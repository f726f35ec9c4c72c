"""The real Docker engine and the stand-in base image that the rest of the suite builds on."""

from __future__ import annotations

import json
import platform
import sys

import pytest

from .engine_support import STANDIN_LABEL, TEST_LABEL, BASE_TAG, ContainerTracker, _connect

pytestmark = pytest.mark.engine


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
