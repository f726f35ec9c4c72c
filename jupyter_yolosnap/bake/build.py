"""Bake a snapshot into an image and prove it: plan, context, build, check, tag.

Images are tagged ``yolosnap/<name>:<digest prefix>`` (and ``:latest``) only after the check found no drift,
so a tag always means "verified". ``build`` on an unchanged manifest returns that image at once. A small pin
change starts from the previous verified image of the same snapshot (a delta layer) instead of rebuilding.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..snapshot import manifest as manifest_io
from .check import CheckResult, check_image
from ..engine.build import build_image, commit_layer
from ..engine import images, labels as label_keys
from ..engine.client import ENGINE_ERRORS, connect, explain
from ..engine.probe import capture_in_image
from ..events import Event, Listener, ignore
from ..runtime.containers import owner_labels
from ..exceptions import DriftFound, EngineError, RecipeError
from . import local_sources, wheelhouse
from ..recipe import compat, dockerfile, plan as planning
from ..snapshot.names import image_tag
from ..snapshot.store import Store, open_store, refuse_link, write_atomic

LABELS = {"snapshot": label_keys.SNAPSHOT, "digest": label_keys.DIGEST, "base": label_keys.BASE,
          "strategy": label_keys.STRATEGY, "accepted": label_keys.ACCEPTED}
INSTALLERS = ("same", "pypi")


@dataclass
class BuildResult:
    image: str          # the verified tag
    image_id: str
    reused: bool        # an image of this exact manifest existed already
    delta: bool         # built on top of the previous verified image
    seconds: float
    dockerfile: Path
    check: CheckResult | None


def _base_facts(client: Any, base: str, listener: Listener) -> dict:
    """The base image's own capture (its Python, packages, OS), cached by image id."""
    image = images.get_image(client, base, f"looking for the base image {base}")
    if image is None:
        listener(Event("phase", f"pulling base image {base}"))
        try:
            image = client.images.pull(base)
        except ENGINE_ERRORS as err:
            raise EngineError(f"base image {base} is not on this machine and could not be pulled "
                              f"({explain(err, 'pulling it')}); pass --base IMAGE or --registry-mirror PREFIX"
                              ) from None
    cache = wheelhouse.cache_dir().parent / "base-facts" / f"{image.id.replace(':', '-')}.json"
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    listener(Event("phase", f"reading base image {base}"))
    facts = capture_in_image(client, image.id)
    cache.parent.mkdir(parents=True, exist_ok=True)
    temp = cache.with_suffix(f".{os.getpid()}.tmp")
    temp.write_text(json.dumps(facts))
    os.replace(temp, cache)
    return facts


def resolve_base(manifest: dict, base: str | None, registry_mirror: str | None) -> str:
    if base:
        return base
    codename = compat.debian_codename(manifest.get("os") or {})
    return compat.python_base_image(manifest["python"]["version"], codename, registry_mirror)


def recipe_notes(manifest: dict) -> tuple[str, ...]:
    """What a reader of the Dockerfile should know that the recipe does not do by itself."""
    nvcc = ((manifest.get("cuda") or {}).get("nvcc") or {}).get("version")
    if not nvcc:
        return ()
    try:
        suggestion = compat.cuda_base_image(nvcc, None, flavor="devel", os_tag="ubuntu24.04")
    except RecipeError:  # a CUDA the table does not list: a generic hint instead
        suggestion = f"an nvidia/cuda:{nvcc}.x devel image"
    return (f"the captured machine had a system CUDA toolkit (nvcc {nvcc}). pip's CUDA wheels bring their own",
            "runtime, so the default base is Python's slim image. To compile CUDA code in the image, pass",
            f"--base with {suggestion} plus Python {manifest['python']['version']}.")


def write_dockerfile(folder: Path, text: str, files: dict[str, str] | None = None) -> Path:
    """Write the readable Dockerfile beside the manifest, with the requirement files it copies
    (``requirements/*.txt``), so the recipe is complete on disk; atomically, and only what changed."""
    target = folder / "Dockerfile"
    write_atomic(target, text)
    if files:
        for rel, body in files.items():
            path = folder / rel
            refuse_link(path.parent)
            path.parent.mkdir(exist_ok=True)
            write_atomic(path, body)
    return target


def assemble_context(context: Path, docker_text: str, files: dict[str, str], local: list[local_sources.Prepared],
                     strategy: str, ca_bundle: str | None) -> None:
    """Write the build context: Dockerfile, requirement files, local sources at their paths, CA bundle."""
    (context / "Dockerfile").write_text(docker_text)
    for rel, text in files.items():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        (context / rel).write_text(text)
    local_sources.copy_into(context, local)
    if strategy == "pinned":
        shutil.copy(ca_bundle or "/etc/ssl/certs/ca-certificates.crt", context / "ca-bundle.crt")


