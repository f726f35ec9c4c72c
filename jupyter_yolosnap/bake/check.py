"""Does an image hold the environment its snapshot promises? A capture inside it, diffed against the manifest.

Promised, and failing the check when different: Python, every distribution with its version and source, the
CUDA builds of torch/TensorFlow, and every system library the packages found on the host (it must resolve in
the image). Shown but never failing: what an image cannot carry by design, the host's driver and GPUs, the
OS and its other packages, environment variables, the git revision.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..snapshot.diff import INSTALLED_BY, Change, ManifestDiff, diff_manifests
from ..engine.probe import capture_in_image
from ..gpu import probe_gpus
from ..snapshot.manifest import build_manifest


def installer_swap(change: Change) -> bool:
    """A distribution another installer (conda) put on the host, which the image holds as the same version of
    its PyPI wheel: what ``build --installers pypi`` accepts."""
    old, new = change.old or "", change.new or ""
    return change.section == "packages" and f"({INSTALLED_BY}" in old and old.split(" (", 1)[0] == new


def is_promised(change: Change, accepted: frozenset = frozenset()) -> bool:
    """Whether an image is expected to reproduce this item exactly (``accepted``: what its build accepted)."""
    if change.section == "packages" and "pypi" in accepted and installer_swap(change):
        return False
    if change.section in ("python", "packages"):
        return True
    if change.section == "cuda":
        return change.item.startswith(("torch ", "tensorflow "))
    if change.section == "native libraries":
        return (change.old or "").startswith("system") and (change.new is None or change.new.startswith("missing"))
    return False


@dataclass
class CheckResult:
    """The image's diff against its manifest, split into drift (fails) and what is only shown."""

    image: str
    diff: ManifestDiff
    accepted: frozenset = frozenset()  # what the image's build accepted (``{"pypi"}``: PyPI wheels for conda's)

    @property
    def drift(self) -> list[Change]:
        return [c for c in self.diff.changes if is_promised(c, self.accepted)]

    @property
    def shown(self) -> list[Change]:
        return [c for c in self.diff.changes if not is_promised(c, self.accepted)]

    @property
    def clean(self) -> bool:
        return not self.drift


def check_image(client: Any, image: str, manifest: dict, accepted: frozenset = frozenset()) -> CheckResult:
    """Capture inside ``image`` and compare with ``manifest``."""
    inside = capture_in_image(client, image)
    as_manifest = build_manifest(manifest["name"], inside, probe_gpus(), __version__)
    return CheckResult(image, diff_manifests(manifest, as_manifest, old_label="snapshot", new_label="image"),
                       accepted)
