"""What the archive, registry and server share tests have in common: one small snapshot built on the stand-in
base, a fresh project folder, and removing every image of a snapshot."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from jupyter_yolosnap import bake, service
from jupyter_yolosnap.bake.build import BuildResult
from jupyter_yolosnap.engine import labels
from jupyter_yolosnap.snapshot import names

from .conftest import make_venv, run

PIP = ["-m", "pip", "install", "-q", "--disable-pip-version-check"]


@dataclass
class Built:
    """A snapshot the module built once: its name, project, verified image (id and tag) and manifest."""
    name: str
    project: Path
    image_id: str
    tag: str
    manifest: dict

    @classmethod
    def of(cls, name: str, project: Path, result: BuildResult, **more) -> "Built":
        return cls(name, project, result.image_id, result.image, service.load(name, project), **more)


def build_six_snapshot(tmp_path_factory, root: Path, prefix: str, project: Path | None = None,
                       unbuilt: tuple[str, ...] = ()) -> tuple[str, Path, BuildResult]:
    """A venv with six under ``root``, saved as ``PREFIX-<random>`` in ``project`` (``root/project``) and built;
    the names in ``unbuilt`` are saved from the same venv and left unbuilt. Uses the session's wheel cache."""
    python = make_venv(root / "venv")
    run(python, *PIP, "six==1.16.0")
    project = project or root / "project"
    project.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:  # the wheel cache of the test session, as conftest does
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
        for saved in (name, *unbuilt):
            service.save(saved, str(python), project)
        result = bake.build(name, project)
    return name, project, result


def save_other_environment(store, manifest: dict) -> dict:
    """Save into ``store`` a snapshot of ``manifest``'s name but another environment (without six): what an
    import or pull must not replace unless told to. Returns that manifest."""
    from jupyter_yolosnap.snapshot import manifest as manifest_io

    other = json.loads(json.dumps(manifest))
    other["packages"] = [p for p in other["packages"] if p["name"] != "six"]
    other["digest"] = manifest_io.compute_digest(other)
    store.save(other)
    return other


def fresh_project(tmp_path: Path) -> Path:
    folder = tmp_path / f"fresh-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    return folder


def remove_tags(engine, *references: str) -> None:
    for reference in references:
        try:
            engine.images.remove(reference, force=True)
        except docker.errors.NotFound:
            pass


def remove_snapshot_images(engine, name: str, *references: str) -> None:
    """``references``, every tag of the snapshot's repository, then any image still labelled with its name."""
    remove_tags(engine, *references)
    for image in engine.images.list(name=names.image_repository(name)):
        remove_tags(engine, *image.tags)
    for image in engine.images.list(all=True, filters={"label": f"{labels.SNAPSHOT}={name}"}):
        remove_tags(engine, image.id)