def _previous_verified(client: Any, store: Store, name: str) -> tuple[Any, dict] | None:
    """The newest verified image of one of THIS project's revisions of snapshot ``name`` and that revision
    (:func:`..engine.images.previous_verified`); None only when there is none: an engine that fails or is
    gone raises its ``EngineError`` instead of turning the delta into a silent full rebuild."""
    revisions = (store.load(f"{name}@{revision.number}") for revision in reversed(store.revisions(name)))
    return images.previous_verified(client, name, revisions)  # read only when the engine holds a candidate


def _tag(image: Any, repository: str, *versions: str) -> None:
    """Tag a verified image; an engine that refuses or went away is one line (the image itself is kept)."""
    for version in versions:
        try:
            image.tag(repository, version)
        except ENGINE_ERRORS as err:
            raise explain(err, f"tagging {repository}:{version}") from None


def build(name: str, project: str | os.PathLike | None = None, strategy: str = "wheelhouse",
          base: str | None = None, registry_mirror: str | None = None, ca_bundle: str | None = None,
          incremental: bool = True, listener: Listener = ignore, nocache: bool = False,
          host_builds: bool = False, trust_remote_sources: bool = False, installers: str = "same") -> BuildResult:
    """Build snapshot ``name`` into a verified image; see the module docstring.

    ``nocache`` ignores Docker's layer cache (benchmarks of cold builds); ``incremental=False`` never starts from
    the previous verified image; ``host_builds`` lets the wheelhouse strategy build sdist-only pins on this host
    (their setup code then runs here: off by default, since the manifest is untrusted); ``trust_remote_sources``
    builds what runs code inside the build container: remote VCS and source-archive installs, and (pinned
    strategy) pins that have no wheel; ``installers="pypi"`` accepts PyPI wheels in place of distributions another
    installer (conda) put there, which is otherwise refused (the check would call the swap drift).
    """
    started = time.perf_counter()
    if strategy == "pinned" and ca_bundle is not None and not os.path.isfile(ca_bundle):
        raise RecipeError(f"--ca-bundle {ca_bundle!r} is not a file; pass a PEM file of CA certificates "
                          "(e.g. /etc/ssl/certs/ca-certificates.crt)")
    store = open_store(project)
    manifest = store.load(name)
    prepared = local_sources.prepare_all(manifest["packages"])  # before anything is written or asked of the engine
    for item in prepared:
        if item.size > local_sources.LARGE_BYTES:
            listener(Event("phase", f"warning: {item.pkg['name']} brings {item.size / 1048576:.0f} MB "
                                    f"({len(item.files)} files) from {item.path} into the image; a .dockerignore "
                                    "there leaves data out"))
    if installers not in INSTALLERS:
        raise RecipeError(f"--installers {installers!r} is not one of {', '.join(INSTALLERS)}")
    foreign = [p["name"] for p in manifest["packages"] if manifest_io.foreign_installer(p)]
    if foreign and installers != "pypi":
        kinds = ", ".join(sorted({manifest_io.foreign_installer(p) for p in manifest["packages"]} - {None}))
        raise RecipeError(f"{len(foreign)} distribution(s) of snapshot {manifest['name']!r} were installed by {kinds} "
                          f"({', '.join(foreign[:4])}{' ...' if len(foreign) > 4 else ''}); an image installs their "
                          "PyPI wheels instead: build with --installers pypi to accept that, or reinstall them with "
                          "pip and save again")
    accepted = frozenset({"pypi"}) if foreign else frozenset()
    remote = local_sources.remote_code(manifest["packages"])
    if remote and not trust_remote_sources:
        shown = ", ".join(f"{p['name']} from {p['url']}" for p in remote[:2]) + (" and more" if len(remote) > 2 else "")
        raise RecipeError(f"snapshot {manifest['name']!r} builds {len(remote)} source(s) fetched from the network "
                          f"({shown}); building runs their setup code inside the build, which has this host's "
                          "network: review them, then build with --trust-remote-sources")
    client = connect()
    tag = image_tag(manifest)
    repository = tag.split(":")[0]
    folder = store.folder(manifest["name"])
    existing = images.verified_image(client, manifest)
    if existing is not None:
        _tag(existing, repository, "latest")  # back to an earlier manifest: :latest follows the current one
        listener(Event("phase", f"{tag} is already built and verified"))
        return BuildResult(tag, existing.id, True, False, time.perf_counter() - started, folder / "Dockerfile", None)

    base_ref = resolve_base(manifest, base, registry_mirror)
    facts = _base_facts(client, base_ref, listener)
    compat.check_requires_python(manifest["packages"], facts["python"]["version"], manifest["python"]["version"])
    plan = planning.make_plan(manifest, base_ref, facts, strategy, source_builds=trust_remote_sources)
    labels = {LABELS["snapshot"]: manifest["name"], LABELS["digest"]: manifest["digest"],
              LABELS["base"]: base_ref, LABELS["strategy"]: strategy}
    if accepted:
        labels[LABELS["accepted"]] = ",".join(sorted(accepted))
    full_text = dockerfile.render(plan, manifest["name"], manifest["digest"], __version__, recipe_notes(manifest),
                                  labels)
    written = write_dockerfile(folder, full_text, dockerfile.requirement_files(plan))

    previous = _previous_verified(client, store, manifest["name"]) if incremental else None
    change = planning.delta(previous[1], manifest) if previous else None
    with tempfile.TemporaryDirectory(prefix="yolosnap-build-") as tmp:
        context = Path(tmp)
        if change is not None:
            install, remove = change
            listener(Event("phase", f"delta on {previous[0].short_id}: {len(install)} to install, "
                                    f"{len(remove)} to remove"))
            text = dockerfile.render_delta(plan, previous[0].id, install, remove, labels)
            files = {}
            pins, local = install, []
        else:
            text, files = full_text, dockerfile.requirement_files(plan)
            pins = [*plan.heavy, *plan.index]
            names = {p["name"] for p in plan.local}
            local = [item for item in prepared if item.pkg["name"] in names]
        assemble_context(context, text, files, local, strategy, ca_bundle)
        if change is not None and strategy == "wheelhouse":
            image_id = _delta_layer(client, plan, previous[0].id, *change, labels, facts, manifest["name"], tag,
                                    context, listener, host_builds)
        elif strategy == "wheelhouse":
            house = wheelhouse.collect(pins, [item.pkg for item in local], facts["python"]["version"],
                                       list(plan.index_urls), listener,
                                       host_builds=host_builds)
            listener(Event("phase", f"building {tag}"))
            with wheelhouse.serve(house) as url:
                if url != dockerfile.WHEEL_SERVER:  # the fixed port is busy (another build): point there instead
                    (context / "Dockerfile").write_text(text.replace(dockerfile.WHEEL_SERVER, url))
                image_id = build_image(client, str(context), "host", listener, nocache)
        else:
            listener(Event("phase", f"building {tag}"))
            image_id = build_image(client, str(context), "host", listener, nocache)

    listener(Event("phase", "checking the image against the snapshot"))
    try:
        result = check_image(client, image_id, manifest, accepted)
    except BaseException:  # broad on purpose: whatever stops the check (even Ctrl-C), the unverified image goes
        _remove_image(client, image_id)
        raise
    if not result.clean:
        _remove_image(client, image_id)
        items = ", ".join(f"{c.item} ({c.old or '-'} -> {c.new or '-'})" for c in result.drift[:5])
        raise DriftFound(f"the built image does not match snapshot {manifest['name']!r}: {items}"
                         f"{' and more' if len(result.drift) > 5 else ''}; it was removed, the previous image is "
                         "kept")
    image = images.get_image(client, image_id, f"tagging {tag}")
    if image is None:  # removed by someone else between the check and the tag
        raise EngineError(f"the image built for {tag} was removed from the engine before it could be tagged; "
                          f"build again (yolosnap build {manifest['name']})")
    _tag(image, repository, tag.split(":")[1], "latest")
    listener(Event("phase", f"verified: {tag}"))
    return BuildResult(tag, image_id, False, change is not None, time.perf_counter() - started, written, result)


