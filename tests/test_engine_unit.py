"""The engine seam's error paths against a fake engine (tests/fake_docker.py): milliseconds, no Docker needed.

Each test names a wrong answer the code must not give: a 500 read as "not built", a timeout read as a refusal,
an unreachable engine read as "no NVIDIA runtime" or as "no previous image" (a silent full rebuild), a tag
trusted without its digest label, another project's image taken as this one's previous image.
"""
from __future__ import annotations

import importlib
import json

import pytest
import requests

from jupyter_yolosnap import bake
from jupyter_yolosnap.engine import images, labels
from jupyter_yolosnap.engine.client import explain
from jupyter_yolosnap.engine.probe import capture_in_image
from jupyter_yolosnap.exceptions import EngineError, NoVerifiedImage, RuntimeFailure
from jupyter_yolosnap.gpu.readiness import engine_gpu_runtime
from jupyter_yolosnap.runtime import registry
from jupyter_yolosnap.runtime.containers import auto_gpus, gpu_plan, remove_quietly
from jupyter_yolosnap.server import images as server_images
from jupyter_yolosnap.snapshot.names import image_repository, image_tag
from jupyter_yolosnap.snapshot.store import open_store

from .fake_docker import FakeDocker, image_not_found, read_timeout, server_error, unreachable
from .test_manifest import sample

build_module = importlib.import_module("jupyter_yolosnap.bake.build")
HOST_WITH_GPU = {"status": "ok", "driver_version": "570.124.06", "gpus": [{"index": 0}]}


@pytest.fixture(autouse=True)
def _no_retry_pause(monkeypatch):
    monkeypatch.setattr(images, "RETRY_PAUSE_S", 0)


def manifest(numpy: str = "2.1.3", name: str | None = None) -> dict:
    made = sample(packages=[{"name": "numpy", "version": numpy, "source": "index"}])
    if name is not None:
        made = {**made, "name": name}
    return made


def verified_labels(m: dict) -> dict:
    return {labels.SNAPSHOT: m["name"], labels.DIGEST: m["digest"]}


def add_verified(engine: FakeDocker, m: dict, *more_tags: str, created: int | None = None):
    """An image as a clean build leaves it: labelled for ``m`` and tagged with ``m``'s verified tag."""
    return engine.add_image(verified_labels(m), image_tag(m), *more_tags, created=created)


def saved(project, *numpy_versions: str) -> list[dict]:
    """A project whose snapshot has one revision per version, oldest first."""
    store = open_store(project)
    revisions = []
    for version in numpy_versions:
        m = manifest(version)
        store.save(m)
        revisions.append(m)
    return revisions


# ---------------------------------------------------------------------------------------------- one line each


def test_each_engine_failure_has_its_own_line():
    assert "did not answer in time while listing images" in str(explain(read_timeout(), "listing images"))
    assert str(explain(unreachable(), "connecting")).startswith("cannot reach the Docker engine at ")
    assert "cannot reach" in str(explain(requests.exceptions.ConnectTimeout("timed out"), "connecting"))
    failed = str(explain(server_error("layer store is locked"), "tagging x"))
    assert failed.startswith("the Docker engine failed while tagging x (500: layer store is locked); try again")
    assert str(explain(image_not_found("a:b"), "pulling it")) == "the Docker engine refused pulling it: No such image: a:b"
    streamed = requests.exceptions.ConnectionError("UnixHTTPConnectionPool(host='localhost', port=None): Read "
                                                   "timed out.")  # a timeout inside a streamed body
    assert "did not answer in time" in str(explain(streamed, "waiting"))


# ------------------------------------------------------------------------------------------ verified image


def test_a_transient_500_is_read_again():
    engine = FakeDocker()
    m = manifest()
    add_verified(engine, m)
    engine.then("images.get", server_error())
    assert images.verified_image(engine, m) is not None
    assert engine.calls == ["images.get", "images.get"]


def test_a_lasting_500_is_an_engine_error_not_not_built():
    engine = FakeDocker()
    m = manifest()
    add_verified(engine, m)
    engine.then("images.get", server_error(), server_error())
    with pytest.raises(EngineError, match=r"failed while looking for the image yolosnap/.*\(500: internal error"):
        images.verified_image(engine, m)


def test_a_silent_engine_is_a_timeout_and_is_not_retried():
    engine = FakeDocker().fail("images.get", read_timeout())
    with pytest.raises(EngineError, match="did not answer in time while looking for the image"):
        images.verified_image(engine, manifest())
    assert engine.calls == ["images.get"]


def test_a_tag_whose_digest_label_does_not_match_is_not_verified():
    engine = FakeDocker()
    m, other = manifest("2.1.3"), manifest("2.2.0")
    engine.add_image(verified_labels(other), image_tag(m))  # someone tagged another manifest's image here
    assert images.verified_image(engine, m) is None
    with pytest.raises(NoVerifiedImage) as missing:
        images.require_verified(engine, m)
    assert isinstance(missing.value, RuntimeFailure)  # the server's 409, as for other runs waiting on a build
    assert str(missing.value) == (f"snapshot 'yolo-v5-base' has no image verified for its current manifest "
                                  f"({image_tag(m)}); build it first: %snapshot build yolo-v5-base (in a terminal: "
                                  "yolosnap build yolo-v5-base)")
    with pytest.raises(NoVerifiedImage):
        bake.kernel_layer.verified_image(engine, m)


