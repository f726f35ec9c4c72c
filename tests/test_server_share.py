"""The sharing REST routes (export, push, the Kubernetes Job) through a real Jupyter Server and the real engine,
with one snapshot built once for the module; every hostile value is refused in one line with nothing written.

As in ``test_server.py``, pytest-jupyter's fixtures are imported into this module only, and the tests drive the
server's loop with ``call``.
"""
from __future__ import annotations

import asyncio
import json
import os
import tarfile
import time
import uuid
from pathlib import Path

import docker
import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (jp_fetch, jp_serverapp and what they need)

from jupyter_yolosnap import service
from jupyter_yolosnap.share import archive, records

from .server_support import call, jp_server_config  # noqa: F401  (fixtures)
from .share_support import build_six_snapshot, remove_snapshot_images

pytestmark = pytest.mark.engine
UNREACHABLE = "127.0.0.1:1/x:y"  # nothing listens on port 1


@pytest.fixture(scope="module")
def site(tmp_path_factory, engine, base_image):
    """The server's root: ``proj/`` (a project with the snapshot NAME built and verified, and UNBUILT saved only,
    notebooks in ``proj/nb``); ``outside/`` is a folder beside the root that no request may reach."""
    top = tmp_path_factory.mktemp("server-share")
    root, outside = top / "root", top / "outside"
    (root / "proj" / "nb").mkdir(parents=True)
    outside.mkdir()
    unbuilt = f"srvraw-{uuid.uuid4().hex[:8]}"
    name, _, built = build_six_snapshot(tmp_path_factory, top, "srvshare", project=root / "proj", unbuilt=(unbuilt,))
    yield {"root": root, "outside": outside, "project": root / "proj", "name": name, "unbuilt": unbuilt,
           "image_id": built.image_id}
    remove_snapshot_images(engine, name, UNREACHABLE)


@pytest.fixture
def jp_root_dir(site):
    return site["root"]


def one_line(reply: dict) -> str:
    """The reply's message, after checking it is one line (no traceback, nothing echoed raw)."""
    assert set(reply) == {"message"}, reply
    message = reply["message"]
    assert message and "\n" not in message and "\r" not in message and "Traceback" not in message, message
    assert len(message) < 600, message
    return message


def files_under(*folders: Path) -> set[str]:
    """Every path under ``folders`` (links not followed), the store's own files left out."""
    found = set()
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for entry in (*dirnames, *filenames):
                path = Path(dirpath, entry)
                if ".yolosnap" not in path.relative_to(folder).parts:
                    found.add(str(path))
    return found


def snapshot_of(path: Path) -> dict:
    """The archive's index (its first member), read with the standard library's tarfile."""
    with tarfile.open(path, "r:gz") as tar:
        first = tar.next()
        assert first is not None and first.name == archive.INDEX and first.isreg()
        index = json.loads(tar.extractfile(first).read())
        names = tar.getnames()
    assert names[1] == archive.MANIFEST and names[-1] == archive.SUMS
    assert any(n.startswith(archive.PART_PREFIX) for n in names)
    return index


def export_url(site) -> tuple[str, ...]:
    return ("yolosnap", "snapshots", site["name"], "export")


# --- export -------------------------------------------------------------------------------------------------
def test_export_writes_an_archive_into_the_notebooks_folder(call, jp_fetch, jp_asyncio_loop, site):
    name, folder = site["name"], site["project"] / "nb"
    target = folder / f"{name}.tar.gz"

    async def export_while_serving():
        """The export runs off the event loop: the server answers another request meanwhile."""
        export = asyncio.ensure_future(jp_fetch(*export_url(site), method="POST", params={"path": "proj/nb"},
                                                body=json.dumps({"file": f"{name}.tar.gz"}), request_timeout=300,
                                                raise_error=False))
        await asyncio.sleep(0.3)
        await jp_fetch("api", "status")
        answered = time.monotonic()
        response = await export
        return response, answered, time.monotonic()

    response, answered, done = jp_asyncio_loop.run_until_complete(export_while_serving())
    assert response.code == 200, response.body
    reply = json.loads(response.body)
    assert reply["file"] == f"proj/nb/{name}.tar.gz"
    assert reply["bytes"] == target.stat().st_size > 1_000_000
    assert reply["image_id"] == site["image_id"] and reply["digest"] == service.load(name, site["project"])["digest"]
    assert reply["seconds"] > 0 and answered < done
    index = snapshot_of(target)
    assert index["snapshot"] == name and index["digest"] == reply["digest"] and index["image"] == site["image_id"]
    assert sorted(p.name for p in folder.iterdir()) == [target.name]  # no temp file left beside it

    again = one_line(call("POST", *export_url(site), status=409, body={"file": target.name}, path="proj/nb"))
    assert again == f"proj/nb/{name}.tar.gz already exists; choose another file name, or replace it"
    target.write_bytes(b"old")
    replaced = call("POST", *export_url(site), body={"file": target.name, "replace": True}, path="proj/nb")
    assert replaced["bytes"] == target.stat().st_size and snapshot_of(target)["snapshot"] == name

    # the default file name, in the project's own folder
    default = call("POST", *export_url(site), body={}, path="proj")
    assert default["file"] == f"proj/{name}.tar.gz" and snapshot_of(site["root"] / default["file"])["snapshot"] == name
    (site["root"] / default["file"]).unlink()
    target.unlink()