def _delta_layer(client: Any, plan: planning.BuildPlan, previous: str, install: list[dict], remove: list[str],
                 labels: dict[str, str], facts: dict, name: str, tag: str, context: Path, listener: Listener,
                 host_builds: bool) -> str:
    """The wheelhouse strategy's delta: the changed pins' wheels collected, then one layer committed on the
    previous verified image, uv mounted read-only from the wheel cache (``engine.build.commit_layer``)."""
    house = wheelhouse.collect(install, [], facts["python"]["version"], list(plan.index_urls), listener,
                               host_builds=host_builds)
    mounts, uv = {}, None
    if install:
        mounts = {str(wheelhouse.uv_binary(house, context / "uv").parent): dockerfile.UV_MOUNT}
        uv = f"{dockerfile.UV_MOUNT}/uv"
    line = dockerfile.delta_line(plan, install, remove, uv)
    title = "RUN " + " && ".join(command.strip(" \\&\n") for command in line.split(" \\\n"))
    listener(Event("phase", f"building {tag}"))
    with wheelhouse.serve(house) as url:
        return commit_layer(client, previous, line.replace(dockerfile.WHEEL_SERVER, url), title, mounts,
                            dockerfile.label_line(labels), owner_labels("build", name), listener)


def _remove_image(client: Any, image_id: str) -> None:
    """Remove an image this build made and no tag points to (a failed check must leave nothing)."""
    try:
        client.images.remove(image_id, force=False, noprune=False)
    except ENGINE_ERRORS:  # already gone, or held by a container: the failure being reported matters more
        pass


def check(name: str, project: str | os.PathLike | None = None) -> CheckResult:
    """Check the verified image of snapshot ``name`` (or say it is not built)."""
    manifest = open_store(project).load(name)
    client = connect()
    image = images.require_verified(client, manifest)
    accepted = frozenset(filter(None, str(images.image_labels(image).get(LABELS["accepted"], "")).split(",")))
    return check_image(client, image_tag(manifest), manifest, accepted)
