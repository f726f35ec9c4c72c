"""The pure recipe: plan (layers, removals, system packages, deltas) and Dockerfile text."""
from __future__ import annotations

import copy

import pytest

from jupyter_yolosnap.exceptions import UnsafeValue
from jupyter_yolosnap.recipe import dockerfile
from jupyter_yolosnap.recipe.plan import delta, make_plan

from .test_manifest import sample

BASE_FACTS = {"python": {"version": "3.11.7"},
              "packages": [{"name": "pip", "version": "23.2.1", "source": "index"},
                           {"name": "setuptools", "version": "65.5.0", "source": "index"}],
              "os": {"packages": [{"name": "libc6", "version": "2.36"}, {"name": "zlib1g", "version": "1"}]}}


def manifest(**over):
    m = sample(**over)
    m["packages"] = [
        {"name": "numpy", "version": "2.1.3", "source": "index"},
        {"name": "pip", "version": "24.0", "source": "index"},
        {"name": "six", "version": "1.16.0", "source": "index"},
        {"name": "torch", "version": "2.1.2+cu121", "source": "index"},
        {"name": "mylib", "version": "0.1", "source": "editable", "url": "file:///src/my%20lib"},
        {"name": "ultralytics", "version": "8.3.0", "source": "vcs", "url": "https://g.invalid/u.git", "vcs": "git",
         "commit": "a" * 40},
        {"name": "w", "version": "2.0", "source": "archive", "url": "file:///w/w-2.0-py3-none-any.whl",
         "hash": "sha256=00"},
    ]
    m["native_libs"] = [
        {"soname": "libGL.so.1", "status": "system", "package": "libgl1", "needed_by": ["opencv-python"]},
        {"soname": "libz.so.1", "status": "system", "package": "zlib1g", "needed_by": ["numpy"]},
        {"soname": "libc.so.6", "status": "libc", "package": None, "needed_by": ["numpy"]},
        {"soname": "libcuda.so.1", "status": "driver", "package": None, "needed_by": ["torch"]},
        {"soname": "libfabric.so.1", "status": "missing", "package": None, "needed_by": ["torch"]},
    ]
    return m


def test_plan_groups_layers_and_base_differences():
    plan = make_plan(manifest(), "python:3.11.7-slim-bookworm", BASE_FACTS)
    assert [p["name"] for p in plan.heavy] == ["numpy", "torch"]
    assert [p["name"] for p in plan.index] == ["pip", "six"]
    assert [p["name"] for p in plan.local] == ["mylib", "ultralytics", "w"]
    assert plan.system_packages == ("git", "libgl1")  # zlib1g is in the base; driver/libc/missing never
    assert plan.remove == ("setuptools",)  # in the base, not in the snapshot; pip is always kept
    assert plan.index_urls == ("https://download.pytorch.org/whl/cu121",)


def test_full_dockerfile_orders_layers_from_stable_to_volatile():
    plan = make_plan(manifest(), "python:3.11.7-slim-bookworm", BASE_FACTS)
    text = dockerfile.render(plan, "yolo", "sha256:" + "f" * 64, "0.1.0")
    order = ["FROM python:3.11.7-slim-bookworm", "apt-get install -y --no-install-recommends -- git libgl1",
             "uninstall -y -- setuptools", "requirements/heavy.txt", "requirements/index.txt", "COPY sources/ /"]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "'--editable=/src/my lib'" in text
    assert "'git+https://g.invalid/u.git@" + "a" * 40 + "#egg=ultralytics'" in text
    assert "/w/w-2.0-py3-none-any.whl" in text
    assert "ARG PIP_NO_INDEX=1\nARG PIP_FIND_LINKS=http://127.0.0.1:47391/\n" in text
    assert ("uv pip install --system --no-deps --compile-bytecode --no-index --find-links \"$PIP_FIND_LINKS\" "
            "-r /tmp/yolosnap/heavy.txt") in text
    files = dockerfile.requirement_files(plan)
    assert files == {"requirements/heavy.txt": "numpy==2.1.3\ntorch==2.1.2+cu121\n",
                     "requirements/index.txt": "pip==24.0\nsix==1.16.0\n"}