HOSTILE_FILES = [
    "", ".tar.gz", "x.tar", "x.zip", "x.tar.gz.sh", "../x.tar.gz", "..", "a..b.tar.gz", "/etc/x.tar.gz",
    "sub/x.tar.gz", "sub\\x.tar.gz", "-rf.tar.gz", "--x.tar.gz", ".hidden.tar.gz", "a;rm -rf ~.tar.gz",
    "$(touch pwned).tar.gz", "`id`.tar.gz", "a|b.tar.gz", "a&b.tar.gz", "a b.tar.gz", "a\nb.tar.gz",
    "x.tar.gz\n", "a\x00b.tar.gz", "a\rb.tar.gz", "\u2028.tar.gz", "é.tar.gz", "x" * 194 + ".tar.gz",
    "x" * 100_000 + ".tar.gz", 7, None, ["x.tar.gz"], {"x": 1}, True,
]


def test_hostile_export_requests_are_refused_one_line_and_write_nothing(call, site):
    root, outside, name = site["root"], site["outside"], site["name"]
    victim = outside / "victim.tar.gz"
    link = site["project"] / "nb" / "link.tar.gz"
    link.symlink_to(victim)
    (site["project"] / "nb" / "dir.tar.gz").mkdir()
    (outside / "nb").mkdir()
    (root / "escape").symlink_to(outside / "nb", target_is_directory=True)
    before = files_under(root, outside)
    try:
        for file in HOSTILE_FILES:
            message = one_line(call("POST", *export_url(site), status=400, body={"file": file}, path="proj/nb"))
            assert message.startswith("file ") and "must be a plain file name ending in .tar.gz" in message, file
        # a link under the file's name is refused even with replace: nothing is written where it points
        for replace in (False, True):
            message = one_line(call("POST", *export_url(site), status=400, body={"file": link.name,
                                                                               "replace": replace}, path="proj/nb"))
            assert message == ("link.tar.gz in that folder is a link; an archive is written only as a plain file: "
                               "choose another file name")
        assert one_line(call("POST", *export_url(site), status=409, body={"file": "dir.tar.gz", "replace": True},
                             path="proj/nb")) == "proj/nb/dir.tar.gz is a folder; choose another file name"
        for path, status in (("../", 400), ("/etc", 400), (str(outside), 400), ("proj/../../outside", 400),
                             ("escape", 400), ("proj/nb/../../..", 400), ("missing", 404), ("proj/.yolosnap", 400),
                             (f"proj/.yolosnap/{name}", 400), ("proj/nb\nx", 404), ("x" * 5000, 400)):
            one_line(call("POST", *export_url(site), status=status, body={"file": "ok.tar.gz"}, path=path))
        for replace in ("yes", 1, None, [True]):
            assert "must be true or false" in one_line(call("POST", *export_url(site), status=400,
                                                            body={"file": "ok.tar.gz", "replace": replace},
                                                            path="proj/nb"))
        for raw in ("[]", '"x.tar.gz"', "null", "{", "x" * 10_000):
            one_line(call("POST", *export_url(site), status=400, raw_body=raw, path="proj/nb"))
        for bad_name in ("x..y", "..", "-x", "a b"):
            assert "invalid snapshot name" in one_line(call("POST", "yolosnap", "snapshots", bad_name, "export",
                                                            status=400, body={"file": "ok.tar.gz"}, path="proj"))
        one_line(call("POST", "yolosnap", "snapshots", "nope", "export", status=404, body={}, path="proj"))
        unbuilt = one_line(call("POST", "yolosnap", "snapshots", site["unbuilt"], "export", status=409,
                                body={"file": "ok.tar.gz"}, path="proj/nb"))
        assert "has no image verified" in unbuilt and "build it first" in unbuilt
        assert not victim.exists() and not os.path.lexists(victim)
        assert files_under(root, outside) == before  # no archive, no temp file, anywhere
    finally:
        link.unlink()
        (site["project"] / "nb" / "dir.tar.gz").rmdir()
        (root / "escape").unlink()


def test_unauthenticated_requests_are_refused(call, site):
    for method, part in (("POST", "export"), ("POST", "push"), ("GET", "k8s")):
        message = one_line(call(method, "yolosnap", "snapshots", site["name"], part, status=403,
                                headers={"Authorization": ""}, path="proj"))
        assert "not logged in" in message or "_xsrf" in message
    assert not list((site["project"] / "nb").iterdir())


