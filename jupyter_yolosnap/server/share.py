"""Sharing a verified snapshot from the panel: export an archive into the notebook's folder, push to a registry,
and render the Kubernetes Job that runs a command in the pushed image.

``POST .../snapshots/NAME/export?path=FOLDER`` ``{"file": "NAME.tar.gz", "replace": false}``
    writes the archive into ``FOLDER`` (the notebook's folder, confined to the server's root); the file must be a
    plain name ending ``.tar.gz``, and an existing one is replaced only when asked (409 otherwise).
``POST .../snapshots/NAME/push?path=`` ``{"reference": "REGISTRY/REPO:TAG"}``
    pushes the verified image, its manifest inside; the reply names it by digest.
``GET .../snapshots/NAME/k8s?path=&command=python%20train.py&gpus=N``
    the Job's YAML, for the image where this manifest was last pushed or pulled (409 until it was).

Every value of a request is checked here before it reaches the library, and refused with one line (400):
the library checks again, so these checks only make the answer earlier and the message the panel's.
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

from tornado import web

from .. import service
from ..exceptions import KubernetesUsageError, RegistryError, RuntimeFailure, UsageFailure
from ..snapshot.grammar import shorten
from ..snapshot.names import validate_name
from ..snapshot.store import STORE_DIR, Store
from . import project
from .handlers import YolosnapHandler

#: The longest archive file name accepted, and its grammar: no folders, no leading '-' or '.', ASCII only.
MAX_FILE = 200
_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*\.tar\.gz")
#: The longest command (as typed, before splitting) and ``gpus`` value accepted.
MAX_COMMAND = 8192
_GPUS = re.compile(r"[0-9]{1,4}")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class NotPushed(RuntimeFailure):
    """A Kubernetes Job was asked for before the snapshot was pushed (or pulled): 409, push it first."""


def check_file(value: Any) -> str:
    """``value`` when it is a plain archive file name (``NAME.tar.gz``), else a one-line ``UsageFailure``."""
    if (not isinstance(value, str) or not 0 < len(value) <= MAX_FILE or ".." in value
            or _FILE.fullmatch(value) is None or value == ".tar.gz"):
        raise UsageFailure(f"file {shorten(value)} must be a plain file name ending in .tar.gz (at most {MAX_FILE} "
                           "letters, digits, '.', '_', '+' or '-', no folders, not starting with '-' or '.'), "
                           "e.g. train.tar.gz")
    return value


def check_reference(value: Any) -> str:
    """``value`` when it is a registry reference a push accepts (``REGISTRY/REPO:TAG``), else one line (400)."""
    from ..share import registry

    try:
        registry.parse_reference(value, digest_ok=False)
    except RegistryError as err:
        raise UsageFailure(str(err)) from None
    return value


def check_command(value: Any) -> list[str]:
    """The ``command`` query value split as a shell would split it (nothing is run by a shell), else one line."""
    hint = "give the command to run in the image, e.g. python train.py --epochs 3"
    if not isinstance(value, str) or not value.strip():
        raise UsageFailure(f"no command given: {hint}")
    if len(value) > MAX_COMMAND:
        raise UsageFailure(f"the command is over {MAX_COMMAND} characters: put long inputs in a file on a volume")
    if _CONTROL.search(value):
        raise UsageFailure(f"command {shorten(value)} holds a newline or another control character: {hint}")
    try:
        argv = shlex.split(value)
    except ValueError as err:
        raise UsageFailure(f"command {shorten(value)} cannot be split into arguments ({err}): close its quotes, "
                           "e.g. python train.py --name 'my run'") from None
    if not argv:
        raise UsageFailure(f"no command given: {hint}")
    if argv[0].startswith("-"):
        raise UsageFailure(f"command {shorten(argv[0])} is not a program name: {hint}")
    return argv


def check_gpus(value: str) -> str | None:
    """``gpus``: empty (a CPU job) or a count; the library checks its range."""
    if value == "":
        return None
    if _GPUS.fullmatch(value) is None:
        raise UsageFailure(f"gpus={shorten(value)} must be a number of GPUs per pod (e.g. 1), or empty for a CPU job")
    return value


def _target(root_dir: str, path: str, file: str) -> tuple[Path, str]:
    """The archive's path in the request's folder and its path relative to the server's root (what the file
    browser shows). Refuses a folder inside a store, and a link or folder under the file's name."""
    folder = project.folder_of(root_dir, path)
    root = Path(root_dir).expanduser().resolve()
    rel_folder = folder.relative_to(root)
    if STORE_DIR in rel_folder.parts:
        raise UsageFailure(f"path {shorten(path)} is inside a snapshot store ({STORE_DIR}); export into the "
                           "notebook's folder")
    target = folder / file
    if target.is_symlink():
        raise UsageFailure(f"{file} in that folder is a link; an archive is written only as a plain file: choose "
                           "another file name")
    return target, (rel_folder / file).as_posix()