def test_pinned_strategy_uses_the_indexes_and_a_ca_bundle():
    plan = make_plan(manifest(), "python:3.11.7-slim-bookworm", BASE_FACTS, strategy="pinned")
    text = dockerfile.render(plan, "yolo", "sha256:" + "f" * 64, "0.1.0")
    assert "COPY ca-bundle.crt /tmp/yolosnap/ca-bundle.crt" in text
    assert "ARG PIP_CERT=/tmp/yolosnap/ca-bundle.crt\n" in text
    assert "ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu121\n" in text
    assert "PIP_NO_INDEX" not in text and "127.0.0.1" not in text
    assert "RUN python -m pip install --no-deps -r /tmp/yolosnap/heavy.txt" in text and " uv " not in text
    with pytest.raises(ValueError):
        make_plan(manifest(), "b", BASE_FACTS, strategy="conda")


def test_delta_only_for_small_index_changes():
    old = manifest()
    new = copy.deepcopy(old)
    new["packages"][2]["version"] = "1.17.0"  # six
    new["packages"].append({"name": "idna", "version": "3.7", "source": "index"})
    assert delta(old, new) == ([{"name": "idna", "version": "3.7", "source": "index"},
                                {"name": "six", "version": "1.17.0", "source": "index"}], [])
    gone = copy.deepcopy(old)
    del gone["packages"][2]
    assert delta(old, gone) == ([], ["six"])
    heavy = copy.deepcopy(old)
    heavy["packages"][3]["version"] = "2.2.0+cu121"
    assert delta(old, heavy) is None  # torch moved: full layered build
    local = copy.deepcopy(old)
    local["packages"][4]["version"] = "0.2"
    assert delta(old, local) is None
    python = copy.deepcopy(old)
    python["python"]["version"] = "3.11.9"
    assert delta(old, python) is None
    system = copy.deepcopy(old)
    system["native_libs"].append({"soname": "libyaml-0.so.2", "status": "system", "package": "libyaml-0-2"})
    assert delta(old, system) is None


def test_delta_dockerfile_starts_from_the_previous_image():
    plan = make_plan(manifest(), "python:3.11.7-slim-bookworm", BASE_FACTS)
    text = dockerfile.render_delta(plan, "sha256:abc", [{"name": "six", "version": "1.17.0"}], ["idna"])
    lines = text.splitlines()
    assert lines[1] == "FROM sha256:abc"
    assert "uninstall -y -- idna" in text and "install --no-deps -- six==1.17.0" in text
    # one RUN and no ARG step: each step is a container and a commit on a big image
    assert [line.split()[0] for line in lines if line[:1].isupper()] == ["FROM", "RUN"]
    assert "PIP_NO_INDEX=1 PIP_FIND_LINKS=http://127.0.0.1:47391/ python -m pip install" in text
    for pin in ({"name": "six", "version": "1.0; touch /tmp/x"}, {"name": "--index-url=http://x", "version": "1"},
                {"name": "six", "version": "1\nRUN id"}):
        with pytest.raises(UnsafeValue):
            dockerfile.render_delta(plan, "sha256:abc", [pin], [])
    with pytest.raises(UnsafeValue):
        dockerfile.render_delta(plan, "sha256:abc", [], ["idna; id"])


def test_system_layer_cleans_apt_and_says_why_git_is_there():
    plan = make_plan(manifest(), "python:3.11.7-slim-bookworm", BASE_FACTS)
    text = dockerfile.render(plan, "yolo", "sha256:" + "f" * 64, "0.1.0")
    assert "&& apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb" in text
    assert ("# 1. System packages: native libraries the environment's packages need (found by the capture) and git, "
            "which pip needs to clone VCS sources.") in text
    only_git = manifest()
    only_git["native_libs"] = []
    text = dockerfile.render(make_plan(only_git, "python:3.11.7-slim-bookworm", BASE_FACTS), "yolo",
                             "sha256:" + "f" * 64, "0.1.0")
    assert "# 1. System packages: git, which pip needs to clone VCS sources.\n" in text
