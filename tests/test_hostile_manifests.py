"""Hostile manifests: every field is refused on load with one line, or reaches a Dockerfile, a requirements file,
a shell line or a path as inert data. Nothing runs, nothing is written outside ``.yolosnap/``.

The cases of the trust issue are regression tests here; property-based tests (hypothesis) feed any string to every
field that a build uses, and check the loader's compiled grammar against jsonschema, the reference validator.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shlex
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from packaging.requirements import Requirement

from jupyter_yolosnap.engine import labels
from jupyter_yolosnap import service, bake
from jupyter_yolosnap.snapshot import grammar, manifest as manifest_io
from jupyter_yolosnap.bake import local_sources
from jupyter_yolosnap.exceptions import ManifestError, RecipeError, StoreError, UnsafeValue
from jupyter_yolosnap.recipe import dockerfile, plan as planning
from jupyter_yolosnap.snapshot.store import Store

from .conftest import yolosnap
from .test_manifest import sample
from .test_recipe import BASE_FACTS

HOSTILE = [
    "--find-links=/tmp/yolosnap-evil", "zlib1g; echo X > /tmp/yolosnap-injected; true", "a\nRUN touch /tmp/pwned",
    "$(touch /tmp/pwned)", "`touch /tmp/pwned`", "../../../../tmp/x", "..", "-x", "--x", "a'b", 'a"b', "a\\b", "a b",
    "a\x00b", "a\u2028b", "x" * 5000, "|cat /etc/passwd", "a\r\nb", "a\tb", "%0aRUN", "a&&b", "a>b",
]


def valid() -> dict:
    """A manifest touching every field a build uses: index, editable, VCS (with subdirectory), archive, system
    libraries, nvcc, environment."""
    m = sample(cuda={"torch": None, "tensorflow": None, "wheels": [], "nvcc": {"path": "/usr/local/cuda/bin/nvcc",
                                                                               "version": "13.0", "build": "13.0.88"}})
    m["packages"] = [
        {"name": "numpy", "version": "2.1.3", "source": "index"},
        {"name": "mylib", "version": "0.1", "source": "editable", "url": "file:///src/mylib"},
        {"name": "ultralytics", "version": "8.3.0", "source": "vcs", "url": "https://g.invalid/u.git", "vcs": "git",
         "commit": "a" * 40, "subdirectory": "pkg", "requested_revision": "main"},
        {"name": "six", "version": "1.16.0", "source": "index", "installer": "pip", "requires_python": ">=3.8"},
        {"name": "w", "version": "2.0", "source": "archive", "url": "https://files.invalid/w-2.0-py3-none-any.whl",
         "hash": "sha256=" + "0" * 64},
    ]
    return manifest_io.validate(m)


#: Every string field that reaches a Dockerfile, a shell line, a pip argument, a requirements file or a path.
FIELDS = {
    "name": lambda m, v: m.__setitem__("name", v),
    "created": lambda m, v: m.__setitem__("created", v),
    "python.version": lambda m, v: m["python"].__setitem__("version", v),
    "packages[0].name": lambda m, v: m["packages"][0].__setitem__("name", v),
    "packages[0].version": lambda m, v: m["packages"][0].__setitem__("version", v),
    "packages[1].url": lambda m, v: m["packages"][1].__setitem__("url", v),
    "packages[2].url": lambda m, v: m["packages"][2].__setitem__("url", v),
    "packages[2].vcs": lambda m, v: m["packages"][2].__setitem__("vcs", v),
    "packages[2].commit": lambda m, v: m["packages"][2].__setitem__("commit", v),
    "packages[2].subdirectory": lambda m, v: m["packages"][2].__setitem__("subdirectory", v),
    "packages[2].requested_revision": lambda m, v: m["packages"][2].__setitem__("requested_revision", v),
    "packages[2].name": lambda m, v: m["packages"][2].__setitem__("name", v),
    "packages[4].hash": lambda m, v: m["packages"][4].__setitem__("hash", v),
    "packages[3].installer": lambda m, v: m["packages"][3].__setitem__("installer", v),
    "packages[3].requires_python": lambda m, v: m["packages"][3].__setitem__("requires_python", v),
    "native_libs[0].package": lambda m, v: m["native_libs"][0].__setitem__("package", v),
    "native_libs[0].soname": lambda m, v: m["native_libs"][0].__setitem__("soname", v),
    "cuda.nvcc.version": lambda m, v: m["cuda"]["nvcc"].__setitem__("version", v),
    "cuda.torch.arch_list[1]": lambda m, v: m["cuda"].__setitem__(
        "torch", {"version": "2.14.1+cu130", "cuda": "13.0", "cudnn": "9.24.0", "arch_list": ["sm_80", v]}),
    "env key": lambda m, v: m["env"].__setitem__(v, "1"),
}

ALLOWED_INSTRUCTIONS = ("FROM", "ARG", "COPY", "RUN", "LABEL")


def logical_lines(text: str) -> list[str]:
    """Dockerfile instructions as Docker reads them: comments dropped, ``\\``-continued lines joined."""
    lines, current = [], ""
    for line in text.split("\n"):
        if not current and (line.startswith("#") or not line.strip()):
            continue
        if line.endswith("\\"):
            current += line[:-1]
            continue
        lines.append(current + line)
        current = ""
    assert not current, "a continuation runs off the end"
    return lines


def unquoted(command: str) -> str:
    """What a POSIX shell reads outside single quotes (where ``$``, backticks and operators mean something)."""
    out, quote = [], None
    for char in command:
        if quote == "'":
            quote = None if char == "'" else quote
            continue
        if char == "'" and quote is None:
            quote = "'"
            continue
        if char == '"':
            quote = None if quote == '"' else '"'
        out.append(char)
    assert quote is None, f"unbalanced quote in {command!r}"
    return "".join(out)


def assert_inert(m: dict) -> None:
    """The recipe built from ``m`` has only the renderer's own instructions, operators and expansions."""
    plan = planning.make_plan(m, "python:3.11.7-slim-bookworm", BASE_FACTS)
    image_labels = {labels.SNAPSHOT: m["name"], labels.DIGEST: m["digest"]}
    text = dockerfile.render(plan, m["name"], m["digest"], "0.1.0", bake.recipe_notes(m), image_labels)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]", text)
    for line in logical_lines(text):
        keyword = line.split(" ", 1)[0]
        assert keyword in ALLOWED_INSTRUCTIONS, line
        if keyword != "RUN":
            continue
        shell = unquoted(line[4:])
        assert "`" not in shell and "$(" not in shell, line
        assert set(re.findall(r"\$\{?([A-Za-z_]+)", shell)) <= {"PIP_FIND_LINKS"}, line
        operators = [tok for tok in shlex.shlex(line[4:], posix=True, punctuation_chars=";&|<>()")
                     if set(tok) <= set(";&|<>()")]
        assert set(operators) <= {"&&"}, (operators, line)
    for rel, body in dockerfile.requirement_files(plan).items():
        for req in body.splitlines():
            assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]*", req), (rel, req)
            assert len(Requirement(req).specifier) == 1


