"""What changed between two manifests, section by section.

A change is one row of a table: section, item, old, new. ``identical`` ignores the informational sections
(the project's git revision), because committing code is not environment drift.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from .manifest import foreign_installer

#: Sections in display order. Rows in INFORMATIONAL ones are shown but never make two snapshots differ.
SECTIONS = ("python", "packages", "cuda", "gpu", "native libraries", "os", "system packages", "env", "source")
INFORMATIONAL = frozenset({"source"})
_SOURCE_FIELDS = ("source", "url", "commit", "hash", "subdirectory")
INSTALLED_BY = "installed by "


@dataclass(frozen=True)
class Change:
    section: str
    item: str
    old: str | None
    new: str | None

    @property
    def kind(self) -> str:
        return "added" if self.old is None else "removed" if self.new is None else "changed"


@dataclass
class ManifestDiff:
    old_label: str
    new_label: str
    changes: list[Change] = field(default_factory=list)

    @property
    def drift(self) -> list[Change]:
        """The changes that count: everything outside the informational sections."""
        return [c for c in self.changes if c.section not in INFORMATIONAL]

    @property
    def identical(self) -> bool:
        return not self.drift

    def to_dict(self) -> dict:
        return {"old": self.old_label, "new": self.new_label, "identical": self.identical,
                "changes": [dict(asdict(c), kind=c.kind) for c in self.changes]}


def _text(value: object) -> str | None:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _fields(section: str, old: dict, new: dict, names: Iterable[str], prefix: str = "") -> list[Change]:
    out = []
    for name in names:
        a, b = _text((old or {}).get(name)), _text((new or {}).get(name))
        if a != b:
            out.append(Change(section, prefix + name, a, b))
    return out


def _keyed(section: str, old: list[dict], new: list[dict], key: str,
           describe: Callable[[dict], str]) -> list[Change]:
    before = {item[key]: item for item in old or []}
    after = {item[key]: item for item in new or []}
    out = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        da, db = (describe(a) if a else None), (describe(b) if b else None)
        if da != db:
            out.append(Change(section, name, da, db))
    return out


def describe_package(pkg: dict) -> str:
    """``1.2.3`` for an index install (``1.2.3 (installed by conda)`` from another installer),
    ``1.2.3 (vcs git+https://...@abc123)`` otherwise."""
    if pkg.get("source", "index") == "index":
        installer = foreign_installer(pkg)
        return pkg["version"] + (f" ({INSTALLED_BY}{installer})" if installer else "")
    where = pkg.get("url", "")
    if pkg.get("commit"):
        where += f"@{pkg['commit'][:12]}"
    elif pkg.get("hash"):
        where += f"#{pkg['hash'][:19]}"
    if pkg.get("fingerprint"):  # the code itself: an edit moves it even when the version stays
        where += f", code {pkg['fingerprint'][7:19]}"
    return f"{pkg['version']} ({pkg['source']} {where})".strip()


def _gpu_list(gpu: dict) -> str | None:
    names = [g.get("name", "?") for g in (gpu or {}).get("gpus") or []]
    if not names:
        return "none" if (gpu or {}).get("status") else None
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return ", ".join(f"{n} x{c}" if c > 1 else n for n, c in counts.items())


def diff_manifests(old: dict, new: dict, old_label: str = "old", new_label: str = "new") -> ManifestDiff:
    """Compare two manifests; the result lists changes in ``SECTIONS`` order."""
    changes: list[Change] = []
    changes += _fields("python", old.get("python"), new.get("python"),
                       ("implementation", "version", "abi", "machine"))
    changes += _keyed("packages", old.get("packages"), new.get("packages"), "name", describe_package)
    old_cuda, new_cuda = old.get("cuda") or {}, new.get("cuda") or {}
    for framework in ("torch", "tensorflow"):
        changes += _fields("cuda", old_cuda.get(framework), new_cuda.get(framework),
                           ("version", "cuda", "cudnn"), prefix=f"{framework} ")
    changes += _fields("cuda", old_cuda.get("nvcc"), new_cuda.get("nvcc"), ("version",), prefix="nvcc ")
    old_gpu, new_gpu = old.get("gpu") or {}, new.get("gpu") or {}
    changes += _fields("gpu", old_gpu, new_gpu, ("driver_version", "cuda_driver_version"))
    gpus = (_gpu_list(old_gpu), _gpu_list(new_gpu))
    if gpus[0] != gpus[1]:
        changes.append(Change("gpu", "devices", *gpus))
    changes += _keyed("native libraries", old.get("native_libs"), new.get("native_libs"), "soname",
                      lambda lib: f"{lib['status']}" + (f" ({lib['package']})" if lib.get("package") else ""))
    old_os, new_os = old.get("os") or {}, new.get("os") or {}
    changes += _fields("os", old_os, new_os, ("id", "version_id"))
    changes += _fields("os", old_os.get("libc"), new_os.get("libc"), ("version",), prefix="libc ")
    changes += _keyed("system packages", old_os.get("packages"), new_os.get("packages"), "name",
                      lambda p: p["version"])
    changes += _keyed("env", [{"k": k, "v": v} for k, v in (old.get("env") or {}).items()],
                      [{"k": k, "v": v} for k, v in (new.get("env") or {}).items()], "k", lambda e: e["v"])
    changes += _fields("source", old.get("git"), new.get("git"), ("commit", "dirty"), prefix="git ")
    return ManifestDiff(old_label, new_label, changes)
