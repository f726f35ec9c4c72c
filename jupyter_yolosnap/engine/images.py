"""The one place that finds a snapshot's images on the engine: the verified one, the previous one, the list view.

"Verified for a manifest" means two things at once: the image carries the tag ``snapshot.names.image_tag`` of
the manifest (tags are set only after a clean check) AND its ``labels.DIGEST`` label names that manifest's
digest. The tag alone is not enough: anyone can ``docker tag`` another image there, and a tag computed from a
12-hex prefix could in principle meet another manifest; the label is what the build wrote after proving it.

Labels are read from images other people may have built, so they are only ever compared, never interpreted.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

import docker

from ..exceptions import EngineError, NoVerifiedImage
from ..snapshot.names import IMAGE_NAMESPACE, image_tag
from . import labels
from .client import ENGINE_ERRORS, connect, explain

NOT_BUILT, BUILDING, VERIFIED, DRIFTED = "not built", "building", "verified", "drifted"
#: A 5xx answer to a read is often the engine busy elsewhere (a prune, a reload); one more try costs little.
READ_RETRIES = 1
RETRY_PAUSE_S = 0.2

T = TypeVar("T")


def read(call: Callable[[], T], doing: str) -> T:
    """Run an idempotent engine read, once more after a 5xx; ``NotFound`` goes to the caller untouched (it is an
    answer, not a failure), every other engine error becomes an ``EngineError`` line about ``doing``."""
    for attempt in range(READ_RETRIES + 1):
        try:
            return call()
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as err:
            if not err.is_server_error() or attempt == READ_RETRIES:
                raise explain(err, doing) from None
        except ENGINE_ERRORS as err:
            raise explain(err, doing) from None
        time.sleep(RETRY_PAUSE_S)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def get_image(client: Any, ref: str, doing: str) -> Any | None:
    """The image ``ref``, or None when the engine has none by that name or id."""
    try:
        return read(lambda: client.images.get(ref), doing)
    except docker.errors.NotFound:  # ImageNotFound too
        return None


def retag(client: Any, image_id: str, repository: str, tag: str) -> Any | None:
    """Point ``repository:tag`` at ``image_id``; the image the tag named before (None: a new tag), for
    :func:`put_tag_back` when what follows the tagging fails."""
    reference = f"{repository}:{tag}"
    had = get_image(client, reference, f"looking for the image {reference}")
    try:
        client.api.tag(image_id, repository, tag, force=True)
    except ENGINE_ERRORS as err:
        raise explain(err, f"tagging {reference}") from None
    return had


def put_tag_back(client: Any, repository: str, tag: str, had: Any | None, image_id: str) -> None:
    """Undo :func:`retag`: the tag back onto the image it named before, or away (the tag only: the image
    stays). Quiet: it runs while another error is raised."""
    with contextlib.suppress(*ENGINE_ERRORS):
        if had is None:
            client.api.remove_image(f"{repository}:{tag}", force=False, noprune=True)
        elif had.id != image_id:
            client.api.tag(had.id, repository, tag, force=True)


def image_labels(image: Any) -> dict:
    """An image's labels as a dict whatever the engine sent (``null`` for none)."""
    found = getattr(image, "labels", None)
    return found if isinstance(found, dict) else {}


def verified_for(found: dict, digest: str) -> bool:
    """Whether labels ``found`` say "snapshot image verified for the manifest ``digest``" (a kernel layer on top
    of one inherits its labels, so it is told apart by its own ``KERNEL_PATH`` label)."""
    return found.get(labels.DIGEST) == digest and labels.KERNEL_PATH not in found


def verified_image(client: Any, manifest: dict) -> Any | None:
    """The verified image of ``manifest``, or None (not built, or the tag holds another manifest's image)."""
    tag = image_tag(manifest)
    image = get_image(client, tag, f"looking for the image {tag}")
    if image is None or not verified_for(image_labels(image), manifest["digest"]):
        return None
    return image


def require_verified(client: Any, manifest: dict) -> Any:
    """The verified image of ``manifest``, or ``NoVerifiedImage`` saying how to build it."""
    image = verified_image(client, manifest)
    if image is None:
        raise NoVerifiedImage(manifest["name"], image_tag(manifest))
    return image


def labelled_image(client: Any, ref: str, wanted: dict[str, str]) -> Any | None:
    """The image ``ref`` when it carries every label of ``wanted`` with that value, else None."""
    image = get_image(client, ref, f"looking for the image {ref}")
    if image is None:
        return None
    have = image_labels(image)
    return image if all(have.get(key) == value for key, value in wanted.items()) else None