def load_or_refuse(m: dict) -> dict | None:
    """The manifest after the loader (a JSON round trip, as from a file), or None after a one-line refusal."""
    try:
        return manifest_io.loads(json.dumps(m), where="snapshot.json")
    except ManifestError as err:
        assert "\n" not in str(err) and len(str(err)) < 600, str(err)
        return None


@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v)[:30])
def test_hostile_values_are_refused_on_load(field, value):
    m = valid()
    FIELDS[field](m, value)
    with pytest.raises(ManifestError) as caught:
        manifest_io.loads(json.dumps(m), where="snapshot.json")
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message and "fix the file or re-save" in message
    shown = field.split(" ")[0] if field != "env key" else "env"
    assert shown in message or "control character" in message or "nested" in message, message


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(FIELDS)),
       value=st.one_of(st.text(max_size=80), st.sampled_from(HOSTILE),
                       st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}", fullmatch=True),
                       st.text(alphabet="abc019.-_+/:;&|$`'\"\\ \n()<>=!~@#%*,", max_size=40)))
def test_any_string_in_any_field_is_refused_or_inert(field, value):
    m = valid()
    FIELDS[field](m, value)
    loaded = load_or_refuse(m)
    if loaded is not None:
        assert_inert(loaded)
        for pkg in loaded["packages"]:
            if pkg["source"] == "index":
                assert not planning.requirement(pkg).startswith("-")


def test_the_valid_manifest_is_inert_and_unchanged_by_loading():
    m = valid()
    assert load_or_refuse(copy.deepcopy(m)) == m
    assert_inert(m)


# --- defence in depth: the use sites refuse what the loader would have refused -------------------------------------
@pytest.mark.parametrize("pkg", [
    {"name": "--find-links=/tmp/x", "version": "1.0", "source": "index"},
    {"name": "evil", "version": "1.0 --index-url http://127.0.0.1:9/", "source": "index"},
    {"name": "evil", "version": "1.0\n--index-url=x", "source": "index"},
    {"name": "evil", "version": "1build1", "source": "index"},
])
def test_requirement_refuses_what_is_not_a_pin(pkg):
    with pytest.raises(UnsafeValue):
        planning.requirement(pkg)