def test_a_kernel_layer_is_not_the_snapshot_image():
    engine = FakeDocker()
    m = manifest()
    engine.add_image({**verified_labels(m), labels.KERNEL_PATH: "/opt/yolosnap/kernel"}, image_tag(m))
    assert images.verified_image(engine, m) is None


def test_check_and_the_already_built_shortcut_need_the_label(project, monkeypatch):
    (m,) = saved(project, "2.1.3")
    engine = FakeDocker()
    monkeypatch.setattr(build_module, "connect", lambda: engine)
    record = engine.add_image(verified_labels(manifest("9.9")), image_tag(m))  # the tag, another manifest's label
    with pytest.raises(NoVerifiedImage):
        bake.check(m["name"], project)
    engine.fail("api.images", AssertionError("not reached"))
    engine.then("images.get", None, unreachable())  # the tag lookup answers, then the base lookup finds no engine
    with pytest.raises(EngineError, match="cannot reach the Docker engine .* while looking for the base image"):
        bake.build(m["name"], project)  # not "already built": it went on to the base image
    record.labels[labels.DIGEST] = m["digest"]
    done = bake.build(m["name"], project)
    assert done.reused and done.image_id == record.id
    assert f"{image_repository(m['name'])}:latest" in record.tags


def test_the_shortcut_reports_a_refused_tag(project, monkeypatch):
    (m,) = saved(project, "2.1.3")
    engine = FakeDocker()
    monkeypatch.setattr(build_module, "connect", lambda: engine)
    add_verified(engine, m)
    engine.then("image.tag", server_error("conflict in the reference store"))
    with pytest.raises(EngineError, match=r"failed while tagging yolosnap/yolo-v5-base:latest \(500: conflict"):
        bake.build(m["name"], project)


# ------------------------------------------------------------------------------------ previous image (delta)


