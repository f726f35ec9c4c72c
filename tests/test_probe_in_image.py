"""The capture probe runs unchanged inside an image: what ``check`` will rely on to prove a build."""
from __future__ import annotations

import json
import platform

import pytest

from jupyter_yolosnap.snapshot.diff import diff_manifests
from jupyter_yolosnap.snapshot.manifest import build_manifest
from jupyter_yolosnap.capture.runner import PACKAGE_DIR, _BOOT

pytestmark = pytest.mark.engine


def test_probe_inside_the_standin_base(base_image, containers):
    out = containers.run(
        base_image.id, ["python3", "-c", _BOOT, "/opt/yolosnap", "--project", "/work"],
        volumes={PACKAGE_DIR: {"bind": "/opt/yolosnap", "mode": "ro"}}, network_mode="none", remove=True,
        stderr=True)
    inside = json.loads(out)
    assert inside["python"]["version"] == platform.python_version()
    assert inside["python"]["prefix"] == "/usr/local" and inside["python"]["environment"] == "system"
    assert {p["name"] for p in inside["packages"]} == {"pip"}
    assert inside["os"]["id"] == "debian" and inside["os"]["codename"] == "bookworm"
    assert {p["name"] for p in inside["os"]["packages"]} >= {"libssl3", "ca-certificates"}
    assert inside["git"] is None
    gpu = {"status": "no-driver", "gpus": []}
    image = build_manifest("inside", inside, gpu, "test")
    twin = build_manifest("again", json.loads(containers.run(
        base_image.id, ["python3", "-c", _BOOT, "/opt/yolosnap"],
        volumes={PACKAGE_DIR: {"bind": "/opt/yolosnap", "mode": "ro"}}, network_mode="none", remove=True)), gpu,
        "test")
    assert diff_manifests(image, twin).identical  # the capture of an image is repeatable
    assert containers.leftovers() == []
