"""The one field grammar of a manifest, enforced when a manifest is loaded and again where a value is used.

Manifests are untrusted input: they arrive in teammates' pull requests, in archives and in image labels. The
patterns live in the schema (``schema/snapshot-v1.schema.json``, ``definitions``), so the documentation, the
loader and the places that put a value into a Dockerfile, a shell line, a pip argument list or a path all read
the same grammar. The loader adds what a schema cannot say cheaply: no control character in any string or key
(a newline would start a new Dockerfile instruction, and a pattern's ``$`` accepts a trailing newline), a
bounded nesting depth (a 10,000-deep document must not crash a listing), PEP 440 versions for index pins, and
``file://`` paths that are absolute and have no ``..``.

This module imports nothing heavy: every manifest-reading command pays for it.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit

from ..exceptions import UnsafeValue

SCHEMA_PATH = Path(__file__).parent / "schema" / "snapshot-v1.schema.json"
MAX_DEPTH = 16
MAX_BYTES = 32 * 1024 * 1024
MAX_KEY = 256
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@lru_cache(maxsize=None)
def schema() -> dict:
    """The JSON Schema of manifest version 1 (documentation, validator input, and the grammar's patterns)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _definition(kind: str) -> tuple[re.Pattern, int, str]:
    spec = schema()["definitions"][kind]
    return re.compile(spec["pattern"]), int(spec.get("maxLength", 4096)), spec["description"]


def shorten(value: Any, limit: int = 60) -> str:
    """``repr`` of a value, cut to ``limit`` characters: error lines stay one readable line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return text[:limit - 3] + "..."


def matches(kind: str, value: Any) -> bool:
    """Whether ``value`` is a string of grammar ``kind`` (a ``definitions`` entry of the schema)."""
    pattern, limit, _ = _definition(kind)
    return (isinstance(value, str) and len(value) <= limit and not _CONTROL.search(value)
            and pattern.fullmatch(value) is not None)


def require(kind: str, value: Any, field: str) -> str:
    """``value`` if it is of grammar ``kind``; else ``UnsafeValue`` naming the field, the value and the rule.

    Called where a value is used (Dockerfile, shell, pip argv, path) even though the loader checked it already:
    a manifest that reached the use some other way (a test, a future code path) is still refused.
    """
    if not matches(kind, value):
        raise UnsafeValue(f"{field} = {shorten(value)} is not allowed: expected {_definition(kind)[2]}; fix the "
                          "manifest or re-save the snapshot")
    return value


def inert(value: Any, field: str) -> str:
    """A string with no control characters (newlines included): safe to put on one Dockerfile or shell line
    once quoted."""
    if not isinstance(value, str) or _CONTROL.search(value):
        raise UnsafeValue(f"{field} = {shorten(value)} holds a control character (a newline would start a new "
                          "instruction); fix the manifest or re-save the snapshot")
    return value


def local_path(url: str, field: str = "url") -> str | None:
    """The absolute, normalised path of a ``file://`` URL (None for other schemes); refuses ``..`` and relative
    paths, which could make a build copy files from outside the place the source was installed from."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        raise UnsafeValue(f"{field} = {shorten(url)} names another host; a local source must be file:///ABSOLUTE/PATH")
    path = unquote(parts.path)
    pure = PurePosixPath(path)
    if not pure.is_absolute() or ".." in pure.parts or _CONTROL.search(path) or str(pure) != (path.rstrip("/") or "/"):
        raise UnsafeValue(f"{field} = {shorten(url)} is not a plain absolute path (no '..', no '//', no control "
                          "characters); fix the manifest or re-save the snapshot")
    return str(pure)


def _walk(value: Any, where: str, depth: int = 0) -> Iterator[str]:
    """Problems of shape that no schema rule states cheaply: depth, control characters, key sizes."""
    if depth > MAX_DEPTH:
        yield f"{where or '(top level)'}: nested deeper than {MAX_DEPTH} levels"
        return
    if isinstance(value, str):
        if _CONTROL.search(value):
            yield f"{where}: {shorten(value)} holds a control character (newline, tab, escape...)"
    elif isinstance(value, dict):
        for key, item in value.items():
            if len(key) > MAX_KEY or _CONTROL.search(key):
                yield f"{where or '(top level)'}: key {shorten(key)} is too long or holds a control character"
                continue
            yield from _walk(item, f"{where}.{key}" if where else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{where}[{index}]", depth + 1)


def shape_problem(data: Any) -> str | None:
    """The first depth/control-character problem of a parsed document, or None."""
    return next(_walk(data, ""), None)


def semantic_problem(manifest: dict) -> str | None:
    """What the schema's patterns let through but a build must not see: non-PEP 440 index pins, odd paths."""
    from packaging.version import InvalidVersion, Version

    for index, pkg in enumerate(manifest.get("packages") or []):
        field = f"packages[{index}]"
        if pkg.get("source") == "index":
            try:
                Version(pkg["version"])
            except InvalidVersion:
                return (f"{field}.version: {shorten(pkg['version'])} is not a PEP 440 version, so pip cannot pin "
                        f"{pkg['name']}")
        url = pkg.get("url")
        if isinstance(url, str):
            try:
                local_path(url, f"{field}.url")
            except UnsafeValue as err:
                return str(err).split("; fix", 1)[0]
    return None


# --- the validator -----------------------------------------------------------------------------------------------
# jsonschema costs 2.4 s to import here (jupyter_events pulls in an optional format checker that compiles a grammar on
# import) and fastjsonschema 25 ms to import, 38 ms to compile this schema and 40 ms per manifest (it formats each
# item's path on the happy path). The schema uses a small subset of JSON Schema (draft 7): type, enum, pattern,
# maxLength, maxItems, maxProperties, required, properties, additionalProperties, propertyNames, items, anyOf,
# allOf/if/then and local $ref. That subset is compiled here into closures once per process; the tests check it
# against jsonschema, the reference implementation, on generated manifests (tests/test_hostile_manifests.py).
Problem = tuple  # (path tuple, message), or None for "valid"
_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "object": (dict,),
          "array": (list,), "null": (type(None),)}
SUPPORTED = frozenset({"type", "enum", "pattern", "maxLength", "maxItems", "maxProperties", "required",
                       "properties", "additionalProperties", "propertyNames", "items", "anyOf", "allOf", "if",
                       "then", "$ref", "description", "title", "$schema", "definitions"})


def _same(a: Any, b: Any) -> bool:
    return a == b and (a is None) == (b is None) and isinstance(a, bool) == isinstance(b, bool)


def _compile(node: dict, defs: dict, cache: dict) -> Any:
    unknown = set(node) - SUPPORTED
    if unknown:  # a schema edit that this compiler would silently ignore must fail loudly instead
        raise ValueError(f"schema keyword(s) {sorted(unknown)} are not supported by grammar._compile")
    if "$ref" in node:
        key = node["$ref"].rsplit("/", 1)[-1]
        if key not in cache:
            inner = _compile(defs[key], defs, cache)
            expected = f"expected {defs[key]['description']}" if "description" in defs[key] else None

            def ref(value: Any, inner: Any = inner, expected: str | None = expected) -> Problem | None:
                problem = inner(value)
                if problem is not None and expected and not problem[0]:
                    return ((), expected)
                return problem
            cache[key] = ref
        return cache[key]
    checks = []
    if "type" in node:
        names = node["type"] if isinstance(node["type"], list) else [node["type"]]
        allowed = tuple(t for n in names for t in _TYPES[n])
        no_bool = "boolean" not in names
        message = f"must be {' or '.join(names)}"

        whole_floats = "integer" in names and "number" not in names  # JSON Schema: 1.0 is an integer

        def type_check(value: Any) -> Problem | None:
            if isinstance(value, allowed) and not (no_bool and isinstance(value, bool)):
                return None
            if whole_floats and isinstance(value, float) and value.is_integer():
                return None
            return ((), message)
        checks.append(type_check)
    if "enum" in node:
        options = node["enum"]
        message = "must be one of " + ", ".join(json.dumps(o) for o in options)
        checks.append(lambda value: None if any(_same(value, o) for o in options) else ((), message))
    if "pattern" in node or "maxLength" in node:
        pattern = re.compile(node.get("pattern", ""))
        limit = node.get("maxLength", 1 << 62)

        def string_check(value: Any) -> Problem | None:
            if isinstance(value, str) and (len(value) > limit or not pattern.search(value)):
                return ((), f"must match {pattern.pattern}" if len(value) <= limit else f"is longer than {limit}")
            return None
        checks.append(string_check)
    if "items" in node or "maxItems" in node:
        item = _compile(node["items"], defs, cache) if "items" in node else None
        most = node.get("maxItems", 1 << 62)

        def array_check(value: Any) -> Problem | None:
            if not isinstance(value, list):
                return None
            if len(value) > most:
                return ((), f"has more than {most} items")
            if item is not None:
                for index, element in enumerate(value):
                    problem = item(element)
                    if problem is not None:
                        return ((index, *problem[0]), problem[1])
            return None
        checks.append(array_check)
    if {"properties", "required", "additionalProperties", "propertyNames", "maxProperties"} & set(node):
        props = {k: _compile(v, defs, cache) for k, v in (node.get("properties") or {}).items()}
        required = tuple(node.get("required") or ())
        extra = node.get("additionalProperties")
        extra = _compile(extra, defs, cache) if isinstance(extra, dict) else None
        key_rule = _compile(node["propertyNames"], defs, cache) if "propertyNames" in node else None
        most = node.get("maxProperties", 1 << 62)

        def object_check(value: Any) -> Problem | None:
            if not isinstance(value, dict):
                return None
            for key in required:
                if key not in value:
                    return ((), f"misses the required field {key!r}")
            if len(value) > most:
                return ((), f"has more than {most} fields")
            for key, element in value.items():
                if key_rule is not None and key_rule(key) is not None:
                    return ((key,), "is not an allowed name: " + key_rule(key)[1])
                rule = props.get(key, extra)
                if rule is not None:
                    problem = rule(element)
                    if problem is not None:
                        return ((key, *problem[0]), problem[1])
            return None
        checks.append(object_check)
    if "anyOf" in node:
        branches = [_compile(b, defs, cache) for b in node["anyOf"]]

        def any_check(value: Any) -> Problem | None:
            problems = [branch(value) for branch in branches]
            if any(p is None for p in problems):
                return None
            useful = [p for p in problems if p[1] != "must be null"]
            return (useful or problems)[0]
        checks.append(any_check)
    for sub in node.get("allOf") or ():
        checks.append(_compile(sub, defs, cache))
    if "if" in node:
        condition = _compile(node["if"], defs, cache)
        then = _compile(node.get("then") or {}, defs, cache)
        checks.append(lambda value: then(value) if condition(value) is None else None)

    def check(value: Any) -> Problem | None:
        for one in checks:
            problem = one(value)
            if problem is not None:
                return problem
        return None
    return check


@lru_cache(maxsize=None)
def validator() -> Any:
    """The compiled schema: ``validator()(data)`` returns None or ``(path, message)`` for the first problem."""
    spec = schema()
    return _compile({k: v for k, v in spec.items() if k != "definitions"}, spec.get("definitions") or {}, {})


def location(path: tuple) -> str:
    """``packages[3].name`` from ``("packages", 3, "name")``."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return text or "(top level)"


def value_at(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def schema_problem(data: Any) -> str | None:
    """The first schema violation as ``field = value: message``, or None."""
    problem = validator()(data)
    if problem is None:
        return None
    path, message = problem
    try:
        value = value_at(data, path)
    except (KeyError, IndexError, TypeError):
        value = None
    shown = "" if isinstance(value, (dict, list)) else f" = {shorten(value)}"
    return f"{location(path)}{shown}: {message}"
