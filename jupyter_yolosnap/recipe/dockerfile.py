"""Build plan -> Dockerfile text and the small files it copies. Pure: the context folder is written elsewhere.

The full Dockerfile is written beside the manifest (environment as code, reviewed like code). A delta
Dockerfile (previous verified image + a few pins) is only ever used inside a build context.
"""
from __future__ import annotations

import json
import re
import shlex

from ..snapshot import grammar
from ..exceptions import UnsafeValue
from .plan import BuildPlan, requirement

#: Where the build's wheel server listens (loopback of the build's host network); fixed so the RUN lines,
#: and so Docker's layer cache, stay the same from one build to the next.
WHEEL_SERVER = "http://127.0.0.1:47391/"
PIP = "python -m pip"
CA_PATH = "/tmp/yolosnap/ca-bundle.crt"
#: The installer for pinned wheels in the wheelhouse strategy: uv installs a hundred wheels in parallel, several
#: times faster than pip, and is itself one wheel from the wheelhouse, used and removed within each RUN.
UV_VERSION = "0.13.9"
UV_DIR = "/tmp/yolosnap/uv"
VCS = ("git", "hg", "svn", "bzr")
_IMAGE_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,254}")
#: pip settings for every RUN, as build arguments: RUN steps see them, the image's environment does not keep them.
COMMON_PIP_ARGS = (("PIP_NO_CACHE_DIR", "1"), ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
                   ("PIP_ROOT_USER_ACTION", "ignore"), ("PIP_PROGRESS_BAR", "off"))


def local_path(url: str) -> str | None:
    """The absolute path of a ``file://`` URL; None for remote URLs; ``UnsafeValue`` for ``..`` or a relative path."""
    return grammar.local_path(url)


def words(values: tuple[str, ...] | list[str], kind: str, field: str) -> str:
    """Values of grammar ``kind`` as shell words, each checked and quoted (``zlib1g; echo X`` never runs)."""
    return " ".join(shlex.quote(grammar.require(kind, value, field)) for value in values)


def image_reference(reference: str) -> str:
    """A base image reference for ``FROM``: the user's ``--base`` or a table's, still one inert word."""
    if not isinstance(reference, str) or not _IMAGE_REFERENCE.fullmatch(reference):
        raise UnsafeValue(f"base image {grammar.shorten(reference)} is not an image reference "
                          "(registry/name:tag or @sha256:...); pass another --base")
    return reference


def _pip_pairs(plan: BuildPlan) -> list[tuple[str, str]]:
    settings = list(COMMON_PIP_ARGS)
    if plan.strategy == "wheelhouse":
        settings += [("PIP_NO_INDEX", "1"), ("PIP_FIND_LINKS", WHEEL_SERVER)]
    else:
        settings.append(("PIP_CERT", CA_PATH))
        if not plan.source_builds:  # an sdist's setup code never runs in the build unless the user said so
            settings.append(("PIP_ONLY_BINARY", ":all:"))
        if plan.index_urls:
            settings.append(("PIP_EXTRA_INDEX_URL", " ".join(plan.index_urls)))
    return settings


def pip_settings(plan: BuildPlan) -> list[str]:
    """``ARG`` lines that configure pip for the strategy (each ``ARG`` holds one name for the classic builder)."""
    return [f"ARG {key}={shlex.quote(value)}" for key, value in _pip_pairs(plan)]


def pip_environment(plan: BuildPlan) -> str:
    """The same settings as one command's environment (``KEY=value ...``): a delta's one RUN needs no ARG steps."""
    return " ".join(f"{key}={shlex.quote(value)}" for key, value in _pip_pairs(plan))


def install_pins(plan: BuildPlan, requirements: str) -> str:
    """The RUN command that installs a requirements file of exact pins (no dependencies: the closure is pinned)."""
    if plan.strategy != "wheelhouse":
        return f"RUN {PIP} install --no-deps -r {requirements}"
    return (f"RUN {PIP} install --no-deps --target {UV_DIR} uv=={UV_VERSION} \\\n"
            f" && UV_NO_CACHE=1 {UV_DIR}/bin/uv pip install --system --no-deps --compile-bytecode --no-index "
            f"--find-links \"$PIP_FIND_LINKS\" -r {requirements} \\\n && rm -rf {UV_DIR}")


