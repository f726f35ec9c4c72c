"""Which images the engine holds for each snapshot, read in one engine call so the list stays fast.

``verified``: the tag of the current manifest exists (tags are only set after a clean check). ``drifted``: an
older image of the snapshot exists, but the manifest changed since it was built. ``not built``: neither.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..snapshot.names import image_tag
from ..engine.client import connect, explain
from ..exceptions import EngineError

NOT_BUILT, BUILDING, VERIFIED, DRIFTED = "not built", "building", "verified", "drifted"


@dataclass(frozen=True)
class ImageState:
    state: str
    tag: str | None

    def to_dict(self) -> dict:
        return {"state": self.state, "tag": self.tag}


class ImageIndex:
    """The ``yolosnap/*`` tags on the engine (empty, with ``error`` set, when the engine cannot be reached)."""

    def __init__(self, tags: set[str], error: str | None = None):
        self.tags = tags
        self.error = error

    @classmethod
    def read(cls, client: Any | None = None) -> "ImageIndex":
        """One ``GET /images/json`` (docker-py's high-level list would inspect every image)."""
        own = client is None
        try:
            client = client or connect(timeout=10)
            rows = client.api.images()
        except EngineError as err:
            return cls(set(), str(err))
        except Exception as err:  # requests/docker errors mid-call
            return cls(set(), str(explain(err, "listing images")))
        finally:
            if own and client is not None:
                client.close()
        tags = {tag for row in rows for tag in (row.get("RepoTags") or []) if tag.startswith("yolosnap/")}
        return cls(tags)

    def state(self, manifest: dict, building: bool = False) -> ImageState:
        tag = image_tag(manifest)
        if building:
            return ImageState(BUILDING, tag)
        if tag in self.tags:
            return ImageState(VERIFIED, tag)
        repository = tag.split(":")[0]
        older = sorted(t for t in self.tags if t.startswith(repository + ":"))
        if older:
            latest = f"{repository}:latest"
            return ImageState(DRIFTED, latest if latest in older else older[0])
        return ImageState(NOT_BUILT, None)