def test_previous_image_is_this_projects_by_digest_label(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a1, a2, a3 = saved(tmp_path / "a", "1.0", "1.1", "1.2")
    (b1,) = saved(tmp_path / "b", "7.0")
    engine = FakeDocker()
    old_a = add_verified(engine, a1, created=100)
    newer_a = add_verified(engine, a2, created=200)
    add_verified(engine, b1, f"{image_repository(b1['name'])}:latest", created=300)  # B built last: :latest is B's
    engine.add_image(verified_labels(a3), created=400)  # a3's image, never tagged: its check did not pass
    engine.add_image({**verified_labels(a1), labels.KERNEL_PATH: "/opt/yolosnap/kernel"},
                     image_tag(a1) + "-kernel", created=500)

    found = build_module._previous_verified(engine, open_store(tmp_path / "a"), a1["name"])
    assert found is not None and found[0].id == newer_a.id and found[1] == a2
    found = build_module._previous_verified(engine, open_store(tmp_path / "b"), b1["name"])
    assert found[1] == b1
    engine.then("images.get", lambda: engine.image_records.pop(newer_a.id))  # removed between list and get
    found = build_module._previous_verified(engine, open_store(tmp_path / "a"), a1["name"])
    assert found[0].id == old_a.id and found[1] == a1


def test_images_of_the_same_age_go_to_the_newer_revision():
    engine = FakeDocker()
    older, newer = manifest("1.0"), manifest("1.1")
    add_verified(engine, older, created=100)
    add_verified(engine, newer, created=100)  # one build cached the other's layers: the same Created
    assert images.previous_verified(engine, older["name"], [newer, older])[1] == newer


def test_no_previous_image_is_a_full_build_and_reads_no_revision():
    engine = FakeDocker()
    engine.add_image({labels.SNAPSHOT: "yolo-v5-base"}, "yolosnap/yolo-v5-base:123456789abc")  # no digest label

    def revisions():
        raise AssertionError("revisions are read only when the engine holds a candidate")
        yield

    assert images.previous_verified(engine, "yolo-v5-base", revisions()) is None


def test_every_candidate_removed_meanwhile_is_a_full_build():
    engine = FakeDocker()
    m = manifest()
    record = add_verified(engine, m)
    engine.then("images.get", lambda: engine.image_records.pop(record.id))
    assert images.previous_verified(engine, m["name"], [m]) is None


@pytest.mark.parametrize("error, line", [
    (unreachable(), "cannot reach the Docker engine"),
    (read_timeout(), "did not answer in time"),
])
def test_an_engine_error_during_the_delta_lookup_is_not_a_full_rebuild(project, error, line):
    saved(project, "1.0", "1.1")
    engine = FakeDocker().fail("api.images", error)
    with pytest.raises(EngineError, match=f"{line} .*while looking for the previous image of snapshot "
                                          "'yolo-v5-base'"):
        build_module._previous_verified(engine, open_store(project), "yolo-v5-base")


def test_a_500_during_the_delta_lookup_is_read_again(project):
    (a1, a2) = saved(project, "1.0", "1.1")
    engine = FakeDocker()
    add_verified(engine, a1)
    engine.then("api.images", server_error())
    assert build_module._previous_verified(engine, open_store(project), a1["name"])[1] == a1


# ------------------------------------------------------------------------------------------------ list view


def test_the_list_view_checks_the_label_and_says_when_the_engine_is_gone():
    engine = FakeDocker()
    current, other = manifest("2.1.3"), manifest("2.2.0")
    assert server_images.ImageIndex is images.ImageIndex  # the server's names are the seam's
    add_verified(engine, current)
    index = images.ImageIndex.read(engine)
    built = engine.images.get(image_tag(current)).id
    assert index.state(current).to_dict() == {"state": images.VERIFIED, "tag": image_tag(current), "id": built,
                                              "size": 0}
    assert index.state(other).to_dict() == {"state": images.DRIFTED, "tag": image_tag(current), "id": built,
                                            "size": 0}  # the older one
    assert index.state(manifest(name="never-built")).state == images.NOT_BUILT
    engine.image_records.clear()
    engine.add_image(verified_labels(other), image_tag(current), f"{image_repository(current['name'])}:latest")
    state = images.ImageIndex.read(engine).state(current)
    assert state.state == images.DRIFTED and state.tag.endswith(":latest")
    engine.then("api.images", server_error())
    assert images.ImageIndex.read(engine).error is None  # a transient 500 is read again
    gone = images.ImageIndex.read(FakeDocker().fail("api.images", unreachable()))
    assert gone.images == {} and gone.error.startswith("cannot reach the Docker engine")


# ---------------------------------------------------------------------------------------------- GPU runtime


def test_an_unreachable_engine_is_not_no_nvidia_runtime():
    assert engine_gpu_runtime(FakeDocker()) is False
    assert engine_gpu_runtime(FakeDocker(runtimes=("runc", "nvidia"))) is True
    gone = FakeDocker().fail("info", unreachable())
    with pytest.raises(EngineError, match="cannot reach the Docker engine .* while asking the engine for its "
                                          "runtimes"):
        engine_gpu_runtime(gone)
    with pytest.raises(EngineError, match="cannot reach"):  # not "running on the CPU: no NVIDIA runtime"
        auto_gpus("auto", gone, HOST_WITH_GPU)
    with pytest.raises(EngineError, match="did not answer in time"):
        gpu_plan(manifest(), None, FakeDocker().fail("info", read_timeout()), HOST_WITH_GPU)
    resolved, warning = auto_gpus("auto", FakeDocker(), HOST_WITH_GPU)
    assert resolved == "none" and "has no NVIDIA runtime" in warning


# ------------------------------------------------------------------------------------------------ containers


def test_a_container_gone_before_remove_is_fine():
    engine = FakeDocker()
    engine.add_image({}, "base:1")
    container = engine.containers.create("base:1", ["true"])
    engine.container_records.clear()  # removed by someone else
    remove_quietly(container)  # NotFound: nothing to do
    engine.then("container.remove", unreachable())
    remove_quietly(engine.containers.create("base:1", ["true"]))  # the engine went away: nothing to do either


def test_the_probe_removes_its_container_on_every_engine_failure():
    engine = FakeDocker()
    engine.add_image({}, "base:1")
    engine.containers.next_run = {"stdout": json.dumps({"python": {"version": "3.11.7"}}).encode()}
    assert capture_in_image(engine, "base:1") == {"python": {"version": "3.11.7"}}
    engine.then("container.remove", engine.container_records.clear)  # gone before the remove: still the capture
    assert capture_in_image(engine, "base:1") == {"python": {"version": "3.11.7"}}

    engine.then("container.wait", read_timeout(300))
    with pytest.raises(EngineError, match="the capture probe inside base:1 did not finish within 300 s"):
        capture_in_image(engine, "base:1")
    engine.then("container.logs", server_error())
    with pytest.raises(EngineError, match=r"failed while running the capture probe in base:1 \(500"):
        capture_in_image(engine, "base:1")
    engine.then("container.start", unreachable())
    with pytest.raises(EngineError, match="cannot reach the Docker engine"):
        capture_in_image(engine, "base:1")
    assert engine.container_records == {}


def test_ps_survives_a_container_removed_between_list_and_inspect():
    engine = FakeDocker()
    engine.add_image({}, "base:1")
    kept = engine.containers.create("base:1", ["sleep"], labels={labels.ROLE: "run", labels.SNAPSHOT: "s"})
    gone = engine.containers.create("base:1", ["sleep"], labels={labels.ROLE: "kernel", labels.SNAPSHOT: "s"})
    engine.then("containers.get", lambda: engine.container_records.pop(gone.id))
    assert [c.id for c in registry._labelled(engine)] == [kept.id]
    engine.fail("containers.list", server_error())
    with pytest.raises(EngineError, match=r"failed while listing containers \(500"):
        registry._labelled(engine)
