"""The manifest: a versioned, validated, digested JSON document of one environment.

The manifest is the contract between capture, diff, recipe and check. Its schema lives beside this module
(``schema/snapshot-v1.schema.json``) as documentation and as the validator's input. Files are written with
one line per package, so ``git diff`` of a re-saved snapshot reads like a changelog.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from .exceptions import ManifestError

SCHEMA_VERSION = 1
#: Fields outside the digest: they name or date a capture, they are not the environment.
UNDIGESTED = ("name", "created", "tool", "digest")


@lru_cache(maxsize=None)
def schema() -> dict:
    """The JSON Schema of the current manifest version."""
    return json.loads((Path(__file__).parent / "schema" / f"snapshot-v{SCHEMA_VERSION}.schema.json").read_text())


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


def _location(error: Any) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return path.lstrip(".") or "(top level)"


def validate(manifest: Any, where: str = "manifest") -> dict:
    """Check shape and version, refresh the digest; raise one clear ``ManifestError`` naming the first problem."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where} is not a snapshot manifest (expected a JSON object); re-save the snapshot")
    version = manifest.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise ManifestError(
            f"{where} uses manifest schema {version}, newer than this jupyter_yolosnap understands "
            f"({SCHEMA_VERSION}); upgrade with: pip install -U jupyter_yolosnap")
    import jsonschema  # deferred: only loading and saving pay for it

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema()).iter_errors(manifest))
    if error is not None:
        raise ManifestError(f"{where} is not a valid snapshot manifest: {_location(error)}: {error.message}; "
                            "fix the file or re-save the snapshot")
    # A hand edit (say, one pin changed for a rebuild) is legitimate: the digest follows the content.
    manifest["digest"] = compute_digest(manifest)
    return manifest


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
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ManifestError(f"{where} is not valid JSON ({err}); restore it from version control or re-save it")
    return validate(data, where)
