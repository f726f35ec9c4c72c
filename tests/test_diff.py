"""Diffs between manifests: every section a drift can hide in."""
from __future__ import annotations

import copy

from jupyter_yolosnap.snapshot.diff import diff_manifests
from jupyter_yolosnap.frontends.render import render_diff

from .test_manifest import sample


def rows(result) -> set[tuple]:
    return {(c.section, c.item, c.kind, c.old, c.new) for c in result.changes}


def test_identical_manifests():
    result = diff_manifests(sample(), sample())
    assert result.identical and result.changes == []
    assert "identical" in str(render_diff(result))


def test_every_kind_of_drift_is_found():
    old = sample()
    new = copy.deepcopy(old)
    new["python"]["version"] = "3.11.9"
    pkgs = {p["name"]: p for p in new["packages"]}
    pkgs["numpy"]["version"] = "2.2.0"
    pkgs["mylib"].update(source="index", version="0.1")
    pkgs["mylib"].pop("url")
    new["packages"] = [p for p in new["packages"] if p["name"] != "ultralytics"]
    new["packages"].append({"name": "opencv-python", "version": "4.10.0.84", "source": "index"})
    new["cuda"]["torch"].update(version="2.14.1+cu128", cuda="12.8", cudnn="9.10.2")
    new["gpu"].update(driver_version="575.51.03", gpus=[{"name": "NVIDIA A100-SXM4-40GB"}] * 2)
    new["native_libs"][0]["status"] = "missing"
    new["native_libs"][0]["package"] = None
    new["os"]["libc"]["version"] = "2.41"
    new["env"] = {"CUDA_VISIBLE_DEVICES": "1"}
    new["git"] = {"commit": "b" * 40, "dirty": False}
    result = diff_manifests(old, new, "yolo-v5-base", "kernel")
    assert rows(result) == {
        ("python", "version", "changed", "3.11.7", "3.11.9"),
        ("packages", "numpy", "changed", "2.1.3", "2.2.0"),
        ("packages", "mylib", "changed", "0.1 (editable file:///src/mylib)", "0.1"),
        ("packages", "ultralytics", "removed", "8.3.0 (vcs https://g.invalid/u.git@aaaaaaaaaaaa)", None),
        ("packages", "opencv-python", "added", None, "4.10.0.84"),
        ("cuda", "torch version", "changed", "2.14.1+cu130", "2.14.1+cu128"),
        ("cuda", "torch cuda", "changed", "13.0", "12.8"),
        ("cuda", "torch cudnn", "changed", "9.24.0", "9.10.2"),
        ("gpu", "driver_version", "changed", "570.124.06", "575.51.03"),
        ("gpu", "devices", "changed", "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB x2"),
        ("native libraries", "libGL.so.1", "changed", "system (libgl1)", "missing"),
        ("os", "libc version", "changed", "2.36", "2.41"),
        ("env", "CUDA_VISIBLE_DEVICES", "changed", "0", "1"),
        ("source", "git commit", "added", None, "b" * 40),
        ("source", "git dirty", "added", None, "False"),
    }
    assert not result.identical and len(result.drift) == 13
    text = str(render_diff(result))
    assert "yolo-v5-base -> kernel: 13 difference(s)" in text and "NVIDIA A100-SXM4-40GB x2" in text
    html = render_diff(result)._repr_html_()
    assert "<table>" in html and "opencv-python" in html


def test_git_changes_alone_are_not_drift():
    old, new = sample(), sample(git={"commit": "c" * 40, "dirty": True})
    result = diff_manifests(old, new)
    assert result.identical and result.changes


def test_vcs_commit_change_is_a_package_change():
    old = sample()
    new = copy.deepcopy(old)
    new["packages"][2]["commit"] = "d" * 40
    (change,) = diff_manifests(old, new).changes
    assert change.item == "ultralytics" and change.new.endswith("@dddddddddddd)")


def test_to_dict_is_json_ready():
    import json

    out = diff_manifests(sample(), sample(python={"version": "3.12.1"})).to_dict()
    changes = json.loads(json.dumps(out))["changes"]
    assert {"section": "python", "item": "version", "old": "3.11.7", "new": "3.12.1", "kind": "changed"} in changes
    assert out["identical"] is False
