"""The image states the panel shows; the lookup itself is the engine seam's (:mod:`..engine.images`)."""
from __future__ import annotations

from ..engine.images import BUILDING, DRIFTED, NOT_BUILT, VERIFIED, ImageIndex, ImageState

__all__ = ["BUILDING", "DRIFTED", "NOT_BUILT", "VERIFIED", "ImageIndex", "ImageState"]