class _FileExists(RuntimeFailure):
    """The archive's file exists and ``replace`` was not given (409)."""


def _export(store: Store, root_dir: str, path: str, name: str, file: str, replace: bool) -> dict:
    target, relative = _target(root_dir, path, file)
    if target.is_dir():
        raise _FileExists(f"{relative} is a folder; choose another file name")
    if os.path.lexists(target) and not replace:
        raise _FileExists(f"{relative} already exists; choose another file name, or replace it")
    exported = service.export(name, str(target), store.project)
    return {"file": relative, "bytes": exported.bytes, "digest": exported.digest, "image_id": exported.image_id,
            "seconds": round(exported.seconds, 3)}


def _push(store: Store, name: str, reference: str) -> dict:
    pushed = service.push(name, reference, store.project)
    return {"reference": pushed.reference, "by_digest": pushed.by_digest, "digest": pushed.digest,
            "seconds": round(pushed.seconds, 3)}


def _k8s(store: Store, name: str, argv: list[str], gpus: str | None) -> dict:
    from ..share import k8s, records

    data = store.load(name)
    image = records.published(store, data["name"], data["digest"])
    try:
        job = service.k8s_job(name, argv, store.project, service.K8sOptions(image=image, gpus=gpus))
    except KubernetesUsageError as err:
        if image is None:  # the first thing k8s_job says without a push: push it first
            raise NotPushed(str(err)) from None
        raise
    return {"yaml": k8s.to_yaml(job), "image": image}


class ExportHandler(YolosnapHandler):
    """``POST /yolosnap/snapshots/NAME/export``: the snapshot and its verified image in one ``.tar.gz``."""

    @web.authenticated
    async def post(self, name: str) -> None:
        store = self.idle_store(name, "export it")
        body = self.json_body()
        file = check_file(body.get("file", f"{name}.tar.gz"))
        replace = body.get("replace", False)
        if not isinstance(replace, bool):
            raise UsageFailure(f"replace={shorten(replace)} must be true or false")
        self.reply(await self.blocking(_export, store, self.settings["server_root_dir"],
                                       self.get_query_argument("path", ""), name, file, replace))


class PushHandler(YolosnapHandler):
    """``POST /yolosnap/snapshots/NAME/push``: push the verified image (its manifest inside) to a registry."""

    @web.authenticated
    async def post(self, name: str) -> None:
        store = self.idle_store(name, "push it")
        reference = check_reference(self.json_body().get("reference"))
        self.reply(await self.blocking(_push, store, name, reference))


class K8sHandler(YolosnapHandler):
    """``GET /yolosnap/snapshots/NAME/k8s?command=...&gpus=N``: the Kubernetes Job that runs the command."""

    @web.authenticated
    async def get(self, name: str) -> None:
        store = self.store()
        validate_name(name)
        argv = check_command(self.get_query_argument("command", "python train.py"))
        gpus = check_gpus(self.get_query_argument("gpus", ""))
        self.reply(await self.blocking(_k8s, store, name, argv, gpus))


ROUTES = [("/export/?", ExportHandler), ("/push/?", PushHandler), ("/k8s/?", K8sHandler)]