@pytest.mark.parametrize("mutate", [
    lambda m: m["native_libs"][0].update(package="zlib1g; echo X > /tmp/injected; true"),
    lambda m: m["packages"][2].update(commit="a" * 40 + "\nRUN touch /tmp/pwned"),
    lambda m: m["packages"][2].update(vcs="git+ssh"),
    lambda m: m["packages"][1].update(url="file:///src/../root/.ssh"),
    lambda m: m["packages"][2].update(subdirectory="../../etc"),
    lambda m: m.update(name="x\nRUN touch /tmp/pwned"),
])
def test_renderer_refuses_hostile_values_that_skipped_the_loader(mutate):
    m = valid()
    mutate(m)  # no loader in between: the renderer is the last line of defence
    with pytest.raises(UnsafeValue) as caught:
        plan = planning.make_plan(m, "python:3.11.7-slim-bookworm", BASE_FACTS)
        image_labels = {labels.SNAPSHOT: m["name"]}
        dockerfile.render(plan, m["name"], m["digest"], "0.1.0", (), image_labels)
    assert "\n" not in str(caught.value)


def test_base_image_option_is_one_word():
    plan = planning.make_plan(valid(), "python:3.11.7-slim-bookworm\nRUN touch /tmp/pwned", BASE_FACTS)
    with pytest.raises(UnsafeValue, match="is not an image reference"):
        dockerfile.render(plan, "x", "sha256:" + "0" * 64, "0.1.0")


# --- the loader's grammar is the schema's ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference_validator():
    import jsonschema  # the reference implementation (slow to import: tests only)

    jsonschema.Draft7Validator.check_schema(grammar.schema())
    return jsonschema.Draft7Validator(grammar.schema())


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_grammar_agrees_with_jsonschema(reference_validator, data):
    m = valid()
    paths = [p for p in _paths(m) if p]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(JSON | st.sampled_from(HOSTILE))
    target = m
    for part in path[:-1]:
        target = target[part]
    if data.draw(st.booleans()) and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = value
    ours = grammar.validator()(m) is None
    assert ours == reference_validator.is_valid(m), (path, value, grammar.schema_problem(m))


# --- whole documents ---------------------------------------------------------------------------------------------
def test_deep_and_huge_documents_are_one_line_refusals():
    deep = '{"schema_version": 1, "x": ' + "[" * 10000 + "]" * 10000 + "}"
    with pytest.raises(ManifestError, match="nested deeper"):
        manifest_io.loads(deep, where="deep.json")
    nested = valid()
    nested["git"] = {"extra": json.loads("[" * 40 + "]" * 40)}
    with pytest.raises(ManifestError, match="nested deeper than 16"):
        manifest_io.loads(json.dumps(nested))
    with pytest.raises(ManifestError, match="more than a manifest can be"):
        manifest_io.loads(" " * (grammar.MAX_BYTES + 1))


def write_manifest(project: Path, name: str, text: str) -> Path:
    folder = project / ".yolosnap" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "snapshot.json").write_text(text)
    return folder / "snapshot.json"


def test_one_bad_manifest_hides_no_other(project):
    good = valid()
    good["name"] = "good"
    write_manifest(project, "good", manifest_io.dumps(good))
    write_manifest(project, "deep", "[" * 10000 + "]" * 10000)
    write_manifest(project, "conflict", "<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> theirs\n")
    rows = {s.name: s for s in service.list_snapshots(project)}
    assert rows["good"].error is None and rows["good"].python == "3.11.7"
    assert "nested deeper" in rows["deep"].error and "not valid JSON" in rows["conflict"].error
    done = yolosnap("list", "--project", project)
    assert done.returncode == 0 and "good" in done.stdout and "unreadable" in done.stdout, done
    shown = yolosnap("show", "deep", "--project", project)
    assert shown.returncode == 2 and len(shown.stderr.strip().splitlines()) == 1 and "Traceback" not in shown.stderr


