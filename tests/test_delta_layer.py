"""``engine.build.commit_layer`` on the real engine: the one-container, one-commit layer a delta rebuild makes.

It must give exactly one new layer on the image it starts from, keep that image's ``Cmd`` and ``Entrypoint``,
set the labels, keep what it mounts out of the image, and on failure or cancel leave no container and no image.
"""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from jupyter_yolosnap.engine import labels
from jupyter_yolosnap.engine.build import commit_layer, stop_on
from jupyter_yolosnap.events import Event
from jupyter_yolosnap.exceptions import BuildCancelled, BuildFailed, EngineError
from jupyter_yolosnap.recipe.dockerfile import UV_MOUNT, label_line

from .engine_support import TEST_LABEL

pytestmark = pytest.mark.engine


@pytest.fixture
def run_id(engine):
    """A label value of this test's own: every container and image it makes carries it, and all go at the end."""
    value = uuid.uuid4().hex
    yield value
    for container in engine.containers.list(all=True, filters={"label": f"{TEST_LABEL}={value}"}, ignore_removed=True):
        container.remove(force=True)
    for image in engine.images.list(filters={"label": f"{TEST_LABEL}={value}"}):
        engine.images.remove(image.id, force=True)


def _owner(run_id: str) -> dict[str, str]:
    return {labels.ROLE: "build", TEST_LABEL: run_id}


def _left(engine, run_id: str) -> list[str]:
    label = {"label": f"{TEST_LABEL}={run_id}"}
    return ([f"container {c.short_id}" for c in engine.containers.list(all=True, filters=label, ignore_removed=True)]
            + [f"image {i.short_id}" for i in engine.images.list(filters=label)])


def test_one_layer_with_labels_and_the_image_config_kept(engine, base_image, run_id, tmp_path):
    mounted = tmp_path / "tool"
    mounted.mkdir()
    (mounted / "installer").write_text("#!/bin/sh\necho installed \"$@\" > /added\necho done installing\n")
    (mounted / "installer").chmod(0o755)
    events: list[Event] = []
    image_id = commit_layer(
        engine, base_image.id, f"{UV_MOUNT}/installer six==1.17.0", "RUN installer six==1.17.0",
        {str(mounted): UV_MOUNT}, label_line({TEST_LABEL: run_id, labels.DIGEST: "sha256:new"}),
        _owner(run_id), events.append)
    image = engine.images.get(image_id)
    assert image.attrs["RootFS"]["Layers"][:-1] == base_image.attrs["RootFS"]["Layers"]  # exactly one layer more
    assert image.labels[labels.DIGEST] == "sha256:new" and image.labels[TEST_LABEL] == run_id
    for key in ("Cmd", "Entrypoint", "Env", "WorkingDir"):
        assert (image.attrs["Config"].get(key) or None) == (base_image.attrs["Config"].get(key) or None), key
    out = engine.containers.run(image_id, ["sh", "-c", f"cat /added; ls -A {UV_MOUNT} | wc -l"],
                                network_mode="none", remove=True, labels=_owner(run_id))
    assert out.decode().split("\n")[:2] == ["installed six==1.17.0", "0"]  # the mounted tool is not in the image
    assert events[0] == Event("step", "RUN installer six==1.17.0", 1, 1)
    assert Event("log", "done installing") in events
    assert not [c for c in engine.containers.list(all=True, filters={"label": f"{TEST_LABEL}={run_id}"}, ignore_removed=True)]


def test_a_failing_line_leaves_nothing_and_says_what_failed(engine, base_image, run_id):
    images_before = set(engine.api.images(all=True, quiet=True))  # ids in one call: no inspect to race
    with pytest.raises(BuildFailed) as failed:
        commit_layer(engine, base_image.id, "echo no wheel for six==9 >&2; exit 3", "RUN install six==9", {},
                     label_line({TEST_LABEL: run_id}), _owner(run_id))
    assert "exit status 3" in str(failed.value) and "RUN install six==9" in str(failed.value)
    assert failed.value.log == ["no wheel for six==9"]
    assert _left(engine, run_id) == [] and set(engine.api.images(all=True, quiet=True)) <= images_before


def test_a_cancel_kills_the_container_within_seconds(engine, base_image, run_id):
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()
    with stop_on(stop), pytest.raises(BuildCancelled):
        commit_layer(engine, base_image.id, "echo started; sleep 60", "RUN sleep", {},
                     label_line({TEST_LABEL: run_id}), _owner(run_id))
    assert time.monotonic() - started < 10
    assert _left(engine, run_id) == []
    stop.clear()
    stop.set()
    with stop_on(stop), pytest.raises(BuildCancelled):  # cancelled before it started: nothing is created
        commit_layer(engine, base_image.id, "true", "RUN true", {}, None, _owner(run_id))
    assert _left(engine, run_id) == []


def test_a_container_removed_under_the_layer_is_one_line_and_nothing_is_left(engine, base_image, run_id):
    """Someone's cleanup (``docker rm -f``) takes the layer's container mid-run: the engine's typed error, one line."""
    def remove_it() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = engine.containers.list(filters={"label": f"{TEST_LABEL}={run_id}"}, ignore_removed=True)
            if found:
                found[0].remove(force=True)
                return
            time.sleep(0.1)

    threading.Thread(target=remove_it, daemon=True).start()
    with pytest.raises(EngineError) as failed:
        commit_layer(engine, base_image.id, "sleep 60", "RUN sleep", {}, label_line({TEST_LABEL: run_id}),
                     _owner(run_id))
    assert "\n" not in str(failed.value) and "was killed or removed while it ran" in str(failed.value), failed.value
    assert not isinstance(failed.value, (BuildCancelled, BuildFailed))
    deadline = time.monotonic() + 10  # the other side's removal may still be under way
    while _left(engine, run_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _left(engine, run_id) == []
