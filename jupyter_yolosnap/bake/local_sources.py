"""Local sources (directory, editable, local VCS and archive installs): which host paths a build may copy, and how.

A manifest names host paths (``file:///...``), and a manifest is untrusted: a teammate's pull request could name
``file:///root/.ssh``. So a path is used only when it is what the manifest says it is: a Python project (a
``pyproject.toml`` or ``setup.py`` at the path, or at its ``subdirectory``), a git repository for a VCS install,
an archive file for an archive install; never a system folder, a home folder itself or a credentials folder.
Every local source is checked before anything of the build is written (``prepare_all``: a folder must also hold
the code the manifest's fingerprint recorded), and copied into the context only below ``context/sources``
(``copy_into``), the same file set the fingerprint covers.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..snapshot import grammar
from ..capture import sources
from ..exceptions import RecipeError

PROJECT_FILES = ("pyproject.toml", "setup.py")
ARCHIVES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tar.xz", ".tar")
#: Never a source, whatever a manifest says: the system's folders, and where credentials live.
SYSTEM_FOLDERS = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin",
                  "/sys", "/usr", "/var", "/tmp")
INSIDE_REFUSED = ("/proc", "/sys", "/dev", "/etc", "/boot", "/run")
SECRET_NAMES = frozenset({".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".netrc", ".pypirc",
                          ".git-credentials", "gcloud"})
#: Above this, a build says how much a local source brings into the image (add a .dockerignore to leave data out).
LARGE_BYTES = 50 * 1024 * 1024


def _refuse(name: str, path: str, why: str) -> RecipeError:
    return RecipeError(f"{name} was installed from {path}, which {why}; a build copies only Python projects it "
                       "names: restore the source there, or reinstall the package and save the snapshot again")


def check(pkg: dict) -> str | None:
    """The host path a local source will be copied from (None for a remote one); ``RecipeError`` otherwise."""
    name = grammar.require("package-name", pkg.get("name"), "packages[].name")
    path = grammar.local_path(grammar.require("url", pkg.get("url"), f"the url of {name}"), f"the url of {name}")
    if path is None:
        return None
    real = os.path.realpath(path)
    home = os.path.realpath(os.path.expanduser("~"))
    for candidate in (path, real):
        if candidate in SYSTEM_FOLDERS or candidate == home or any(
                candidate.startswith(folder + "/") for folder in INSIDE_REFUSED):
            raise _refuse(name, path, "is a system or home folder")
        if SECRET_NAMES & set(PurePosixPath(candidate).parts):
            raise _refuse(name, path, "is inside a credentials folder")
    if not os.path.lexists(path):
        raise _refuse(name, path, "no longer exists")
    source = pkg["source"]
    if source == "archive":
        if not os.path.isfile(real) or not path.endswith(ARCHIVES):
            raise _refuse(name, path, "is not a wheel or source archive file")
        return path
    if not os.path.isdir(real):
        raise _refuse(name, path, "is not a folder")
    if source == "vcs":
        if not os.path.isdir(os.path.join(real, ".git")):
            raise _refuse(name, path, "is not a git repository")
        return path
    sub = pkg.get("subdirectory")
    project = os.path.join(real, grammar.require("subdirectory", sub, f"the subdirectory of {name}")) if sub else real
    if not any(os.path.isfile(os.path.join(project, f)) for f in PROJECT_FILES):
        raise _refuse(name, path, f"is not a Python project (no {' or '.join(PROJECT_FILES)})")
    return path


def remote_code(packages: list[dict]) -> list[dict]:
    """Sources a build fetches from the network and builds, running their setup code inside the build container
    (which has this host's network): VCS repositories and source archives at remote URLs. Wheels run no code."""
    return [p for p in packages if p.get("url") and grammar.local_path(p["url"]) is None and (
        p.get("source") == "vcs" or (p.get("source") == "archive" and not p["url"].endswith(".whl")))]


@dataclass(frozen=True)
class Prepared:
    """A checked local source: where it is, and (folders) the files a build copies with their fingerprint."""

    pkg: dict
    path: str | None              # None: a remote source, fetched by pip during the build
    files: tuple[str, ...] = ()   # directory and editable installs: the copied set, relative to ``path``
    size: int = 0                 # bytes of those files


def prepare(pkg: dict) -> Prepared:
    """Check ``pkg``'s source and, for a folder, list what a build copies and check it is the code the snapshot
    recorded (its fingerprint): an image must never hold other code than the manifest says."""
    path = check(pkg)
    if path is None or pkg["source"] not in ("directory", "editable"):
        return Prepared(pkg, path)
    files = sources.file_set(path)
    found = sources.fingerprint(path, files)
    recorded = pkg.get("fingerprint")
    if recorded and recorded != found["fingerprint"]:
        raise RecipeError(f"the code of {pkg['name']} in {path} changed since the snapshot was saved "
                          f"({found['files']} files, fingerprint {found['fingerprint'][7:19]}, saved "
                          f"{recorded[7:19]}); save the snapshot again to build the new code, or restore the old")
    return Prepared(pkg, path, tuple(files), found["bytes"])


def prepare_all(packages: list[dict]) -> list[Prepared]:
    """Every local source of a manifest, checked before any of the build is written."""
    return [prepare(p) for p in packages if p.get("source") in ("directory", "editable", "vcs", "archive")
            and p.get("url")]


def copy_into(context: Path, prepared: list[Prepared]) -> None:
    """Place checked local sources at their own absolute paths under ``context/sources``, and the list of the
    files copied at ``sources.SOURCES_LIST`` (so ``check`` fingerprints the same set inside the image).

    A folder brings its file set (:func:`sources.file_set`); a VCS source brings its ``.git``, which is all pip
    clones from. Links are copied as links, never followed, and nothing lands outside ``context/sources``.
    """
    root = context.resolve() / "sources"
    listed: dict[str, list[str]] = {}
    for item in prepared:
        if item.path is None:
            continue  # remote archive or VCS: pip fetches it during the build
        src = Path(item.path)
        dest = root / src.relative_to(src.anchor)
        if root not in dest.parents:
            raise _refuse(item.pkg["name"], item.path, "would be copied outside the build context")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not src.is_dir():
            shutil.copy2(src, dest)
        elif item.pkg["source"] == "vcs":
            shutil.copytree(src / ".git", dest / ".git", symlinks=True)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            for name in item.files:
                target = dest / name
                parent = target.parent.resolve()
                if ".." in PurePosixPath(name).parts or (parent != root and root not in parent.parents):
                    continue  # file_set never lists such a name; a hostile work tree could
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / name, target, follow_symlinks=False)
            listed[item.path] = list(item.files)
    if listed:
        target = root / sources.SOURCES_LIST.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(listed, sort_keys=True))
