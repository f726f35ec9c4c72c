"""Real-engine fixtures for every test that talks to Docker (docker-py's habit: record, clean, fail on leaks).

Tests fail (never skip) when no engine answers: CI always has one, started by scripts/engine-up.sh, and the
base image is made by scripts/standin-base.sh.
"""

from __future__ import annotations

import platform
import sys
import uuid

import docker
import pytest

from jupyter_yolosnap.engine import labels

TEST_LABEL = labels.TEST
STANDIN_LABEL = labels.STANDIN
BASE_TAG = f"python:{platform.python_version()}-slim-bookworm"

ENGINE_HINT = "no Docker engine answers ({}); start one with scripts/engine-up.sh (or run scripts/test.sh)"


def _connect():
    problem = None
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, a missing socket...
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:  # outside the except block: no chained traceback, just the hint
        pytest.fail(ENGINE_HINT.format(problem), pytrace=False)
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
