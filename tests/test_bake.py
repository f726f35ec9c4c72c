"""Bake snapshots into images on the real engine and prove them with a capture inside (wheelhouse strategy)."""
from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import docker
import pytest

from jupyter_yolosnap import service, bake
from jupyter_yolosnap.engine import labels
from jupyter_yolosnap.snapshot import names
from jupyter_yolosnap.events import Event
from jupyter_yolosnap.exceptions import BuildFailed, EngineError, RecipeError

from .conftest import make_venv, run, yolosnap

pytestmark = pytest.mark.engine
PIP = ["-m", "pip", "install", "-q", "--disable-pip-version-check"]


@pytest.fixture
def images(engine):
    """Snapshot names unique to the test; every image and container they made is removed afterwards."""
    made: list[str] = []

    def name(prefix: str) -> str:
        made.append(f"{prefix}-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield name
    for snapshot in made:
        for tag in {t for image in engine.images.list(name=names.image_repository(snapshot)) for t in image.tags}:
            engine.images.remove(tag, force=True)
        # untagged images of the snapshot too (e.g. one a test replaced under its tag)
        for image in engine.images.list(all=True, filters={"label": f"{labels.SNAPSHOT}={snapshot}"}):
            try:
                engine.images.remove(image.id, force=True)
            except docker.errors.NotFound:
                pass
    leftovers = engine.containers.list(all=True, filters={"label": f"{labels.ROLE}=probe"})
    assert not leftovers, "probe containers left behind"


def yaml_extension_wheel(root: Path, python: Path) -> Path:
    """A wheel whose extension module links the system's libyaml: the base image lacks that library."""
    src = root / "ysnap-yaml"
    src.mkdir(parents=True)
    (src / "ysnap_yaml.c").write_text(textwrap.dedent("""\
        #include <Python.h>
        #include <yaml.h>
        static PyObject *version(PyObject *self, PyObject *args) {
            return PyUnicode_FromString(yaml_get_version_string());
        }
        static PyMethodDef methods[] = {{"version", version, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
        static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ysnap_yaml", NULL, -1, methods};
        PyMODINIT_FUNC PyInit_ysnap_yaml(void) { return PyModule_Create(&module); }
        """))
    (src / "setup.py").write_text(textwrap.dedent("""\
        from setuptools import Extension, setup
        setup(name="ysnap-yaml", version="1.0.0",
              ext_modules=[Extension("ysnap_yaml", ["ysnap_yaml.c"], libraries=["yaml"])])
        """))
    run(python, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", root / "wheels", src)
    return next((root / "wheels").glob("ysnap_yaml-1.0.0-*.whl"))


@pytest.fixture(scope="module")
def small_env(tmp_path_factory):
    """A venv with an index pin, a heavy distribution (numpy) and a local wheel that needs libyaml."""
    root = tmp_path_factory.mktemp("small-env")
    python = make_venv(root / "venv")
    run(python, *PIP, "setuptools>=64", "wheel", "six==1.16.0", "numpy==2.1.3")
    run(python, *PIP, yaml_extension_wheel(root, python))
    return python


def steps(events: list[Event]) -> list[str]:
    return [e.message for e in events if e.kind == "step"]


def test_build_check_delta_and_layer_reuse(small_env, project, images, engine):
    name = images("small")
    saved = service.save(name, str(small_env), project)
    libs = {lib["soname"]: lib for lib in saved.manifest["native_libs"]}
    assert libs["libyaml-0.so.2"]["status"] == "system" and libs["libyaml-0.so.2"]["package"] == "libyaml-0-2"

    events: list[Event] = []
    first = bake.build(name, project, listener=events.append)
    assert first.check.clean and not first.reused and not first.delta
    assert first.image == names.image_tag(saved.manifest)
    dockerfile = (project / ".yolosnap" / name / "Dockerfile").read_text()
    assert "apt-get install -y --no-install-recommends -- libyaml-0-2" in dockerfile
    assert dockerfile.index("requirements/heavy.txt") < dockerfile.index("requirements/index.txt")
    assert "http://127.0.0.1:47391/" in dockerfile and "__token__" not in dockerfile
    # the library the base lacked is there: the extension imports inside the image
    out = engine.containers.run(first.image, ["python", "-c", "import ysnap_yaml; print(ysnap_yaml.version())"],
                                network_mode="none", remove=True)
    assert out.decode().strip().startswith("0.2")
    image = engine.images.get(first.image)
    assert image.labels[labels.DIGEST] == saved.manifest["digest"]
    assert engine.images.get(f"{names.image_repository(name)}:latest").id == image.id

    again = bake.build(name, project)
    assert again.reused and again.seconds < 2

    # one small pin changes: a delta on the verified image, numpy and the rest untouched
    run(small_env, *PIP, "six==1.17.0")
    service.save(name, str(small_env), project)
    delta_events: list[Event] = []
    second = bake.build(name, project, listener=delta_events.append)
    assert second.delta and second.check.clean
    old_layers = image.attrs["RootFS"]["Layers"]
    new_layers = engine.images.get(second.image).attrs["RootFS"]["Layers"]
    assert new_layers[:len(old_layers)] == old_layers  # every layer of the verified image reused
    assert len(new_layers) - len(old_layers) == 1  # one layer, committed from one container
    delta_image = engine.images.get(second.image)
    assert delta_image.attrs["Config"]["Cmd"] == image.attrs["Config"]["Cmd"]
    assert delta_image.labels[labels.DIGEST] == service.load(name, project)["digest"]
    found = engine.containers.run(second.image, ["sh", "-c", "command -v uv; ls -A /mnt; python -c 'import six; "
                                                 "print(six.__version__)'"], network_mode="none", remove=True)
    assert found.decode().split() == ["1.17.0"]  # uv was mounted for the install, and is not in the image
    assert not any("numpy" in s or "heavy" in s for s in steps(delta_events))

    # the same change built in full (no delta) reuses the heavy layer from Docker's cache
    for tag in engine.images.get(second.image).tags:
        engine.images.remove(tag)
    full_events: list[Event] = []
    third = bake.build(name, project, incremental=False, listener=full_events.append)
    assert not third.delta and third.check.clean
    log = [(e.kind, e.message) for e in full_events if e.kind in ("step", "log")]
    heavy_step = next(i for i, (k, m) in enumerate(log) if k == "step" and "heavy.txt" in m and m.startswith("RUN"))
    assert log[heavy_step + 1] == ("log", "---> Using cache")
    # a full build again (same layer count as the first), not a delta on top of the second
    assert len(engine.images.get(third.image).attrs["RootFS"]["Layers"]) == len(old_layers)

    # back to the first manifest: the image is reused at once and :latest follows it
    run(small_env, *PIP, "six==1.16.0")
    service.save(name, str(small_env), project)
    back = bake.build(name, project)
    assert back.reused and back.image == first.image
    assert engine.images.get(f"{names.image_repository(name)}:latest").id == first.image_id


def test_every_install_kind_reproduces_with_zero_drift(sample_env, project, images, engine):
    """index, editable, local wheel, VCS (local git) and directory installs: the capture inside diffs clean."""
    name = images("kinds")
    service.save(name, str(sample_env.python), project)
    result = bake.build(name, project)
    assert result.check.clean, [(c.section, c.item, c.old, c.new) for c in result.check.drift]
    where = engine.containers.run(result.image, ["python", "-c", "import ysnap_editable; print(ysnap_editable.__file__)"],
                                  network_mode="none", remove=True).decode().strip()
    assert where == str(sample_env.editable_src / "ysnap_editable.py")  # editable, at the path it came from
    done = yolosnap("check", name, "--project", project)
    assert done.returncode == 0 and "no drift" in done.stdout


def test_check_finds_tampering(small_env, project, images, engine):
    name = images("tamper")
    service.save(name, str(small_env), project)
    built = bake.build(name, project)
    container = engine.containers.run(built.image, ["python", "-m", "pip", "uninstall", "-y", "-q", "six"],
                                      detach=True, network_mode="none")
    try:
        container.wait()
        container.commit(*built.image.split(":"))
    finally:
        container.remove(force=True)
    done = yolosnap("check", name, "--project", project)
    assert done.returncode == 1
    assert "DRIFT" in done.stdout and "six" in done.stdout


def test_cli_build_prints_the_image_last(sample_env, project, images):
    name = images("cli")
    service.save(name, str(sample_env.python), project)
    bake.build(name, project)
    done = yolosnap("build", name, "--project", project)  # already built: returns at once
    assert done.returncode == 0
    assert done.stdout.strip().splitlines()[-1] == names.image_tag(service.load(name, project))


def _hand_edit(project: Path, name: str, edit) -> None:
    path = project / ".yolosnap" / name / "snapshot.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_failing_step_keeps_the_previous_image_and_leaves_nothing(small_env, project, images, engine, tmp_path):
    name = images("fail")
    service.save(name, str(small_env), project)
    good = bake.build(name, project)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "setup.py").write_text("raise SystemExit('ysnap-broken cannot be built here')\n")
    _hand_edit(project, name, lambda m: m["packages"].append(
        {"name": "ysnap-broken", "version": "1.0", "source": "directory", "url": broken.as_uri()}))
    before = {i.id for i in engine.images.list(all=True)}
    with pytest.raises(BuildFailed) as failure:
        bake.build(name, project)
    assert str(broken) in failure.value.step and "cannot be built here" in str(failure.value)
    print(failure.value)
    assert engine.images.get(f"{names.image_repository(name)}:latest").id == good.image_id
    assert not engine.containers.list(all=True, filters={"status": "exited", "ancestor": good.image_id})
    new_tagged = [i for i in engine.images.list() if i.id not in before]
    assert new_tagged == []


@pytest.mark.parametrize("edit, error, message", [
    (lambda m: m["packages"].__setitem__(0, dict(m["packages"][0], version="999.0.0")), RecipeError,
     r"collecting wheels for 1 pinned package\(s\) failed: .*No matching distribution found for numpy==999.0.0"),
    (lambda m: m["packages"][0].__setitem__("requires_python", ">=3.99"), RecipeError,
     "cannot run on Python"),
])
def test_bad_pins_fail_before_building(small_env, project, images, edit, error, message):
    name = images("pins")
    service.save(name, str(small_env), project)
    _hand_edit(project, name, edit)
    with pytest.raises(error, match=message):
        bake.build(name, project)


def test_unknown_base_and_no_engine(small_env, project, images, monkeypatch):
    name = images("base")
    service.save(name, str(small_env), project)
    with pytest.raises(EngineError, match="is not on this machine and could not be pulled"):
        bake.build(name, project, base="yolosnap-test/no-such-base:1")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(EngineError, match="cannot reach the Docker engine"):
        bake.build(name, project)
    done = yolosnap("build", name, "--project", project)
    assert done.returncode == 2 and done.stderr.startswith("yolosnap: cannot reach the Docker engine")


def test_pinned_strategy_installs_from_the_index_inside_the_build(small_env, project, images, engine):
    name = images("pinned")
    service.save(name, str(small_env), project)
    result = bake.build(name, project, strategy="pinned")
    assert result.check.clean
    text = (project / ".yolosnap" / name / "Dockerfile").read_text()
    assert "PIP_NO_INDEX" not in text and "ARG PIP_CERT=/tmp/yolosnap/ca-bundle.crt" in text


def test_host_pip_settings_reach_the_wheelhouse_and_credentials_stay_on_the_host(project, images, engine, tmp_path,
                                                                                  monkeypatch):
    """A private wheel folder and an index with credentials, from the host's pip settings (here: its env)."""
    from .conftest import make_project

    folder = tmp_path / "private-wheels"
    src = make_project(tmp_path / "src" / "ysnap-private", "ysnap-private", "1.0.0")
    python = make_venv(tmp_path / "venv")
    run(python, *PIP, "setuptools>=64", "wheel")
    run(python, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", folder, src)
    run(python, *PIP, "--no-index", "--find-links", folder, "ysnap-private")
    name = images("private")
    secrets = {"AWS_SECRET_ACCESS_KEY": "aws-s3cret-0123456789", "HF_TOKEN": "hf_s3cretTOKEN0123456789",
               "GITHUB_TOKEN": "ghp_s3cret0123456789"}
    for key, value in secrets.items():  # in the environment of the capture and of the build
        monkeypatch.setenv(key, value)
    saved = service.save(name, str(python), project)
    assert {p["name"]: p["source"] for p in saved.manifest["packages"]}["ysnap-private"] == "index"
    manifest_text = (project / ".yolosnap" / name / "snapshot.json").read_text()
    secret = "s3cret-token-value"
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"http://builder:{secret}@127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    result = bake.build(name, project)
    assert result.check.clean
    image = engine.images.get(result.image)
    everywhere = json.dumps([image.attrs, image.history()]) + (project / ".yolosnap" / name / "Dockerfile").read_text()
    assert secret not in everywhere and str(folder) not in everywhere
    # every byte of every layer, as `docker save` writes them
    layers = b"".join(image.save(named=False))
    for value in (secret, *secrets.values()):
        assert value.encode() not in layers and value not in manifest_text and value not in everywhere


def test_notebook_build_shows_progress_and_returns_the_image(small_env, project, images):
    from IPython.core.interactiveshell import InteractiveShell

    name = images("magic")
    service.save(name, str(small_env), project)
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "jupyter_yolosnap")
        result = shell.run_cell(f"%snapshot build {name} --project {project}")
        assert result.success, result.error_in_exec
        assert f"Built {names.image_tag(service.load(name, project))}" in str(result.result)
        checked = shell.run_cell(f"%snapshot check {name} --project {project}")
        assert "no drift" in str(checked.result)
    finally:
        InteractiveShell.clear_instance()


def test_concurrent_builds_of_two_snapshots_share_layers(small_env, project, images, engine):
    """Two builds at once in one process (the server's jobs) share the wheel server's fixed address, so the pip
    layers that a third snapshot of the same environment built are reused by both."""
    import threading

    first, a, b = images("share"), images("share"), images("share")
    for name in (first, a, b):
        service.save(name, str(small_env), project)
    bake.build(first, project)  # the layers both will find in the cache
    logs: dict[str, list[Event]] = {a: [], b: []}
    results, errors = {}, []

    def build(name: str) -> None:
        try:
            results[name] = bake.build(name, project, listener=logs[name].append)
        except Exception as err:  # reported below, with the other build's outcome
            errors.append(err)

    threads = [threading.Thread(target=build, args=(name,)) for name in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors and set(results) == {a, b}, errors
    for name in (a, b):
        assert results[name].check.clean
        log = [(e.kind, e.message) for e in logs[name] if e.kind in ("step", "log")]
        runs = [i for i, (k, m) in enumerate(log) if k == "step" and m.startswith("RUN") and ".txt" in m]
        assert runs and all(log[i + 1] == ("log", "---> Using cache") for i in runs), log
        assert "http://127.0.0.1:47391/" in (project / ".yolosnap" / name / "Dockerfile").read_text()
