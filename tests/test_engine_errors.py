"""Engine failures a user meets, each as one line that says what to do."""
from __future__ import annotations

import shutil
import subprocess
import sys

import docker
import pytest

from jupyter_yolosnap.engine.client import connect, explain
from jupyter_yolosnap.exceptions import EngineError

pytestmark = pytest.mark.engine

CONNECT = ("from jupyter_yolosnap.engine.client import connect\n"
           "try:\n    connect()\nexcept Exception as err:\n    print(type(err).__name__, err)\n")


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv to drop privileges")
def test_no_permission_on_the_socket(engine):
    """A real user outside the docker group (nobody) against the real socket."""
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                           CONNECT], capture_output=True, text=True, cwd="/")
    assert done.stdout.strip() == ("EngineError permission denied on the Docker socket while connecting; add your "
                                   "user to the 'docker' group (then log in again) or run as root")


def test_no_engine(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(EngineError, match=r"cannot reach the Docker engine at unix:///nonexistent/docker.sock .*"
                                          r"start it"):
        connect()


def test_engine_refusals_keep_the_engines_reason(engine):
    with pytest.raises(docker.errors.APIError) as refused:
        engine.containers.create("yolosnap-test/no-such-image:1")
    message = str(explain(refused.value, "starting a container"))
    assert message.startswith("the Docker engine refused starting a container: ") and "no-such-image" in message


def test_disk_full_is_named():
    error = docker.errors.APIError("500 Server Error", explanation="write /var/lib/docker/tmp/x: no space left on "
                                                                   "device")
    assert "ran out of disk space while building the image; free space (docker system prune)" in str(
        explain(error, "building the image"))


def test_a_registry_the_engine_cannot_reach_is_not_called_an_unreachable_engine(engine):
    """A real pull from a port where nothing listens: dockerd answers, with the registry's connection refused."""
    with pytest.raises(docker.errors.APIError) as refused:
        engine.images.pull("127.0.0.1:1/nothing/here", tag="1")
    message = str(explain(refused.value, "pulling it"))
    assert "cannot reach the Docker engine" not in message and "127.0.0.1:1" in message, message
    assert "\n" not in message