# --- push ---------------------------------------------------------------------------------------------------
HOSTILE_REFERENCES = [
    "", " ", "x; rm -rf /", "registry.example.com/team/x:y;id", "$(id)/x:y", "`id`", "a|b", "x:y\n", "x\n:y",
    "x:y\x00", "--x", "-x:y", "../x:y", "team/../x:y", "/abs/x:y", "UPPER/Case:y", "x:y:z", "x:" + "t" * 200,
    "a" * 100_000, "registry.example.com/team/x@sha256:" + "a" * 64, "yolosnap/x:y", "docker.io/yolosnap/x:y",
    "x y:z", "é/x:y", 7, None, ["x:y"], {"reference": "x:y"}, True,
]


def test_push_refuses_hostile_references_and_says_the_registry_is_unreachable(call, site, engine):
    name = site["name"]
    for reference in HOSTILE_REFERENCES:
        reply = call("POST", "yolosnap", "snapshots", name, "push", status=400, body={"reference": reference},
                     path="proj/nb")
        message = one_line(reply)
        assert ("is not an image reference" in message or "names a digest" in message
                or "where this tool keeps verified images" in message), (reference, message)
    one_line(call("POST", "yolosnap", "snapshots", name, "push", status=400, body={}, path="proj"))
    unbuilt = one_line(call("POST", "yolosnap", "snapshots", site["unbuilt"], "push", status=409,
                            body={"reference": "registry.example.com/x:y"}, path="proj"))
    assert "build it first" in unbuilt

    message = one_line(call("POST", "yolosnap", "snapshots", name, "push", status=502,
                            body={"reference": UNREACHABLE}, path="proj/nb"))
    assert message.startswith(f"pushing {UNREACHABLE} failed: cannot reach the registry 127.0.0.1:1"), message
    with pytest.raises(docker.errors.ImageNotFound):  # the tag the push made is gone again
        engine.images.get(UNREACHABLE)
    assert records.read(service.open_store(site["project"]), name) == []  # nothing recorded
    assert not list((site["project"] / "nb").iterdir())


# --- the Kubernetes Job -------------------------------------------------------------------------------------
def k8s(call, site, status: int = 200, **params: str):
    return call("GET", "yolosnap", "snapshots", site["name"], "k8s", status=status, path="proj/nb", **params)


HOSTILE_COMMANDS = ["", "   ", "--x", "-c true", "python 'train.py", 'python "x', "python train.py\nrm -rf /",
                    "python\rx", "python\x7f", "python \u2028x", "x" * 10_000]
HOSTILE_GPUS = ["abc", "-1", "1;2", "1 2", "$(id)", "²", "1.5", "0x1", "9" * 10_000, "１"]


def test_k8s_job_needs_a_push_then_names_the_pushed_image(call, site):
    name, store = site["name"], service.open_store(site["project"])
    message = one_line(k8s(call, site, 409, command="python train.py"))
    assert message.startswith(f"a cluster pulls the image from a registry: push snapshot {name!r} first"), message

    # the request's own values are refused first (400), pushed or not
    for command in HOSTILE_COMMANDS:
        one_line(k8s(call, site, 400, command=command))
    for gpus in HOSTILE_GPUS:
        assert "must be a number of GPUs" in one_line(k8s(call, site, 400, command="python x.py", gpus=gpus))
    assert "invalid snapshot name" in one_line(call("GET", "yolosnap", "snapshots", "..", "k8s", status=400,
                                                    path="proj"))
    one_line(call("GET", "yolosnap", "snapshots", "nope", "k8s", status=404, path="proj"))
    for path in ("../", "/etc", "proj/../../outside"):
        one_line(call("GET", "yolosnap", "snapshots", name, "k8s", status=400, path=path, command="python x.py"))

    # a push, as registry.json records it
    digest = "sha256:" + "a" * 64
    manifest = store.load(name)
    records.append(store, name, "push", "registry.example.com/team/x:y", digest, site["image_id"],
                   manifest["digest"])
    try:
        reply = k8s(call, site, command="python train.py --epochs 3 --note 'a b' $(rm -rf /); `id` | x", gpus="2")
        assert set(reply) == {"yaml", "image"}
        assert reply["image"] == f"registry.example.com/team/x@{digest}"
        text = reply["yaml"]
        assert "kind: Job" in text and f"image: registry.example.com/team/x@{digest}" in text
        assert "nvidia.com/gpu: '2'" in text
        import yaml

        job = yaml.safe_load(text)
        container = job["spec"]["template"]["spec"]["containers"][0]
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        # shell metacharacters are arguments, never a shell's: each word arrives as typed ($( escaped for k8s)
        assert argv[-12:] == ["python", "train.py", "--epochs", "3", "--note", "a b", "$$(rm", "-rf", "/);",
                              "`id`", "|", "x"], argv
        default = k8s(call, site)  # no command given: python train.py, a CPU job
        assert "python" in default["yaml"] and "train.py" in default["yaml"] and "nvidia.com/gpu" not in default["yaml"]
        for gpus in ("0", "65", "9999"):  # digits, out of the library's range
            assert "--gpus" in one_line(k8s(call, site, 400, command="python x.py", gpus=gpus))
        for command in HOSTILE_COMMANDS:
            one_line(k8s(call, site, 400, command=command))
    finally:
        (store.folder(name) / records.RECORDS_FILE).unlink()
    one_line(k8s(call, site, 409, command="python train.py"))
