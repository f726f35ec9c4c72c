"""Push and pull through a real registry on 127.0.0.1 (Debian's ``docker-registry``, started by the test, once
with htpasswd authentication): the manifest travels inside the image, a pull into a fresh project registers the
snapshot and ``check`` is clean; a login that is missing, a reference that is not there, a registry that is not
there and images without (or with a hostile) manifest inside are each one line, with nothing registered."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import docker
import pytest

from jupyter_yolosnap import bake, service
from jupyter_yolosnap.engine import labels
from jupyter_yolosnap.events import Event
from jupyter_yolosnap.exceptions import RegistryError, SnapshotExists
from jupyter_yolosnap.share import records, registry
from jupyter_yolosnap.snapshot import manifest as manifest_io, names
from jupyter_yolosnap.snapshot.store import open_store

from .conftest import yolosnap
from .share_support import (Built, build_six_snapshot, fresh_project, remove_snapshot_images, remove_tags,
                            save_other_environment)
from .engine_support import BASE_TAG

pytestmark = pytest.mark.engine
REGISTRY_BIN = "/usr/bin/docker-registry"
USER, PASSWORD = "yolosnap-test", f"pw-{uuid.uuid4().hex}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Registry:
    """``docker-registry serve`` on 127.0.0.1:<free port>, its storage and config in a folder of the test's."""

    def __init__(self, root: Path, auth: bool):
        if not os.access(REGISTRY_BIN, os.X_OK) or (auth and shutil.which("htpasswd") is None):
            pytest.fail(f"{REGISTRY_BIN} or htpasswd is missing: install them with scripts/registry-up.sh",
                        pytrace=False)
        root.mkdir(parents=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
                  "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
                  "http": {"addr": self.address}}
        if auth:
            htpasswd = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True,
                                      check=True).stdout
            (root / "htpasswd").write_text(htpasswd)
            config["auth"] = {"htpasswd": {"realm": "yolosnap-test", "path": str(root / "htpasswd")}}
        (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        self.log = root / "registry.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([REGISTRY_BIN, "serve", str(root / "config.yml")], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2)
                break
            except urllib.error.HTTPError as err:  # 401 from the authenticated one: it answers
                if err.code == 401:
                    break
                raise
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"the registry did not start: {self.log.read_text()[-500:]}", pytrace=False)
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory):
    server = Registry(tmp_path_factory.mktemp("registry") / "plain", auth=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    server = Registry(tmp_path_factory.mktemp("registry") / "auth", auth=True)
    yield server
    server.stop()


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    """An empty Docker client configuration (no stored logins) for the test: ``DOCKER_CONFIG`` is what docker-py
    and the docker CLI read."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory, engine, base_image):
    """One snapshot (a venv with six) built once on the stand-in base; every image of it removed afterwards."""
    root = tmp_path_factory.mktemp("share-registry")
    name, project, result = build_six_snapshot(tmp_path_factory, root, "push")
    made = Built.of(name, project, result)
    yield made
    remove_snapshot_images(engine, name)


def push_as_is(engine, image, reference: str, *also_remove: str) -> None:
    """Push ``image`` as ``reference`` with the engine alone (not through the tool), then remove the local tag
    (and ``also_remove``): an image the tool did not make, waiting in the registry."""
    repository, tag = reference.rsplit(":", 1)
    image.tag(repository, tag)
    try:
        for line in engine.images.push(repository, tag, stream=True, decode=True):
            assert "error" not in line, line
    finally:
        remove_tags(engine, reference, *also_remove)


def image_ids(engine) -> set[str]:
    return set(engine.api.images(all=True, quiet=True))


def test_push_then_pull_into_a_fresh_project_registers_the_snapshot(built, plain_registry, engine, tmp_path,
                                                                    docker_config):
    reference = f"{plain_registry.address}/team/{built.name}:2025-q2"
    events: list[Event] = []
    started = time.perf_counter()
    pushed = registry.push(open_store(built.project), built.name, reference, events.append)
    push_seconds = time.perf_counter() - started
    assert pushed.reference == reference and pushed.digest.startswith("sha256:")
    assert pushed.by_digest == f"{plain_registry.address}/team/{built.name}@{pushed.digest}"
    assert [r["op"] for r in records.read(open_store(built.project), built.name)] == ["push"]
    record = records.read(open_store(built.project), built.name)[-1]
    assert record["reference"] == reference and record["digest"] == pushed.digest
    assert record["snapshot_digest"] == built.manifest["digest"]
    # the manifest is inside the pushed image, in a layer of its own on top of the verified image
    layer = engine.images.get(reference)
    assert layer.id == pushed.image_id != built.image_id
    assert layer.labels[labels.DIGEST] == built.manifest["digest"]
    assert layer.labels[registry.MANIFEST_LABEL] == registry.MANIFEST_PATH
    verified_layers = engine.images.get(built.image_id).attrs["RootFS"]["Layers"]
    assert layer.attrs["RootFS"]["Layers"][:-1] == verified_layers
    assert any(e.kind == "phase" and e.message.startswith("pushed ") for e in events)
    # pushing again is the same image (Docker's cache), the same digest
    again = registry.push(open_store(built.project), built.name, reference)
    assert again.image_id == pushed.image_id and again.digest == pushed.digest

    # a newcomer: no image, no snapshot
    remove_snapshot_images(engine, built.name, reference)
    for gone in (built.image_id, pushed.image_id):
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(gone)
    fresh = fresh_project(tmp_path)
    started = time.perf_counter()
    pulled = registry.pull(open_store(fresh), reference)
    pull_seconds = time.perf_counter() - started
    print(f"push {push_seconds:.1f} s, pull {pull_seconds:.1f} s (check included)")
    assert pulled.name == built.name and pulled.digest == built.manifest["digest"] and pulled.checked
    assert pulled.image == built.tag and pulled.registry_digest == pushed.digest
    assert engine.images.get(built.tag).id == pushed.image_id
    assert engine.images.get(f"{names.image_repository(built.name)}:latest").id == pushed.image_id
    assert service.load(built.name, fresh) == built.manifest
    assert bake.check(built.name, fresh).clean
    assert [r["op"] for r in records.read(open_store(fresh), built.name)] == ["pull"]
    # the pulled image already carries its manifest: pushing it on adds no layer
    onward = registry.push(open_store(fresh), built.name, f"{plain_registry.address}/team/{built.name}:onward")
    assert onward.image_id == pushed.image_id and onward.digest == pushed.digest
    remove_tags(engine, onward.reference)
    # pulling by digest into a project that has it: nothing to replace
    by_digest = registry.pull(open_store(fresh), pushed.by_digest, verify=False)
    assert by_digest.previous is None and by_digest.registry_digest == pushed.digest


def test_the_cli_pushes_pulls_and_k8s_runs_the_pushed_digest(built, plain_registry, engine, tmp_path, docker_config):
    """CI's flow through the real CLI: push, a Job that names the pushed image by digest without --image, then a
    newcomer's pull into a fresh project and ``check`` clean; bad references are one line each, exit 1."""
    from jupyter_yolosnap.engine import images
    from jupyter_yolosnap.engine.client import connect

    if images.verified_image(connect(), built.manifest) is None:  # an earlier test removed it
        bake.build(built.name, built.project)
    reference = f"{plain_registry.address}/ci/{built.name}:nightly"
    pushed = yolosnap("push", built.name, reference, "--project", built.project)
    assert pushed.returncode == 0, pushed.stderr
    by_digest = pushed.stdout.strip().splitlines()[-1]
    assert by_digest.startswith(f"{plain_registry.address}/ci/{built.name}@sha256:"), pushed.stdout
    job = yolosnap("k8s", built.name, "--gpus", "2", "--project", built.project, "--", "python", "train.py")
    assert job.returncode == 0, job.stderr
    assert f"image: {by_digest}" in job.stdout and "nvidia.com/gpu: 2" in job.stdout.replace("'", "").replace('"', '')

    remove_snapshot_images(engine, built.name, reference)
    fresh = fresh_project(tmp_path)
    pulled = yolosnap("pull", reference, "--project", fresh)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip().splitlines()[-1] == built.tag
    checked = yolosnap("check", built.name, "--project", fresh)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    job = yolosnap("k8s", built.name, "--project", fresh, "--", "python", "train.py")  # the pull's record
    assert f"image: {by_digest}" in job.stdout, job.stdout + job.stderr

    for argv in (("push", built.name, "--x", "--project", built.project),
                 ("push", built.name, "a;touch /tmp/pwned", "--project", built.project),
                 ("pull", f"{plain_registry.address}/ci/absent:nope", "--project", fresh),
                 ("pull", "../../x", "--project", fresh)):
        refused = yolosnap(*argv)
        errors = [line for line in refused.stderr.splitlines() if not line.startswith("==> ")]  # progress lines
        assert refused.returncode != 0 and len(errors) == 1 and errors[0].startswith("yolosnap"), (argv, errors)
    assert not Path("/tmp/pwned").exists()
    assert open_store(fresh).names() == [built.name]


def test_a_pull_does_not_replace_another_environment_unless_asked(built, plain_registry, engine, tmp_path):
    reference = f"{plain_registry.address}/team/{built.name}:replace"
    registry.push(open_store(built.project), built.name, reference)
    fresh = fresh_project(tmp_path)
    store = open_store(fresh)
    other = save_other_environment(store, built.manifest)
    with pytest.raises(SnapshotExists, match="--replace"):
        registry.pull(store, reference)
    assert store.load(built.name)["digest"] == other["digest"]
    engine.images.get(reference)  # it was on the engine before the pull (pushed from here): it stays
    pulled = registry.pull(store, reference, replace=True, verify=False)
    assert pulled.previous == other["digest"] and len(store.revisions(built.name)) == 2
    remove_tags(engine, reference)


def test_the_authenticated_registry_needs_a_login_and_the_tool_stores_none(built, auth_registry, engine, tmp_path,
                                                                           docker_config):
    reference = f"{auth_registry.address}/team/{built.name}:v1"
    with pytest.raises(RegistryError) as refused:
        registry.push(open_store(built.project), built.name, reference)
    line = str(refused.value)
    assert f"log in with docker login {auth_registry.address}" in line and "\n" not in line, line
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(reference)  # the tag the push needed is gone again
    assert not [r for r in records.read(open_store(built.project), built.name) if r["reference"] == reference]

    # docker login (into this test's DOCKER_CONFIG): the push goes through with the engine's credentials
    subprocess.run(["docker", "login", auth_registry.address, "-u", USER, "--password-stdin"], input=PASSWORD,
                   capture_output=True, text=True, check=True)
    pushed = registry.push(open_store(built.project), built.name, reference)
    assert pushed.digest.startswith("sha256:")
    for path in built.project.rglob("*"):
        if path.is_file():
            assert PASSWORD not in path.read_text(errors="replace"), f"the password is in {path}"

    # pull without the login: one line again, nothing registered, nothing new on the engine
    remove_tags(engine, reference)
    (docker_config / "config.json").unlink()
    fresh = fresh_project(tmp_path)
    with pytest.raises(RegistryError, match=f"log in with docker login {auth_registry.address}"):
        registry.pull(open_store(fresh), reference)
    assert open_store(fresh).names() == []
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(reference)


def test_an_image_without_a_manifest_inside_is_refused(plain_registry, engine, base_image, tmp_path):
    reference = f"{plain_registry.address}/plain/python:{uuid.uuid4().hex[:8]}"
    push_as_is(engine, base_image, reference)
    fresh = fresh_project(tmp_path)
    with pytest.raises(RegistryError) as refused:
        registry.pull(open_store(fresh), reference)
    assert "holds no jupyter_yolosnap snapshot" in str(refused.value) and "\n" not in str(refused.value)
    assert open_store(fresh).names() == [] and not (fresh / ".yolosnap").exists()
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(reference)  # the tag the pull set is taken off again
    assert engine.images.get(BASE_TAG).id == base_image.id  # the image was there before: it stays


HOSTILE = {
    # the labels of the real snapshot over another manifest (six removed, digest recomputed)
    "labels-name-another-manifest": ("other.json", "is labelled snapshot"),
    # the manifest edited after it was saved: its digest no longer recomputes
    "manifest-edited": ("edited.json", "changed after it was saved"),
    # the manifest file is a link to a file of the image
    "manifest-is-a-link": (None, "is not a plain file"),
    # 40 MiB where the manifest should be
    "oversize-manifest": ("huge.json", "more than a manifest can be"),
    # the labels, but no file
    "no-manifest-file": ("", "is missing"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_images_are_refused_and_removed(case, built, plain_registry, engine, tmp_path):
    source, message = HOSTILE[case]
    context = tmp_path / "context"
    wanted = {labels.SNAPSHOT: built.name, labels.DIGEST: built.manifest["digest"],
              registry.MANIFEST_LABEL: registry.MANIFEST_PATH}
    label_line = "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in wanted.items())
    other = json.loads(json.dumps(built.manifest))
    other["packages"] = [p for p in other["packages"] if p["name"] != "six"]
    other["digest"] = manifest_io.compute_digest(other)
    files = {"other.json": manifest_io.dumps(other),
             "edited.json": manifest_io.dumps(built.manifest).replace('"1.16.0"', '"1.17.0"'),
             "huge.json": " " * (40 * 1024 * 1024)}
    context.mkdir()
    if source:
        (context / source).write_text(files[source])
        copy = f"COPY {source} {registry.MANIFEST_PATH}\n"
    elif source is None:
        copy = f"RUN mkdir -p /opt/yolosnap && ln -s /etc/passwd {registry.MANIFEST_PATH}\n"
    else:
        copy = ""
    (context / "Dockerfile").write_text(f"FROM {BASE_TAG}\n{copy}{label_line}\n")
    image, _ = engine.images.build(path=str(context), pull=False, network_mode="none", rm=True)
    reference = f"{plain_registry.address}/hostile/{case}:1"
    push_as_is(engine, image, reference, image.id)
    assert image.id not in image_ids(engine)
    fresh = fresh_project(tmp_path)
    with pytest.raises(RegistryError) as refused:
        registry.pull(open_store(fresh), reference)
    line = str(refused.value)
    assert message in line and "\n" not in line, line
    assert open_store(fresh).names() == []
    assert image.id not in image_ids(engine), "the refused image stayed on the engine"
    assert not engine.api.containers(all=True, filters={"label": f"{labels.ROLE}=share"})


def test_registry_errors_are_one_line_each(built, plain_registry, tmp_path, docker_config):
    store = open_store(built.project)
    fresh = open_store(fresh_project(tmp_path))
    closed = f"127.0.0.1:{free_port()}"
    cases = [
        (lambda: registry.pull(fresh, f"{plain_registry.address}/team/nothing-here:v1"), "not found in the registry"),
        (lambda: registry.pull(fresh, f"{closed}/team/x:v1"), f"cannot reach the registry {closed}"),
        (lambda: registry.push(store, built.name, f"{closed}/team/x:v1"), f"cannot reach the registry {closed}"),
        (lambda: registry.push(store, built.name, "Not A Reference"), "is not an image reference"),
        (lambda: registry.push(store, built.name, "registry.example/x;rm -rf /:v1"), "is not an image reference"),
        (lambda: registry.push(store, built.name, "reg.example/x@sha256:" + "0" * 64), "a push needs a tag"),
        (lambda: registry.push(store, built.name, f"yolosnap/{built.name}:x"), "where this tool keeps verified"),
        (lambda: registry.pull(fresh, "reg.example/x:v1@sha256:" + "0" * 64), "names both a tag and a digest"),
    ]
    for call, message in cases:
        with pytest.raises(RegistryError) as refused:
            call()
        assert message in str(refused.value) and "\n" not in str(refused.value), str(refused.value)
    assert fresh.names() == []


def test_the_error_lines_of_registry_answers():
    explain = registry.explain_registry
    assert "log in with docker login r.example" in str(explain("unauthorized: authentication required", "pushing",
                                                               "r.example/x:1", "r.example"))
    assert "log in" in str(explain("denied: requested access to the resource is denied", "pushing", "x", "r"))
    assert "not found" in str(explain("manifest unknown: manifest unknown", "pulling", "x", "r"))
    assert "cannot reach" in str(explain('Get "https://r/v2/": dial tcp: connect: connection refused', "pulling",
                                         "x", "r"))
    assert "plain HTTP" in str(explain("http: server gave HTTP response to HTTPS client", "pulling", "x", "r"))
    hostile = str(explain("boom\n\x1b[31mred\x00" + "x" * 1000, "pulling", "x", "r"))
    assert "\n" not in hostile and "\x1b" not in hostile and len(hostile) < 400