def previous_verified(client: Any, name: str, revisions: Iterable[dict]) -> tuple[Any, dict] | None:
    """The newest verified image of one of ``revisions`` (this project's stored manifests of snapshot ``name``,
    newest first: images of the same age go to the newer revision) and that manifest: what a delta build starts
    from. None when there is none, which means a full build.

    Found by the ``SNAPSHOT`` label in one list call, so any verified revision counts (not only ``:latest``,
    which another project's snapshot of the same name may have moved). An image counts only when its
    ``DIGEST`` label is one of ``revisions`` and it still carries that revision's verified tag. ``revisions`` is
    read only when the engine holds a candidate. An image removed between the list and the get is skipped; an
    engine that fails or is gone is an ``EngineError``, never a silent full rebuild.
    """
    doing = f"looking for the previous image of snapshot {name!r}"
    rows = read(lambda: client.api.images(filters={"label": f"{labels.SNAPSHOT}={name}"}), doing)
    by_digest: dict[str, list[dict]] = {}
    for row in rows or []:
        row_labels = row.get("Labels") or {}
        digest = row_labels.get(labels.DIGEST)
        if isinstance(digest, str) and verified_for(row_labels, digest):
            by_digest.setdefault(digest, []).append(row)
    if not by_digest:
        return None
    ours = [m for m in revisions if m.get("digest") in by_digest]
    candidates = [(row.get("Created") or 0, order, row["Id"], manifest) for order, manifest in enumerate(ours)
                  for row in by_digest[manifest["digest"]] if image_tag(manifest) in (row.get("RepoTags") or [])]
    for _, _, image_id, manifest in sorted(candidates, key=lambda c: (c[0], -c[1]), reverse=True):
        image = get_image(client, image_id, doing)
        if image is not None:
            return image, manifest
    return None


@dataclass(frozen=True)
class ImageState:
    """What the list view says of one snapshot's image: its state and the tag it means."""

    state: str
    tag: str | None
    id: str | None = None    # the image that tag points to (verified or drifted)
    size: int | None = None  # its size in bytes, base included

    def to_dict(self) -> dict:
        return {"state": self.state, "tag": self.tag, "id": self.id, "size": self.size}


class ImageIndex:
    """The ``yolosnap/*`` tags on the engine with their images' labels, read in one engine call so the list
    stays fast (empty, with ``error`` set, when the engine cannot be reached).

    ``verified``: the current manifest's tag exists and its digest label matches. ``drifted``: another image of
    the snapshot exists (the manifest changed since, or the tag holds another manifest). ``not built``: neither.
    """

    def __init__(self, images: dict[str, dict] | None = None, error: str | None = None,
                 facts: dict[str, tuple[str, int]] | None = None):
        self.images = images or {}  # tag -> labels of the image it points to
        self.error = error
        self.facts = facts or {}    # tag -> (image id, size)

    @property
    def tags(self) -> set[str]:
        return set(self.images)

    @classmethod
    def read(cls, client: Any | None = None) -> "ImageIndex":
        """One ``GET /images/json`` (docker-py's high-level list would inspect every image)."""
        own = client is None
        try:
            client = client or connect(timeout=10)
            rows = read(lambda: client.api.images(), "listing images")
        except EngineError as err:
            return cls({}, str(err))
        finally:
            if own and client is not None:
                client.close()
        ours = [(tag, row) for row in rows or [] for tag in (row.get("RepoTags") or [])
                if tag.startswith(f"{IMAGE_NAMESPACE}/")]
        return cls({tag: row.get("Labels") or {} for tag, row in ours}, None,
                   {tag: (str(row.get("Id", "")), int(row.get("Size") or 0)) for tag, row in ours})

    def state(self, manifest: dict, building: bool = False) -> ImageState:
        tag = image_tag(manifest)
        if building:
            return ImageState(BUILDING, tag)
        if tag in self.images and verified_for(self.images[tag], manifest["digest"]):
            return ImageState(VERIFIED, tag, *self.facts.get(tag, (None, None)))
        repository = tag.split(":")[0]
        older = sorted(t for t in self.images if t.startswith(repository + ":"))
        if older:
            latest = f"{repository}:latest"
            shown = latest if latest in older else older[0]
            return ImageState(DRIFTED, shown, *self.facts.get(shown, (None, None)))
        return ImageState(NOT_BUILT, None)
