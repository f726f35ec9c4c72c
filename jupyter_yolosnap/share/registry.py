"""Push a verified snapshot to a registry and pull it back, manifest included, through the engine (docker-py).

**How the manifest travels.** The verified image already carries ``labels.SNAPSHOT`` and ``labels.DIGEST``
(the build wrote them, and the check proved them). ``push`` adds the manifest itself in one tiny layer on top,
built like any image here (:func:`..engine.build.build_image`, no network)::

    FROM <the verified image, by id>
    COPY snapshot.json /opt/yolosnap/snapshot.json
    LABEL org.jupyter-yolosnap.digest="sha256:..." org.jupyter-yolosnap.manifest="/opt/yolosnap/snapshot.json" ...

A file, not a label: labels have size limits, and a manifest can be megabytes. Docker's cache makes that layer
the same image every time for the same snapshot. ``pull`` reads the file back without running anything: a
container is created (never started), ``get_archive`` copies the one file out (size-limited), the container is
removed. The manifest is untrusted input there: it must validate, carry the digest its content hashes to, and be
the one the image's labels name; then, as for a build, a capture inside the image must diff clean before the
snapshot is registered and the image tagged ``yolosnap/<slug>:<digest prefix>`` and ``:latest``.

**Credentials** are the engine's own: docker-py sends what ``docker login`` stored (``~/.docker/config.json``,
credential helpers). This module stores none and never prints one; a registry that wants a login is told in one
line to ``docker login <registry>``. Every push and pull is recorded in ``.yolosnap/<name>/registry.json``
(:mod:`.records`) with the registry digest, so ``yolosnap k8s --image REPO@sha256:...`` can name it exactly.
"""
from __future__ import annotations

import contextlib
import io
import re
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import docker

from ..engine import images, labels
from ..engine.build import build_image
from ..engine.client import ENGINE_ERRORS, STREAM_ERRORS, connect, explain
from ..events import Event, Listener, ignore
from ..exceptions import RegistryError
from ..recipe.dockerfile import label_line
from ..snapshot import grammar, manifest as manifest_io
from ..snapshot.names import IMAGE_NAMESPACE, image_tag
from ..snapshot.store import Store
from . import adopt, records