def install_local(pkg: dict) -> str:
    """The pip command that reinstalls one local, VCS or editable distribution from where it came."""
    name = grammar.require("package-name", pkg.get("name"), "packages[].name")
    url = grammar.require("url", pkg.get("url"), f"the url of {name}")
    sub = pkg.get("subdirectory")
    if sub is not None:
        grammar.require("subdirectory", sub, f"the subdirectory of {name}")
    if pkg["source"] in ("directory", "editable"):
        path = local_path(url)
        if path is None:
            raise UnsafeValue(f"{name} is a {pkg['source']} install from {grammar.shorten(url)}, which is not a "
                              "file:// URL; fix the manifest or re-save the snapshot")
        target = f"{path}/{sub}" if sub else path
        # An absolute path (it starts with '/') is never read as an option; '--editable=' keeps it one word.
        argument = shlex.quote(f"--editable={target}" if pkg["source"] == "editable" else target)
        # A Jupyter extension's front end is built by node, which images lack; hatch-jupyter-builder's documented
        # switch skips that step. The Python package, what the snapshot records, installs as it did on the host.
        return f"SKIP_JUPYTER_BUILDER=1 {PIP} install --no-deps {argument}"
    if pkg["source"] == "vcs":
        vcs = pkg.get("vcs") or "git"
        if vcs not in VCS:
            raise UnsafeValue(f"the vcs of {name} = {grammar.shorten(vcs)} is not one of {', '.join(VCS)}")
        commit = grammar.require("commit", pkg.get("commit"), f"the commit of {name}")
        spec = f"{vcs}+{url}@{commit}#egg={name}"
        if sub:
            spec += f"&subdirectory={sub}"
        return f"{PIP} install --no-deps -- {shlex.quote(spec)}"
    path = local_path(url)
    return f"{PIP} install --no-deps -- {shlex.quote(path if path else name + ' @ ' + url)}"


def requirement_lines(pins: tuple[dict, ...] | list[dict]) -> str:
    """A requirements file of exact pins, one checked ``name==version`` a line (no line can be an option)."""
    return "".join(requirement(p) + "\n" for p in pins)


def requirement_files(plan: BuildPlan) -> dict[str, str]:
    """``requirements/<layer>.txt`` contents; their bytes decide whether Docker reuses a layer."""
    files = {}
    for layer in ("heavy", "index"):
        pins = getattr(plan, layer)
        if pins:
            files[f"requirements/{layer}.txt"] = requirement_lines(pins)
    return files


def label_line(labels: dict[str, str]) -> str:
    """All labels in one ``LABEL`` instruction: one build step instead of one per label."""
    return "LABEL " + " ".join(f"{key}={json.dumps(grammar.inert(value, 'label ' + key))}"
                               for key, value in sorted(labels.items()))


def _system_title(plan: BuildPlan) -> str:
    """What the system layer is for: the native libraries the capture found, git for VCS sources, or both."""
    native = [p for p in plan.system_packages if p != "git" or "git" in plan.native]
    reasons = (["native libraries the environment's packages need (found by the capture)"] if native else []) + (
        ["git, which pip needs to clone VCS sources"] if plan.vcs else [])
    return "System packages: " + " and ".join(reasons) + "."


