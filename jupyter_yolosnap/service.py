"""The core operations every front door calls: capture, save, list, show, diff.

Magics, CLI and (later) the REST handlers are thin wrappers over these functions, so a behaviour fixed here
is fixed everywhere.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .snapshot import manifest
from .snapshot.diff import ManifestDiff, diff_manifests
from .exceptions import YolosnapError
from .gpu import probe_gpus
from .capture.runner import run_probe
from .snapshot.names import split_reference, validate_name
from .snapshot.store import Store, open_store


@dataclass(frozen=True)
class Saved:
    """What ``save`` did: where the manifest went, and whether it replaced a different one."""

    path: Path
    manifest: dict
    previous_digest: str | None


@dataclass(frozen=True)
class SnapshotSummary:
    """One line of ``list``: enough to choose a snapshot without opening it."""

    name: str
    created: str
    python: str
    torch: str | None
    cuda: str | None
    gpu: str | None
    packages: int
    revisions: int
    digest: str
    error: str | None = None  # the manifest cannot be read: this line says why, the other fields are empty


def capture(name: str = "live", python: str | None = None, project: str | os.PathLike | None = None) -> dict:
    """A manifest of ``python``'s environment (default: this interpreter) plus this host's GPUs."""
    validate_name(name)
    store = open_store(project)
    captured = run_probe(python, project_dir=str(store.project))
    return manifest.build_manifest(name, captured, probe_gpus(), __version__)


def save(name: str, python: str | None = None, project: str | os.PathLike | None = None) -> Saved:
    """Capture and store under ``name``; the previous revision, if different, moves to history."""
    validate_name(name)
    store = open_store(project)
    new = capture(name, python, store.project)  # the store validates it before writing: never a file load refuses
    path, previous = store.save(new)
    return Saved(path, new, previous)


def load(ref: str, project: str | os.PathLike | None = None) -> dict:
    """The manifest stored as ``name`` or ``name@N``."""
    return open_store(project).load(ref)


def summarize(data: dict, revisions: int = 1) -> SnapshotSummary:
    """The headline facts of one manifest."""
    cuda = data.get("cuda") or {}
    torch = cuda.get("torch") or {}
    gpus = (data.get("gpu") or {}).get("gpus") or []
    gpu = None
    if gpus:
        gpu = gpus[0]["name"] + (f" x{len(gpus)}" if len(gpus) > 1 else "")
    return SnapshotSummary(
        name=data["name"], created=data.get("created", ""), python=data["python"]["version"],
        torch=torch.get("version"), cuda=torch.get("cuda") or (cuda.get("nvcc") or {}).get("version"),
        gpu=gpu, packages=len(data.get("packages", [])), revisions=revisions, digest=data["digest"])


def list_snapshots(project: str | os.PathLike | None = None) -> list[SnapshotSummary]:
    """Every snapshot in the project, by name."""
    store = open_store(project)
    return [_summary_or_problem(store, name) for name in store.names()]


def _summary_or_problem(store: Store, name: str) -> SnapshotSummary:
    """One snapshot's line; an unreadable manifest (a merge conflict, a hostile file) becomes a line saying so
    instead of hiding every other snapshot."""
    try:
        return summarize(store.load(name), len(store.revisions(name)))
    except YolosnapError as err:
        return SnapshotSummary(name, "", "", None, None, None, 0, len(store.revisions(name)), "", error=str(err))


def history(name: str, project: str | os.PathLike | None = None) -> list[SnapshotSummary]:
    """Every revision of one snapshot, oldest first (``name@1`` is the first)."""
    store = open_store(project)
    name, _ = split_reference(name)
    revisions = store.revisions(name)
    store.path_of(name)  # raises a clear error when there are none
    return [summarize(store.load(f"{name}@{r.number}"), r.number) for r in revisions]


def diff(ref: str, other: str | None = None, python: str | None = None,
         project: str | os.PathLike | None = None) -> ManifestDiff:
    """``ref`` against ``other`` (a stored snapshot) or, without one, against a live interpreter."""
    store = open_store(project)
    old = store.load(ref)
    if other is not None:
        new = store.load(other)
        label = other
    else:
        new = capture("live", python, store.project)
        label = python or "this kernel"
    return diff_manifests(old, new, old_label=ref, new_label=label)
