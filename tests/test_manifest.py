"""The manifest: schema validation, digest, readable serialisation."""
from __future__ import annotations

import json

import pytest

from jupyter_yolosnap.snapshot import manifest
from jupyter_yolosnap.exceptions import ManifestError


def sample(**over) -> dict:
    captured = {
        "probe_version": 1,
        "python": {"implementation": "cpython", "version": "3.11.7", "abi": "cp311", "machine": "x86_64",
                   "environment": "venv"},
        "packages": [
            {"name": "numpy", "version": "2.1.3", "source": "index"},
            {"name": "mylib", "version": "0.1", "source": "editable", "url": "file:///src/mylib"},
            {"name": "ultralytics", "version": "8.3.0", "source": "vcs", "url": "https://g.invalid/u.git",
             "vcs": "git", "commit": "a" * 40},
        ],
        "cuda": {"torch": {"version": "2.14.1+cu130", "cuda": "13.0", "cudnn": "9.24.0"}, "wheels": [],
                 "nvcc": None, "tensorflow": None},
        "os": {"id": "debian", "version_id": "12", "libc": {"name": "glibc", "version": "2.36"}, "packages": []},
        "native_libs": [{"soname": "libGL.so.1", "status": "system", "path": "/lib/libGL.so.1",
                         "package": "libgl1", "needed_by": ["opencv-python"]}],
        "env": {"CUDA_VISIBLE_DEVICES": "0"},
        "git": None,
    }
    captured.update(over)
    gpu = {"status": "ok", "driver_version": "570.124.06", "cuda_driver_version": "12.8",
           "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3"}]}
    return manifest.build_manifest("yolo-v5-base", captured, gpu, "0.1.0")


def test_built_manifest_validates_and_round_trips():
    m = sample()
    assert m["schema_version"] == 1 and m["digest"].startswith("sha256:")
    text = manifest.dumps(m)
    assert manifest.loads(text) == m


def test_digest_ignores_name_and_time_but_not_content():
    a, b = sample(), sample()
    b["name"], b["created"] = "other", "2020-01-01T00:00:00Z"
    assert manifest.compute_digest(a) == manifest.compute_digest(b)
    c = sample(packages=[{"name": "numpy", "version": "2.1.4", "source": "index"}])
    assert manifest.compute_digest(c) != manifest.compute_digest(a)


def test_hand_edited_pin_is_accepted_and_redigested():
    m = sample()
    m["packages"][0]["version"] = "2.2.0"
    loaded = manifest.loads(json.dumps(m))
    assert loaded["digest"] == manifest.compute_digest(m) != sample()["digest"]


def test_each_package_is_one_line_for_readable_git_diffs():
    text = manifest.dumps(sample())
    lines = text.splitlines()
    assert '    {"name": "numpy", "version": "2.1.3", "source": "index"},' in lines
    assert any(line.startswith('    {"name": "ultralytics", "version": "8.3.0", "source": "vcs", "commit": ')
               for line in lines)


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m.update(schema_version=2), "newer than this jupyter_yolosnap understands"),
    (lambda m: m.pop("packages"), "misses the required field 'packages'"),
    (lambda m: m["packages"][0].update(source="pypi"), r"packages\[0\]\.source"),
    (lambda m: m["packages"][2].pop("commit"), r"packages\[2\]: misses the required field 'commit'"),
    (lambda m: m["python"].update(version="three"), r"python\.version"),
    (lambda m: m.update(name="../escape"), "name"),
])
def test_malformed_manifests_are_rejected_with_the_field(mutate, message):
    m = sample()
    mutate(m)
    with pytest.raises(ManifestError, match=message):
        manifest.loads(json.dumps(m), where="snapshot.json")


@pytest.mark.parametrize("text, message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ("", "is not valid JSON"),
])
def test_unparseable_text(text, message):
    with pytest.raises(ManifestError, match=message):
        manifest.loads(text, where="x.json")
