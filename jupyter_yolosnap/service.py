"""The verbs, one function each, that every front door calls: the CLI and ``%snapshot`` (through
:mod:`.frontends.commands`), ``%%in_env`` (:mod:`.frontends.in_env`), and the REST API (:mod:`.server.handlers`).

save, list, show (``load``), history, diff, build, check, readiness, run, kernel (the warm kernel of
``%%in_env``), ps, stop, restore, unrestore, delete. A behaviour fixed here is fixed for every door; doors only
parse and present. Each verb imports its stage when called, so a command that reads a manifest never pays for
docker-py, IPython or tornado.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

from . import __version__
from .events import Listener, ignore
from .exceptions import YolosnapError
from .gpu import probe_gpus
from .snapshot import manifest
from .snapshot.diff import ManifestDiff, diff_manifests
from .snapshot.names import display_name, kernel_name, split_reference, validate_name
from .snapshot.store import Store, open_store

Project = Union[str, "os.PathLike[str]", None]

#: The options users set once (``%config SnapshotMagics.gpus = "none"``, or a CLI flag each time).
DEFAULT_GPUS = "auto"
DEFAULT_NETWORK = "none"
DEFAULT_STRATEGY = "wheelhouse"


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


@dataclass(frozen=True)
class BuildOptions:
    """How ``build`` bakes a snapshot (the CLI's ``build`` flags; the panel sends strategy and base)."""

    strategy: str = DEFAULT_STRATEGY
    base: str | None = None
    registry_mirror: str | None = None
    ca_bundle: str | None = None
    incremental: bool = True
    host_builds: bool = False
    trust_remote_sources: bool = False
    installers: str = "same"
    nocache: bool = False


@dataclass(frozen=True)
class RunOptions:
    """How a container of a snapshot starts: ``run``'s, ``%%in_env``'s and a restored kernel's options."""

    gpus: str | int | None = DEFAULT_GPUS
    env: Sequence[str] = ()
    volumes: Sequence[str] = ()
    network: str = DEFAULT_NETWORK
    tensorboard: str | None = None


@dataclass
class RunResult:
    """A finished ``run``: the script's run, its metrics table and the plot drawn from it (where it was saved)."""

    run: Any  # runtime.script.ScriptRun
    table: Any = None  # runtime.metrics.MetricsTable
    png: bytes | None = None
    png_path: Path | None = None


@dataclass(frozen=True)
class Restored:
    kernel_name: str
    display_name: str
    image: str
    gpu_fit: str = ""  # the GPU-fit verdict on this host (gpu/fit.py)


@dataclass(frozen=True)
class Deleted:
    name: str
    revisions: int
    kernelspec: bool  # its images stay on the engine: ``docker image rm`` removes them


# ------------------------------------------------------------------------------------------------ snapshot


def capture(name: str = "live", python: str | None = None, project: Project = None) -> dict:
    """A manifest of ``python``'s environment (default: this interpreter) plus this host's GPUs."""
    from .capture.runner import run_probe

    validate_name(name)
    store = open_store(project)
    captured = run_probe(python, project_dir=str(store.project))
    return manifest.build_manifest(name, captured, probe_gpus(), __version__)


def save(name: str, python: str | None = None, project: Project = None) -> Saved:
    """Capture and store under ``name``; the previous revision, if different, moves to history."""
    validate_name(name)
    store = open_store(project)
    new = capture(name, python, store.project)  # the store validates it before writing: never a file load refuses
    path, previous = store.save(new)
    return Saved(path, new, previous)


def load(ref: str, project: Project = None) -> dict:
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


def list_snapshots(project: Project = None) -> list[SnapshotSummary]:
    """Every snapshot in the project, by name; an unreadable manifest is a line saying why."""
    store = open_store(project)
    return [_summary_or_problem(store, name) for name in store.names()]


def _summary_or_problem(store: Store, name: str) -> SnapshotSummary:
    """One snapshot's line; an unreadable manifest (a merge conflict, a hostile file) becomes a line saying so
    instead of hiding every other snapshot."""
    try:
        return summarize(store.load(name), len(store.revisions(name)))
    except YolosnapError as err:
        return SnapshotSummary(name, "", "", None, None, None, 0, len(store.revisions(name)), "", error=str(err))


def history(name: str, project: Project = None) -> list[SnapshotSummary]:
    """Every revision of one snapshot, oldest first (``name@1`` is the first)."""
    store = open_store(project)
    name, _ = split_reference(name)
    revisions = store.revisions(name)
    store.path_of(name)  # raises a clear error when there are none
    return [summarize(store.load(f"{name}@{r.number}"), r.number) for r in revisions]


def diff(ref: str, other: str | None = None, python: str | None = None, project: Project = None) -> ManifestDiff:
    """``ref`` against ``other`` (a stored snapshot) or, without one, against a live interpreter."""
    store = open_store(project)
    old = store.load(ref)
    if other is not None:
        if python is not None:
            raise YolosnapError("give either a second snapshot or --python, not both")
        new, label = store.load(other), other
    else:
        new, label = capture("live", python, store.project), python or "this kernel"
    return diff_manifests(old, new, old_label=ref, new_label=label)


def delete(name: str, project: Project = None) -> Deleted:
    """Remove snapshot ``name`` (every revision) and its restored kernel; its images stay on the engine."""
    from . import kernelspec

    store = open_store(project)
    validate_name(name)
    revisions = len(store.revisions(name))
    store.delete(name)
    removed = kernelspec.remove(name, store.project)
    return Deleted(name, revisions, removed)


# ------------------------------------------------------------------------------------------------ bake


def build(name: str, project: Project = None, options: BuildOptions = BuildOptions(),
          listener: Listener = ignore) -> Any:
    """Bake snapshot ``name`` into a verified image (:func:`jupyter_yolosnap.bake.build`)."""
    from . import bake

    return bake.build(name, project, options.strategy, options.base, options.registry_mirror, options.ca_bundle,
                      options.incremental, listener=listener, nocache=options.nocache,
                      host_builds=options.host_builds, trust_remote_sources=options.trust_remote_sources,
                      installers=options.installers)


def check(name: str, project: Project = None) -> Any:
    """Capture inside snapshot ``name``'s verified image and diff it against the manifest."""
    from . import bake

    return bake.check(name, project)


def readiness(data: dict) -> list[str]:
    """Whether ``data``'s CUDA work can use this host's GPUs through this engine, as lines to show."""
    from .engine.client import connect
    from .gpu.readiness import engine_gpu_runtime, gpu_readiness

    return gpu_readiness(data, probe_gpus(), engine_gpu_runtime(connect()))


# ------------------------------------------------------------------------------------------------ runtime


def run(name: str, argv: Sequence[str], project: Project = None, options: RunOptions = RunOptions()) -> RunResult:
    """Run ``argv`` in a fresh container of snapshot ``name``; its metrics table (and, with GPUs, its GPU
    telemetry) plotted into a PNG beside its log."""
    from .gpu import telemetry
    from .runtime import metrics, script

    done = script.run_script(name, list(argv), project, gpus=options.gpus, env=list(options.env),
                             volumes=list(options.volumes), network=options.network,
                             tensorboard=options.tensorboard)
    result = RunResult(done)
    result.table = metrics.read(done.metrics) if done.metrics is not None else None
    gpu = telemetry.read_csv(done.gpu_csv) if done.gpu_csv is not None else None
    result.png = metrics.plot_png(result.table, gpu)
    if result.png is not None:
        result.png_path = done.log.with_suffix(".png")
        result.png_path.write_bytes(result.png)
    return result


def gpu_sampler(container: Any, path: str | os.PathLike) -> Any:
    """A sampler of the GPUs the engine gave ``container`` into the CSV at ``path`` (``with`` it around the
    work; its ``summary()`` after), or None for a CPU container."""
    from .gpu import telemetry

    return telemetry.for_container(container, Path(path))


def kernel(name: str, project: Project = None, options: RunOptions = RunOptions(), listener: Listener = ignore) -> Any:
    """The warm kernel of snapshot ``name`` that ``%%in_env`` cells run in, started on first use."""
    from .runtime import registry

    return registry.get(name, project, gpus=options.gpus, env=list(options.env) or None,
                        volumes=list(options.volumes) or None, listener=listener)


def ps() -> list:
    """Every snapshot container on the engine: warm kernels, runs, TensorBoards."""
    from .runtime import registry

    return registry.ps()


def stop(name: str | None = None, everyone: bool = False) -> list:
    """End this process's kernels of ``name`` (every snapshot's when None) and containers whose owner is gone;
    ``everyone``: also other live owners'."""
    from .runtime import registry

    if name is not None:
        validate_name(name)
    return registry.end(name, everyone)


def restore(name: str, project: Project = None, listener: Listener = ignore) -> Restored:
    """Make snapshot ``name`` a Jupyter kernel that runs in its verified image (the kernel layer made once)."""
    from . import kernelspec
    from .bake import kernel_layer
    from .engine.client import connect

    store = open_store(project)
    data = store.load(name)
    client = connect()
    try:
        made = kernel_layer.ensure(client, data, listener)
    finally:
        client.close()
    installed = kernelspec.install(data["name"], store.project, data)
    from .gpu import fit

    return Restored(installed, display_name(data["name"]), made.image, fit.verdict(data, probe_gpus()).line)


def unrestore(name: str, project: Project = None) -> bool:
    """Remove snapshot ``name``'s kernel (only this project's); whether there was one."""
    from . import kernelspec

    validate_name(name)
    return kernelspec.remove(name, open_store(project).project)


# ------------------------------------------------------------------------------------------------ share


def export(name: str, path: str, project: Project = None, listener: Listener = ignore) -> Any:
    """Write snapshot ``name`` and its verified image into one ``.tar.gz`` at ``path`` (a folder: NAME.tar.gz)."""
    from .share import archive

    validate_name(name)
    return archive.export(open_store(project), name, path, listener)


def import_archive(path: str, project: Project = None, replace: bool = False, listener: Listener = ignore) -> Any:
    """Register the snapshot archived at ``path`` in the project, its image loaded and verified first."""
    from .share import archive

    return archive.import_archive(open_store(project), path, replace, listener)


def push(name: str, reference: str, project: Project = None, listener: Listener = ignore) -> Any:
    """Push snapshot ``name``'s verified image, its manifest inside, as ``reference``; recorded in registry.json."""
    from .share import registry

    validate_name(name)
    return registry.push(open_store(project), name, reference, listener)


def pull(reference: str, project: Project = None, replace: bool = False, listener: Listener = ignore) -> Any:
    """Pull ``reference`` and register the snapshot inside it, checked as an import is."""
    from .share import registry

    return registry.pull(open_store(project), reference, replace, listener)


@dataclass(frozen=True)
class K8sOptions:
    """Where and how a Kubernetes job of a snapshot runs (``yolosnap k8s``)."""

    image: str | None = None  # REPO@sha256:... as pushed; the snapshot's image must be in a registry
    gpus: str | int | None = None
    volumes: Sequence[str] = ()
    env: Sequence[str] = ()
    nodes: int = 1
    namespace: str | None = None
    kubeconfig: str | None = None
    context: str | None = None


def k8s_job(name: str, argv: Sequence[str], project: Project = None, options: K8sOptions = K8sOptions()) -> Any:
    """The Kubernetes Job (``--nodes N``: a Kubeflow PyTorchJob) that runs ``argv`` in snapshot ``name``'s image."""
    from .share import k8s, records

    store = open_store(project)
    data = store.load(name)
    image = options.image or records.published(store, data["name"], data["digest"])
    if not image:
        raise k8s.KubernetesUsageError(f"a cluster pulls the image from a registry: push snapshot {name!r} first "
                                       f"(yolosnap push {data['name']} REGISTRY/REPO:TAG), or pass --image "
                                       "REGISTRY/REPO@sha256:DIGEST")
    return k8s.render_job(data, image, list(argv), gpus=options.gpus, volumes=list(options.volumes),
                          env=list(options.env), nodes=options.nodes, namespace=options.namespace)


def k8s_apply(job: Any, options: K8sOptions = K8sOptions()) -> Any:
    """Submit a rendered job with the user's kubeconfig."""
    from .share import k8s

    return k8s.apply(job, options.kubeconfig, options.context)


def k8s_status(name: str, options: K8sOptions = K8sOptions()) -> Any:
    """The state of snapshot ``name``'s job on the cluster."""
    from .share import k8s

    return k8s.status(k8s.job_name(validate_name(name)), options.namespace, options.kubeconfig, options.context)


def k8s_logs(name: str, options: K8sOptions = K8sOptions()) -> str:
    """The logs of snapshot ``name``'s job's pods."""
    from .share import k8s

    return k8s.logs(k8s.job_name(validate_name(name)), options.namespace, options.kubeconfig, options.context)


__all__ = ["BuildOptions", "Deleted", "K8sOptions", "Restored", "RunOptions", "RunResult", "Saved", "SnapshotSummary",
           "build", "capture", "check", "delete", "diff", "display_name", "export", "gpu_sampler", "history", "import_archive",
           "k8s_apply", "k8s_job", "k8s_logs", "k8s_status", "kernel", "kernel_name", "list_snapshots", "load",
           "open_store", "ps", "pull", "push", "readiness", "restore", "run", "save", "stop", "summarize", "unrestore"]