def render(plan: BuildPlan, name: str, digest: str, tool_version: str, notes: tuple[str, ...] = (),
           labels: dict[str, str] | None = None) -> str:
    """The full Dockerfile for a plan; ``notes`` become comment lines for the reader, ``labels`` its last line."""
    lines = [
        f"# Generated by jupyter_yolosnap {tool_version} from .yolosnap/{name}/snapshot.json ({digest[:19]}).",
        f"# Build and verify with: yolosnap build {name} --strategy {plan.strategy}",
        "# Layers go from most to least stable, so a small pin change reuses everything above it.",
        *(f"# Note: {grammar.inert(note, 'a recipe note')}" for note in notes),
        f"FROM {image_reference(plan.base)}",
    ]
    lines += ["# pip settings for the build (build arguments: not kept in the image's environment).",
              *pip_settings(plan)]
    if plan.strategy == "pinned":
        lines += ["# The build's CA bundle, so pip trusts the index from inside the build (public certificates only).",
                  f"COPY ca-bundle.crt {CA_PATH}"]
    layers = []
    if plan.system_packages:
        layers.append((_system_title(plan), ["RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                               "--no-install-recommends -- " + words(plan.system_packages, "deb-name",
                                                                     "a system package")
                               + " && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb"]))
    if plan.remove:
        layers.append(("Distributions of the base image that the snapshot does not have.",
                       [f"RUN {PIP} uninstall -y -- " + words(plan.remove, "package-name", "a base distribution")]))
    for layer, title in (("heavy", "Heavy ML distributions, in their own layer."),
                         ("index", "Every other pinned distribution.")):
        if getattr(plan, layer):
            layers.append((title, [f"COPY requirements/{layer}.txt /tmp/yolosnap/{layer}.txt",
                                   install_pins(plan, f"/tmp/yolosnap/{layer}.txt")]))
    if plan.local:
        body = ["COPY sources/ /"] if any(local_path(p["url"]) for p in plan.local) else []
        body.append("RUN " + " \\\n && ".join(install_local(p) for p in plan.local))
        layers.append(("Local, VCS and editable sources, at the paths they were installed from.", body))
    for number, (title, body) in enumerate(layers, 1):
        lines += [f"# {number}. {title}", *body]
    if labels:
        lines += ["# What this image is: the snapshot and manifest digest it was built from.", label_line(labels)]
    return "\n".join(lines) + "\n"


#: Where a delta layer's container finds the uv binary (a read-only mount; ``/mnt`` is there, and empty, in
#: Debian's images, so the mount adds not even a mount point to the layer).
UV_MOUNT = "/mnt"


def delta_line(plan: BuildPlan, install: list[dict], remove: list[str], uv: str | None = None) -> str:
    """The shell line that turns the previous verified image into the new manifest's: uninstall, then install
    the pins, every name and pin a checked, quoted word. With ``uv`` (the path of a uv binary mounted into the
    container: the wheelhouse strategy's delta layer) uv installs from the build's wheel server; without, pip
    with the strategy's settings as its environment."""
    if uv:
        uninstall = f"UV_NO_CACHE=1 {uv} pip uninstall --system -- "
        pins = (f"UV_NO_CACHE=1 {uv} pip install --system --no-deps --compile-bytecode --no-index --find-links "
                f"{WHEEL_SERVER} -- ")
    else:
        env = pip_environment(plan)
        uninstall, pins = f"{env} {PIP} uninstall -y -- ", f"{env} {PIP} install --no-deps -- "
    commands = []
    if remove:
        commands.append(uninstall + words(remove, "package-name", "a distribution to remove"))
    if install:
        commands.append(pins + " ".join(shlex.quote(requirement(p)) for p in install))
    return " \\\n && ".join(commands)


def render_delta(plan: BuildPlan, previous_image: str, install: list[dict], remove: list[str],
                 labels: dict[str, str] | None = None) -> str:
    """A few pins on top of the previous verified image of the same snapshot, as a Dockerfile of one ``RUN``
    (:func:`delta_line` with pip) and one ``LABEL``: what the pinned strategy's delta builds, where pip reaches
    the index itself. (The wheelhouse strategy commits :func:`delta_line` with uv as one layer instead:
    ``engine.build.commit_layer``.)"""
    lines = [f"# Delta on the previous verified image: {len(install)} pin(s) to install, {len(remove)} to remove.",
             f"FROM {image_reference(previous_image)}"]
    if plan.strategy == "pinned":
        lines.append(f"COPY ca-bundle.crt {CA_PATH}")
    if install or remove:
        lines.append("RUN " + delta_line(plan, install, remove))
    if labels:
        lines.append(label_line(labels))
    return "\n".join(lines) + "\n"