#: Where the pushed image carries its manifest, and the label that says so.
MANIFEST_PATH = "/opt/yolosnap/snapshot.json"
MANIFEST_LABEL = labels.MANIFEST
#: Seconds an engine call may stay silent (a push or pull of a large layer streams progress meanwhile).
ENGINE_TIMEOUT_S = 3600
_TAR_SLACK = 64 * 1024  # tar headers and padding around the manifest in get_archive's stream

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(rf"(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)"
                        r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?")


@dataclass(frozen=True)
class Pushed:
    name: str
    repository: str
    tag: str
    digest: str           # the registry's manifest digest
    image_id: str         # the local image pushed (the verified image plus the manifest layer)
    seconds: float

    @property
    def reference(self) -> str:
        """``repo:tag`` as pushed."""
        return f"{self.repository}:{self.tag}"

    @property
    def by_digest(self) -> str:
        """``repo@sha256:...``: the exact image, whatever the tag later points to (what ``k8s --image`` takes)."""
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class Pulled:
    name: str
    digest: str           # the manifest digest
    reference: str
    registry_digest: str | None
    image: str            # the verified tag
    image_id: str
    path: Path            # the manifest in the store
    previous: str | None  # the digest of the snapshot it replaced, if any
    seconds: float
    checked: bool


def parse_reference(reference: object, digest_ok: bool) -> tuple[str, str, bool]:
    """``(repository, tag or digest, is_digest)`` of an image reference; ``RegistryError`` for anything else (a
    reference is one word of Docker's grammar: it reaches the engine, so nothing else gets through)."""
    text = reference if isinstance(reference, str) else ""
    match = _REFERENCE.fullmatch(text) if len(text) <= 512 else None
    if match is None or len(match.group("name")) > 255:
        raise RegistryError(f"{grammar.shorten(reference)} is not an image reference; use REGISTRY/REPOSITORY:TAG "
                            "(e.g. registry.example.com/team/yolo-train:2025-q2)")
    name, tag, digest = match.group("name"), match.group("tag"), match.group("digest")
    if digest and tag:
        raise RegistryError(f"{reference!r} names both a tag and a digest; use one: REPOSITORY:TAG or "
                            "REPOSITORY@sha256:DIGEST")
    if digest and not digest_ok:
        raise RegistryError(f"{reference!r} names a digest; a push needs a tag: REPOSITORY:TAG")
    bare = re.sub(r"^(?:docker\.io|index\.docker\.io)/", "", name)
    if bare.startswith(f"{IMAGE_NAMESPACE}/"):
        raise RegistryError(f"{reference!r} is in {IMAGE_NAMESPACE}/, where this tool keeps verified images; push "
                            "to a registry reference (e.g. registry.example.com/team/NAME:TAG)")
    return name, digest or tag or "latest", bool(digest)


def registry_of(repository: str) -> str:
    """The registry host of ``repository`` (``docker.io`` for Docker Hub)."""
    with contextlib.suppress(docker.errors.DockerException, IndexError):
        return docker.auth.resolve_repository_name(repository)[0]
    return repository.split("/", 1)[0]


def explain_registry(message: str, doing: str, reference: str, registry: str) -> RegistryError:
    """One line for what a registry (or the engine talking to it) answered; the text is untrusted, so it is
    stripped of control characters and shortened before it is shown."""
    text = re.sub(r"[\x00-\x1f\x7f-\x9f]+", " ", str(message)).strip()[:240]
    lowered = text.lower()
    if "does not exist or may require" in lowered:
        return RegistryError(f"{doing} {reference} failed: the registry {registry} does not have it, or it needs a "
                             f"login: check the name and tag, or log in with docker login {registry}")
    if any(s in lowered for s in ("unauthorized", "authentication required", "no basic auth credentials",
                                  "denied", "incorrect username or password", "forbidden")):
        return RegistryError(f"{doing} {reference} was refused by the registry {registry} (authentication required); "
                             f"log in with docker login {registry} and try again (this tool stores no credentials)")
    if "server gave http response to https client" in lowered:
        return RegistryError(f"{doing} {reference} failed: the registry {registry} speaks plain HTTP; serve it with "
                             "TLS, or add it to the engine's insecure-registries (/etc/docker/daemon.json)")
    if any(s in lowered for s in ("connection refused", "no such host", "i/o timeout", "network is unreachable",
                                  "no route to host", "connection reset", "tls handshake timeout",
                                  "unexpected eof")):
        return RegistryError(f"{doing} {reference} failed: cannot reach the registry {registry} ({text[:120]}); "
                             "check the address and that the registry runs")
    if any(s in lowered for s in ("not found", "manifest unknown", "name unknown", "unknown blob")):
        return RegistryError(f"{doing} {reference} failed: not found in the registry {registry}; check the name and "
                             "tag (a snapshot gets there with: yolosnap push NAME REFERENCE)")
    if "toomanyrequests" in lowered or "rate limit" in lowered:
        return RegistryError(f"{doing} {reference} failed: the registry {registry} is rate-limiting this client; "
                             "wait, or log in (docker login) for a higher limit")
    return RegistryError(f"{doing} {reference} failed: the registry {registry} answered: {text}")


_PROGRESS = frozenset({"Pushing", "Downloading", "Extracting", "Waiting", "Preparing", "Verifying Checksum"})


def _follow(stream: Iterable[Any], doing: str, reference: str, registry: str, listener: Listener) -> list[dict]:
    """Read a push or pull progress stream; raise its first error as one line; return its ``aux`` objects.
    Each layer's final states become log events (the byte counts of the transfer in between do not)."""
    aux: list[dict] = []
    for chunk in stream:
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error") or chunk.get("errorDetail"):
            detail = chunk.get("errorDetail")
            message = detail.get("message") if isinstance(detail, dict) else None
            raise explain_registry(str(message or chunk.get("error")), doing, reference, registry)
        if isinstance(chunk.get("aux"), dict):
            aux.append(chunk["aux"])
        status, layer = chunk.get("status"), chunk.get("id")
        if isinstance(status, str) and status not in _PROGRESS:
            line = f"{layer}: {status}" if isinstance(layer, str) else status
            listener(Event("log", re.sub(r"[\x00-\x1f\x7f-\x9f]+", " ", line)[:200]))
    return aux


def _engine_call(call, doing: str, reference: str, registry: str):
    """An engine call that talks to a registry: its API errors are the registry's answers, the rest the engine's."""
    try:
        return call()
    except docker.errors.APIError as err:
        if err.is_server_error() or err.status_code in (401, 403, 404):
            raise explain_registry(str(err.explanation or err), doing, reference, registry) from None
        raise explain(err, f"{doing} {reference}") from None
    except STREAM_ERRORS as err:
        raise explain(err, f"{doing} {reference}") from None


# ------------------------------------------------------------------------------------------------------ push


def push(store: Store, name: str, reference: str, listener: Listener = ignore) -> Pushed:
    """Push snapshot ``name``'s verified image, with its manifest inside (module docstring), as ``reference``.

    The image is tagged ``reference`` locally (as ``docker push`` needs); a push that fails puts that tag back
    where it was. The pushed reference and the registry's digest are recorded in the snapshot's
    ``registry.json``. ``NoVerifiedImage`` when the snapshot is not built; ``RegistryError`` lines for the
    registry's refusals (a login is needed, the registry cannot be reached...).
    """
    started = time.perf_counter()
    repository, tag, _ = parse_reference(reference, digest_ok=False)
    target = f"{repository}:{tag}"
    registry = registry_of(repository)
    manifest = store.load(name)
    client = connect(timeout=ENGINE_TIMEOUT_S)
    try:
        image = images.require_verified(client, manifest)
        listener(Event("phase", f"adding the manifest of {manifest['name']!r} to {image_tag(manifest)} "
                                f"({MANIFEST_PATH})"))
        layer = _manifest_layer(client, image.id, manifest, listener)
        had = images.retag(client, layer, repository, tag)
        try:
            listener(Event("phase", f"pushing {target}"))
            stream = _engine_call(lambda: client.api.push(repository, tag=tag, stream=True, decode=True),
                                  "pushing", target, registry)
            aux = _engine_call(lambda: _follow(stream, "pushing", target, registry, listener), "pushing", target,
                               registry)
            digest = next((a["Digest"] for a in aux if isinstance(a.get("Digest"), str)
                           and re.fullmatch(r"sha256:[0-9a-f]{64}", a["Digest"])), None)
            if digest is None:
                raise RegistryError(f"pushing {target} ended without the registry's digest; the push may be "
                                    "incomplete: try again")
        except BaseException:
            images.put_tag_back(client, repository, tag, had, layer)
            raise
        records.append(store, manifest["name"], "push", target, digest, layer, manifest["digest"])
    finally:
        client.close()
    listener(Event("phase", f"pushed {target} ({digest})"))
    return Pushed(manifest["name"], repository, tag, digest, layer, time.perf_counter() - started)


def _manifest_layer(client: Any, image_id: str, manifest: dict, listener: Listener) -> str:
    """The verified image plus ``MANIFEST_PATH`` in one layer (no network; Docker's cache makes it the same
    image for the same snapshot). A verified image that came from a pull has that layer already: it is pushed
    as it is (its manifest file was checked against this digest when it was pulled)."""
    found = adopt.get_labels(client, image_id, "reading the verified image")
    if found.get(MANIFEST_LABEL) == MANIFEST_PATH and found.get(labels.DIGEST) == manifest["digest"]:
        return image_id
    layer_labels = {labels.SNAPSHOT: manifest["name"], labels.DIGEST: manifest["digest"],
                    MANIFEST_LABEL: MANIFEST_PATH}
    with tempfile.TemporaryDirectory(prefix="yolosnap-push-") as tmp:
        context = Path(tmp)
        (context / "snapshot.json").write_text(manifest_io.dumps(manifest), encoding="utf-8")
        (context / "snapshot.json").chmod(0o644)
        (context / "Dockerfile").write_text(f"FROM {image_id}\nCOPY snapshot.json {MANIFEST_PATH}\n"
                                            f"{label_line(layer_labels)}\n")
        return build_image(client, str(context), network_mode="none", listener=listener)


# ------------------------------------------------------------------------------------------------------ pull


def pull(store: Store, reference: str, replace: bool = False, listener: Listener = ignore, *,
         verify: bool = True) -> Pulled:
    """Pull ``reference`` and register the snapshot inside it in ``store``'s project (module docstring).

    ``replace`` lets it replace a snapshot of the same name that holds another environment (kept in history);
    without it that is a ``SnapshotExists``. ``verify=False`` skips the capture inside the image. A refused image
    is removed again when this pull brought it (a tag it set is taken off); nothing is registered.
    """
    started = time.perf_counter()
    repository, tag, by_digest = parse_reference(reference, digest_ok=True)
    target = f"{repository}@{tag}" if by_digest else f"{repository}:{tag}"
    registry = registry_of(repository)
    client = connect(timeout=ENGINE_TIMEOUT_S)
    image = None
    try:
        before = adopt.image_ids(client)
        had = images.get_image(client, target, f"looking for the image {target}")
        listener(Event("phase", f"pulling {target}"))
        stream = _engine_call(lambda: client.api.pull(repository, tag=tag, stream=True, decode=True),
                              "pulling", target, registry)
        _engine_call(lambda: _follow(stream, "pulling", target, registry, listener), "pulling", target, registry)
        image = images.get_image(client, target, f"looking for the image {target}")
        if image is None:
            raise RegistryError(f"pulling {target} ended without the image on the engine; try again")
        try:
            result = _adopt(client, store, image, target, replace, verify, listener)
        except BaseException:
            _undo_pull(client, image, target, repository, tag, by_digest, had, before)
            raise
        registry_digest = _registry_digest(image, repository, tag if by_digest else None)
        records.append(store, result[0]["name"], "pull", target, registry_digest, image.id, result[0]["digest"])
    finally:
        client.close()
    manifest, registered = result
    return Pulled(manifest["name"], manifest["digest"], target, registry_digest, registered.tag, image.id,
                  registered.path, registered.previous, time.perf_counter() - started, verify)


def _adopt(client: Any, store: Store, image: Any, target: str, replace: bool, verify: bool,
           listener: Listener) -> tuple[dict, adopt.Registered]:
    found = images.image_labels(image)
    if not isinstance(found.get(labels.DIGEST), str) or not isinstance(found.get(labels.SNAPSHOT), str):
        raise RegistryError(f"{target} holds no jupyter_yolosnap snapshot (no manifest inside, no snapshot labels); "
                            "pull it with docker pull, or push a snapshot with: yolosnap push NAME REFERENCE")
    where = f"the manifest inside {target}"
    text = _read_manifest(client, image.id, target)
    manifest = adopt.load_untrusted(text, where, RegistryError)
    adopt.require_labels(found, manifest, target, RegistryError)
    adopt.refuse_conflict(store, manifest, replace)
    if verify:
        adopt.verify(client, image.id, manifest, found, listener)
    adopt.refuse_conflict(store, manifest, replace)  # again: the check took a while
    return manifest, adopt.register(client, store, image.id, manifest, listener)


def _read_manifest(client: Any, image_id: str, target: str) -> str:
    """``MANIFEST_PATH`` out of the image, by a container that is created and never started."""
    container = None
    try:
        container = client.api.create_container(image_id, command=["/yolosnap-never-started"], entrypoint=[],
                                                network_disabled=True, labels={labels.ROLE: "share"})["Id"]
        with _closing_archive_responses(client.api):  # an unread copy would keep the container busy
            try:
                stream, stat = client.api.get_archive(container, MANIFEST_PATH)
            except docker.errors.NotFound:
                raise RegistryError(f"{target} holds no snapshot manifest ({MANIFEST_PATH} is missing): it was not "
                                    "pushed by yolosnap push; refused") from None
            mode = int(stat.get("mode") or 0) if isinstance(stat, dict) else -1
            size = int(stat.get("size") or 0) if isinstance(stat, dict) else -1
            if mode < 0 or mode & 0xFFF00000 or stat.get("linkTarget"):  # Go's FileMode type bits: not a file
                raise RegistryError(f"{target}: {MANIFEST_PATH} is not a plain file; refused")
            if size > grammar.MAX_BYTES:
                raise RegistryError(f"{target}: {MANIFEST_PATH} is {size // 1048576} MiB, more than a manifest can "
                                    "be; refused")
            data = _bounded(stream, grammar.MAX_BYTES + _TAR_SLACK, target)
    except STREAM_ERRORS as err:
        raise explain(err, f"reading the manifest out of {target}") from None
    finally:
        if container is not None:
            with contextlib.suppress(*ENGINE_ERRORS):
                client.api.remove_container(container, force=True, v=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = tar.getmembers()
            if len(members) != 1 or not members[0].isreg() or members[0].name != "snapshot.json":
                raise RegistryError(f"{target}: {MANIFEST_PATH} did not come back as one file; refused")
            handle = tar.extractfile(members[0])
            body = handle.read(grammar.MAX_BYTES + 1) if handle is not None else b""
    except (tarfile.TarError, OSError):
        raise RegistryError(f"{target}: {MANIFEST_PATH} could not be read back; refused") from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise RegistryError(f"{target}: {MANIFEST_PATH} is not UTF-8 text; refused") from None


@contextlib.contextmanager
def _closing_archive_responses(api: Any) -> Iterator[None]:
    """Close the HTTP response of the ``get_archive`` calls made in the block, read to its end or not.

    docker-py returns only a generator over it; a copy left unread keeps the engine's copy running, and the
    container cannot be removed until it ends (the engine waits for us to read, we wait for the removal)."""
    caught: list = []

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:
        request = getattr(response, "request", None)
        if request is not None and request.method == "GET" and request.path_url.split("?")[0].endswith("/archive"):
            caught.append(response)

    api.hooks.setdefault("response", []).append(hook)
    try:
        yield
    finally:
        api.hooks["response"].remove(hook)
        for response in caught:
            with contextlib.suppress(*STREAM_ERRORS):
                response.close()


def _bounded(stream: Iterable[bytes], limit: int, target: str) -> bytes:
    parts, size = [], 0
    for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise RegistryError(f"{target}: {MANIFEST_PATH} is larger than a manifest can be; refused")
        parts.append(chunk)
    return b"".join(parts)


def _registry_digest(image: Any, repository: str, digest: str | None) -> str | None:
    """The registry's manifest digest of the pulled image (from its ``RepoDigests``)."""
    if digest:
        return digest
    for entry in (image.attrs.get("RepoDigests") or []):
        repo, _, found = str(entry).rpartition("@")
        if repo == repository and re.fullmatch(r"sha256:[0-9a-f]{64}", found):
            return found
    return None


def _undo_pull(client: Any, image: Any, target: str, repository: str, tag: str, by_digest: bool, had: Any,
               before: set[str]) -> None:
    """A refused pull leaves what was there: an image it brought is removed (if nothing else uses it), a tag
    it set is taken off or put back on the image it named before."""
    with contextlib.suppress(*ENGINE_ERRORS):
        if image.id not in before:
            client.api.remove_image(target, force=False, noprune=False)
            adopt.remove_new_image(client, image.id, before)
        elif had is None and len(image.tags) > 1 and not by_digest:
            client.api.remove_image(target, force=False, noprune=True)
        if had is not None and had.id != image.id and not by_digest:
            client.api.tag(had.id, repository, tag, force=True)