# --- the regression cases, through the CLI: refused, nothing run, nothing written ---------------------------------
def snapshot_files(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*")}


@pytest.mark.parametrize("mutate", [
    lambda m, tmp: m["packages"].extend([{"name": f"--find-links={tmp}/evil", "version": "x", "source": "index"},
                                         {"name": "evil", "version": "1.0", "source": "index"}]),
    lambda m, tmp: m["native_libs"][0].update(package=f"zlib1g; echo X > {tmp}/injected; true"),
    lambda m, tmp: m["packages"][2].update(url=f"https://g.invalid/u.git\nRUN touch {tmp}/injected"),
    lambda m, tmp: m["cuda"]["nvcc"].update(version=f"13.0\nRUN touch {tmp}/injected"),
    lambda m, tmp: m["python"].update(version=f"3.11.7\nRUN touch {tmp}/injected"),
    lambda m, tmp: m["packages"][1].update(url=f"file:///src/../..{tmp}/injected"),
], ids=["option-name", "apt-injection", "url-newline", "nvcc-newline", "python-newline", "dotdot-path"])
def test_cli_build_refuses_hostile_manifests_before_anything(project, tmp_path, mutate):
    """The found attacks: one line, exit 2, no marker, no Dockerfile, no image asked for (no engine needed)."""
    m = valid()
    m["name"] = "hostile"
    mutate(m, tmp_path)
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "setup.py").write_text(f"open({str(tmp_path / 'injected')!r}, 'w').write('ran')\n")
    write_manifest(project, "hostile", json.dumps(m))
    before = snapshot_files(project)
    done = yolosnap("build", "hostile", "--project", project)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "injected").exists()
    assert snapshot_files(project) == before  # no Dockerfile, no requirements, no temp file


@pytest.mark.parametrize("url, why", [
    ("file:///root/.ssh", "credentials folder"),
    ("file:///etc", "system or home folder"),
    ("file:///", "system or home folder"),
    ("file:///nonexistent/yolosnap-src", "no longer exists"),
])
def test_local_sources_must_be_python_projects(project, url, why):
    m = valid()
    m["name"] = "local"
    m["packages"][1]["url"] = url
    write_manifest(project, "local", json.dumps(m))
    done = yolosnap("build", "local", "--project", project)
    assert done.returncode == 2 and why in done.stderr and len(done.stderr.strip().splitlines()) == 1, done
    assert not (project / ".yolosnap" / "local" / "Dockerfile").exists()


def test_a_folder_that_is_not_a_python_project_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "secrets.txt").write_text("x")
    pkg = {"name": "mylib", "version": "0.1", "source": "editable", "url": data.as_uri()}
    with pytest.raises(RecipeError, match="is not a Python project"):
        local_sources.check(pkg)
    (data / "pyproject.toml").write_text("[project]\nname='mylib'\n")
    assert local_sources.check(pkg) == str(data)
    with pytest.raises(RecipeError, match="is not a git repository"):
        local_sources.check({**pkg, "source": "vcs", "commit": "a" * 40})


def test_copy_never_leaves_the_context(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "setup.py").write_text("")
    (src / "link").symlink_to("/etc/passwd")
    context = tmp_path / "context"
    context.mkdir()
    item = local_sources.prepare({"name": "x", "version": "1", "source": "directory", "url": src.as_uri()})
    local_sources.copy_into(context, [item])
    copied = context / "sources" / src.relative_to("/")
    assert (copied / "setup.py").is_file() and item.files == ("link", "setup.py")
    assert (copied / "link").is_symlink() and os.readlink(copied / "link") == "/etc/passwd"  # a link, not the file
    assert {p for p in tmp_path.iterdir()} == {src, context}


# --- the store: no path from a manifest, no link followed, the user's umask ---------------------------------------
def test_history_name_comes_from_no_path(project, tmp_path):
    hostile = valid()
    hostile["created"] = f"../../../..{tmp_path}/x"
    path = write_manifest(project, "yolo-v5-base", json.dumps(hostile))
    fresh = valid()
    fresh["packages"][0]["version"] = "2.2.0"
    fresh = manifest_io.validate(fresh)
    Store(project, explicit=True).save(fresh)
    written = list((path.parent / "history").iterdir())
    assert len(written) == 1 and re.fullmatch(r"[0-9TZ]*-[0-9a-f]{12}\.json", written[0].name), written
    assert not list(tmp_path.glob("x-*"))


