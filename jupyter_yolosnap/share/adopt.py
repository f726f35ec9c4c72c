"""Adopting a snapshot that came from someone else (an archive, a registry): the checks and the one way in.

Both :func:`..share.archive.import_archive` and :func:`..share.registry.pull` end with an image on the engine and
a manifest that were read from untrusted bytes. Before anything is registered they must agree: the manifest is
valid and its ``digest`` field recomputes, the image's labels name exactly that manifest (``labels.SNAPSHOT``,
``labels.DIGEST``, and it is not a kernel layer), the project has no other environment under that name (unless
replacing), and, as for a build, a capture inside the image diffs clean. Only then is the manifest saved through
the store (history kept) and the image tagged ``names.image_tag`` and ``:latest``.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import docker

from ..bake.check import CheckResult, check_image
from ..engine import images, labels
from ..engine.client import ENGINE_ERRORS, explain
from ..events import Event, Listener
from ..exceptions import DriftFound, ManifestError, SnapshotExists, SnapshotNotFound, YolosnapError
from ..snapshot import grammar, manifest as manifest_io
from ..snapshot.names import image_tag
from ..snapshot.store import Store

#: What an image's ``labels.ACCEPTED`` may say (anything else on an untrusted image is ignored).
KNOWN_ACCEPTED = frozenset({"pypi"})


def load_untrusted(text: str, where: str, error: type[YolosnapError]) -> dict:
    """A manifest read from untrusted bytes: valid (``manifest.loads``) AND carrying the digest its content
    recomputes to. ``loads`` alone refreshes the digest of a hand edit; a manifest that travelled must not have
    been edited on the way."""
    if len(text) > grammar.MAX_BYTES:
        raise error(f"{where} is more than {grammar.MAX_BYTES // 1048576} MiB; that is not a snapshot manifest")
    try:
        manifest = manifest_io.loads(text, where=where)
    except ManifestError as err:
        raise error(str(err)) from None
    claimed = json.loads(text).get("digest")  # parsed once already: cannot fail now
    if claimed != manifest["digest"]:
        raise error(f"{where} says digest {grammar.shorten(claimed, 80)} but its content hashes to "
                    f"{manifest['digest']}: it was changed after it was saved; get an untouched copy")
    return manifest


def require_labels(found: dict, manifest: dict, where: str, error: type[YolosnapError]) -> None:
    """The image's labels must name this manifest: its snapshot name and digest, and no kernel layer."""
    name, digest = found.get(labels.SNAPSHOT), found.get(labels.DIGEST)
    if digest != manifest["digest"] or name != manifest["name"]:
        raise error(f"{where} is labelled snapshot {grammar.shorten(name)} with digest {grammar.shorten(digest, 80)}, "
                    f"not the manifest it came with ({manifest['name']!r}, {manifest['digest']}): refused")
    if labels.KERNEL_PATH in found:
        raise error(f"{where} is a kernel layer (label {labels.KERNEL_PATH}), not a snapshot image: refused")


def accepted(found: dict) -> frozenset:
    """What the image's build accepted (``labels.ACCEPTED``), keeping only values this tool knows."""
    value = found.get(labels.ACCEPTED)
    return frozenset(str(value).split(",")) & KNOWN_ACCEPTED if isinstance(value, str) else frozenset()


def refuse_conflict(store: Store, manifest: dict, replace: bool) -> str | None:
    """``SnapshotExists`` when the project holds another environment under this name and ``replace`` is false.
    Returns the digest of the snapshot stored under the name (None when there is none)."""
    name = manifest["name"]
    try:
        current = store.load(name)["digest"]
    except SnapshotNotFound:
        return None
    except ManifestError:
        current = "an unreadable manifest"
    if current != manifest["digest"] and not replace:
        raise SnapshotExists(f"snapshot {name!r} already exists in {store.project} with another environment "
                             f"({current}); nothing was changed: replace it (--replace; the current one stays in "
                             f"history) or delete it first (yolosnap delete {name})")
    return current


def verify(client: Any, image_id: str, manifest: dict, found: dict, listener: Listener) -> CheckResult:
    """The build's proof, again: a capture inside the image (no network), diffed against the manifest."""
    listener(Event("phase", "checking the image against the snapshot (a capture inside it)"))
    result = check_image(client, image_id, manifest, accepted(found))
    if not result.clean:
        items = ", ".join(f"{c.item} ({c.old or '-'} -> {c.new or '-'})" for c in result.drift[:5])
        raise DriftFound(f"the image does not hold snapshot {manifest['name']!r}: {items}"
                         f"{' and more' if len(result.drift) > 5 else ''}; refused, nothing was registered")
    return result


def image_ids(client: Any) -> set[str]:
    """The id of every image on the engine now (to tell later which ones an operation brought)."""
    rows = images.read(lambda: client.api.images(all=True, quiet=True), "listing images")
    return set(rows or [])


def remove_new_image(client: Any, image_id: str | None, before: set[str]) -> None:
    """Remove ``image_id`` when it was not on the engine before and nothing else uses it (no tag, container or
    child image keeps it: the engine refuses those removals, and they are kept)."""
    if not image_id or image_id in before:
        return
    with contextlib.suppress(*ENGINE_ERRORS):
        client.api.remove_image(image_id, force=False, noprune=False)


@dataclass(frozen=True)
class Registered:
    path: Path                 # the manifest in the store
    tag: str                   # the verified tag
    previous: str | None       # the digest it replaced (None: a new snapshot, or the same one again)


def register(client: Any, store: Store, image_id: str, manifest: dict, listener: Listener,
             also: Callable[[Path], None] | None = None) -> Registered:
    """Save the manifest (its previous revision kept in history) and tag the image as verified.

    The digest tag comes first (it names this manifest only, so it means nothing without it), then the manifest,
    then ``:latest``. A failing save removes the digest tag again when this call added it. ``also`` writes what
    belongs beside the manifest (the recipe files of an archive) once it is saved.
    """
    tag = image_tag(manifest)
    repository, version = tag.split(":")
    had = images.retag(client, image_id, repository, version)
    try:
        path, previous = store.save(manifest)
        if also is not None:
            also(store.folder(manifest["name"]))
    except BaseException:
        images.put_tag_back(client, repository, version, had, image_id)
        raise
    try:
        client.api.tag(image_id, repository, "latest", force=True)
    except ENGINE_ERRORS as err:
        raise explain(err, f"tagging {repository}:latest") from None
    listener(Event("phase", f"verified: {tag}"))
    return Registered(path, tag, previous if previous != manifest["digest"] else None)


def get_labels(client: Any, image_id: str, doing: str) -> dict:
    """The labels of image ``image_id``; ``{}`` when it is gone."""
    try:
        image = images.read(lambda: client.images.get(image_id), doing)
    except docker.errors.NotFound:
        return {}
    return images.image_labels(image)
