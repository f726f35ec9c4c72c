"""The manifest: a versioned, validated, digested JSON document of one environment.

The manifest is the contract between capture, diff, recipe and check. Its schema lives beside this module
(``schema/snapshot-v1.schema.json``) as documentation and as the validator's input. Files are written with
one line per package, so ``git diff`` of a re-saved snapshot reads like a changelog.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from . import grammar
from ..exceptions import ManifestError

SCHEMA_VERSION = 1
#: Fields outside the digest: they name or date a capture, they are not the environment.
UNDIGESTED = ("name", "created", "tool", "digest")


def schema() -> dict:
    """The JSON Schema of the current manifest version (its ``definitions`` are the field grammar)."""
    return grammar.schema()


def compute_digest(manifest: dict) -> str:
    """sha256 over canonical JSON of the environment fields (see ``UNDIGESTED``)."""
    body = {k: v for k, v in manifest.items() if k not in UNDIGESTED}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def build_manifest(name: str, captured: dict, gpu: dict, tool_version: str) -> dict:
    """Assemble a manifest from the interpreter's capture and the host's GPU probe."""
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "tool": {"name": "jupyter_yolosnap", "version": tool_version},
    }
    manifest.update({k: v for k, v in captured.items() if k != "probe_version"})
    manifest["gpu"] = gpu
    manifest["digest"] = compute_digest(manifest)
    return manifest


def validate(manifest: Any, where: str = "manifest") -> dict:
    """Check shape, grammar and version, refresh the digest; raise one ``ManifestError`` naming the first problem.

    Every front door loads through here, so a manifest from a pull request, an archive or an image label is
    refused with one line (the field, the value shortened, what was expected) before any of it is used.
    """
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where} is not a snapshot manifest (expected a JSON object); re-save the snapshot")
    version = manifest.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ManifestError(
            f"{where} uses manifest schema {version}, newer than this jupyter_yolosnap understands "
            f"({SCHEMA_VERSION}); upgrade with: pip install -U jupyter_yolosnap")
    problem = grammar.shape_problem(manifest) or grammar.schema_problem(manifest) or grammar.semantic_problem(manifest)
    if problem is not None:
        raise ManifestError(f"{where} is not a valid snapshot manifest: {problem}; fix the file or re-save the "
                            "snapshot")
    # A hand edit (say, one pin changed for a rebuild) is legitimate: the digest follows the content.
    manifest["digest"] = compute_digest(manifest)
    return manifest


#: Installers that take distributions from Python package indexes: an image installs the same wheels with uv.
PYPI_INSTALLERS = frozenset({"", "pip", "uv", "poetry", "pdm", "pipenv", "hatch", "pip-tools"})


def foreign_installer(pkg: dict) -> str | None:
    """The installer of an index distribution that did not come from a Python index (conda...), else None."""
    installer = str(pkg.get("installer") or "").lower()
    return installer if pkg.get("source", "index") == "index" and installer not in PYPI_INSTALLERS else None


def warnings(manifest: dict) -> list[str]:
    """What the snapshot reproduces faithfully but a user should know: broken installs, other installers."""
    lines = []
    for pkg in manifest.get("packages") or []:
        label = f"{pkg['name']} {pkg['version']}"
        if pkg.get("problem"):
            lines.append(f"{label}: {pkg['problem']} (an image installs a working copy this environment lacks; "
                         f"reinstall or uninstall it here)")
        if pkg.get("missing"):
            lines.append(f"{label} needs {', '.join(pkg['missing'])}, not installed (pip install --no-deps?); the "
                         "image reproduces that")
    foreign = [(p["name"], foreign_installer(p)) for p in manifest.get("packages") or [] if foreign_installer(p)]
    if foreign:
        kinds = ", ".join(sorted({kind for _, kind in foreign}))
        names = ", ".join(name for name, _ in foreign[:4]) + (" ..." if len(foreign) > 4 else "")
        lines.append(f"{len(foreign)} distribution(s) were installed by {kinds} ({names}); an image installs their "
                     "PyPI wheels in their place (yolosnap build refuses that unless given --installers pypi)")
    return lines


def _flat(value: Any) -> bool:
    return isinstance(value, dict) and not any(isinstance(v, (dict, list)) and v for v in value.values())


_LEADING_KEYS = ("name", "soname", "version", "source", "status")
#: Top-level order in files: identity first, then what a reader checks first, the long lists last.
TOP_LEVEL_ORDER = ("schema_version", "name", "created", "digest", "tool", "python", "cuda", "gpu", "git", "env",
                   "packages", "native_libs", "os")


def _top_keys(value: dict) -> list[str]:
    return [k for k in TOP_LEVEL_ORDER if k in value] + sorted(k for k in value if k not in TOP_LEVEL_ORDER)


def _one_line(value: dict) -> str:
    """A flat object on one line, identifying keys first (``name``, ``version``, ``source``), then the rest."""
    keys = [k for k in _LEADING_KEYS if k in value] + sorted(k for k in value if k not in _LEADING_KEYS)
    return json.dumps({k: value[k] for k in keys}, ensure_ascii=False)


def _dump(value: Any, indent: int) -> str:
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(value, dict) and value and not (indent > 0 and _flat(value) and len(value) <= 3):
        keys = _top_keys(value) if indent == 0 else sorted(value)
        items = [f"{inner}{json.dumps(k)}: {_dump(value[k], indent + 2)}" for k in keys]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and value:
        if all(not isinstance(v, (dict, list)) for v in value) and len(json.dumps(value)) < 100:
            return json.dumps(value, ensure_ascii=False)
        items = [inner + (_one_line(v) if _flat(v) else _dump(v, indent + 2))
                 for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def dumps(manifest: dict) -> str:
    """Readable JSON: nested objects indented, each package (any flat object in a list) on one line."""
    return _dump(manifest, 0) + "\n"


def loads(text: str, where: str = "manifest") -> dict:
    """Parse and validate manifest text."""
    if len(text) > grammar.MAX_BYTES:
        raise ManifestError(f"{where} is {len(text) // 1048576} MiB, more than a manifest can be "
                            f"({grammar.MAX_BYTES // 1048576} MiB); restore it from version control or re-save it")
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ManifestError(f"{where} is not valid JSON ({grammar.shorten(str(err), 120)}); restore it from version "
                            "control or re-save it") from None
    except RecursionError:
        raise ManifestError(f"{where} is not a valid snapshot manifest: nested deeper than Python can read; restore "
                            "it from version control or re-save it") from None
    return validate(data, where)