@pytest.mark.parametrize("link", ["folder", "lock", "manifest", "history"])
def test_symlinks_in_the_store_are_refused(project, tmp_path, link):
    outside = tmp_path / "outside"
    outside.mkdir()
    store = Store(project, explicit=True)
    m = valid()
    store.save(m)  # a real snapshot first, then one part of it becomes a link
    folder = project / ".yolosnap" / m["name"]
    if link == "folder":
        os.rename(folder, outside / "moved")
        folder.symlink_to(outside / "moved")
    elif link == "lock":
        (project / ".yolosnap" / f".lock-{m['name']}").unlink(missing_ok=True)
        (project / ".yolosnap" / f".lock-{m['name']}").symlink_to(outside / "lock")
    elif link == "manifest":
        (outside / "snapshot.json").write_text((folder / "snapshot.json").read_text())
        (folder / "snapshot.json").unlink()
        (folder / "snapshot.json").symlink_to(outside / "snapshot.json")
    else:
        (folder / "history").symlink_to(outside)
    before = sorted(p.name for p in outside.rglob("*"))
    changed = copy.deepcopy(m)
    changed["packages"][0]["version"] = "9.9.9"
    with pytest.raises(StoreError, match="symbolic link"):
        store.save(manifest_io.validate(changed))
    assert sorted(p.name for p in outside.rglob("*")) == before
    if link in ("folder", "manifest"):
        with pytest.raises(StoreError, match="symbolic link"):
            store.load(m["name"])


def test_files_follow_the_umask(project):
    old = os.umask(0o022)
    try:
        store = Store(project, explicit=True)
        m = valid()
        path, _ = store.save(m)
        changed = copy.deepcopy(m)
        changed["packages"][0]["version"] = "2.2.0"
        store.save(manifest_io.validate(changed))
        written = [path, *(path.parent / "history").iterdir()]
        bake.write_dockerfile(path.parent, "FROM scratch\n")
        written.append(path.parent / "Dockerfile")
        assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o644}
    finally:
        os.umask(old)


# --- bytes coming back from a container ----------------------------------------------------------------------------
@pytest.mark.engine
def test_a_hostile_image_cannot_feed_check_a_bomb(engine, base_image, tmp_path):
    """The capture inside an image is untrusted: a 100,000-deep document or 40 MiB of output is one clear line."""
    from jupyter_yolosnap.engine.build import build_image
    from jupyter_yolosnap.engine.probe import capture_in_image
    from jupyter_yolosnap.exceptions import EngineError

    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image.tags[0]}\n"
        "RUN printf '#!/bin/sh\\nexec python3 -c \"print(chr(91) * 100000)\"\\n' > /usr/local/bin/deep"
        " && printf '#!/bin/sh\\nhead -c 41943040 /dev/zero | tr \"\\\\\\\\0\" x\\n' > /usr/local/bin/huge"
        " && printf '#!/bin/sh\\necho \"{\\\\\"python\\\\\": \\\\\"a\\\\\\\\u0000b\\\\\"}\"\\n' > /usr/local/bin/nul"
        " && chmod +x /usr/local/bin/deep /usr/local/bin/huge /usr/local/bin/nul\n")
    image = build_image(engine, str(tmp_path))
    try:
        for python, message in (("deep", "printed no capture"), ("huge", "more than 32 MiB"),
                                ("nul", "not a capture")):
            with pytest.raises(EngineError, match=message) as caught:
                capture_in_image(engine, image, python=python)
            assert "\n" not in str(caught.value)
        assert not engine.containers.list(all=True, filters={"label": f"{labels.ROLE}=probe"})
    finally:
        engine.images.remove(image, force=True)


def test_remote_code_is_built_only_when_trusted(project):
    """A VCS repository or sdist at a URL runs its setup code in the build: refused unless the user says so."""
    m = valid()
    m["name"] = "remote"
    m["packages"] = [p for p in m["packages"] if p["source"] != "editable"]  # no local source to check first
    write_manifest(project, "remote", json.dumps(m))
    done = yolosnap("build", "remote", "--project", project)
    assert done.returncode == 2 and "--trust-remote-sources" in done.stderr, done
    assert "ultralytics from https://g.invalid/u.git" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (project / ".yolosnap" / "remote" / "Dockerfile").exists()
    assert [p["name"] for p in local_sources.remote_code(m["packages"])] == ["ultralytics"]  # the .whl runs nothing


def test_pinned_strategy_builds_no_sdist_unless_trusted():
    m = valid()
    strict = dockerfile.render(planning.make_plan(m, "python:3.11.7-slim-bookworm", BASE_FACTS, "pinned"), "x",
                               m["digest"], "0.1.0")
    trusting = dockerfile.render(planning.make_plan(m, "python:3.11.7-slim-bookworm", BASE_FACTS, "pinned",
                                                    source_builds=True), "x", m["digest"], "0.1.0")
    assert "ARG PIP_ONLY_BINARY=:all:" in strict and "PIP_ONLY_BINARY" not in trusting
