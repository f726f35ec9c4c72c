"""A small in-memory fake of the docker-py calls this package makes, for the engine's error paths in milliseconds.

Shapes are docker-py's own: models with ``id``/``short_id``/``labels``/``tags``/``attrs``, ``api.images()`` rows
as ``GET /images/json`` returns them, and errors made the way docker-py makes them: an ``HTTPError`` on a
``requests.Response`` turned into ``APIError``/``NotFound``/``ImageNotFound`` by
``docker.errors.create_api_error_from_http_exception``, and requests' own ``ConnectionError``/``ReadTimeout``
for an engine that is gone or silent (docker-py's unit tests fake the API the same way, below the client).

Faults are queued per call name (``"images.get"``, ``"api.images"``, ``"container.remove"``, ...): each queued
item is an exception to raise or a callable to run first (a race: another process removes an image just
before this call). ``fail(call, error, times=None)`` makes a call fail for good.
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

import docker
import requests

_ids = itertools.count(1)
_clock = itertools.count(1_700_000_000, 10)


def _new_id(seed: str) -> str:
    return "sha256:" + hashlib.sha256(f"{seed}-{next(_ids)}".encode()).hexdigest()


def api_error(status: int, explanation: str, path: str = "/v1.47/images/x/json") -> docker.errors.APIError:
    """The error docker-py raises for an HTTP ``status`` answer (404s become ``NotFound``/``ImageNotFound``)."""
    response = requests.Response()
    response.status_code = status
    response.reason = {404: "Not Found", 409: "Conflict", 500: "Internal Server Error"}.get(status, "Error")
    response.url = f"http+docker://localhost{path}"
    response._content = ('{"message": "%s"}' % explanation).encode()
    try:
        docker.errors.create_api_error_from_http_exception(requests.exceptions.HTTPError(response=response))
    except docker.errors.APIError as err:
        return err
    raise AssertionError("docker-py did not raise")  # pragma: no cover


def server_error(explanation: str = "internal error: the daemon is busy") -> docker.errors.APIError:
    return api_error(500, explanation)


def image_not_found(ref: str) -> docker.errors.ImageNotFound:
    return api_error(404, f"No such image: {ref}")  # type: ignore[return-value]


def container_not_found(ident: str) -> docker.errors.NotFound:
    return api_error(404, f"No such container: {ident}", f"/v1.47/containers/{ident}/json")  # type: ignore


def read_timeout(seconds: int = 60) -> requests.exceptions.ReadTimeout:
    """What requests raises when dockerd accepted the request but did not answer within the client's timeout."""
    return requests.exceptions.ReadTimeout(
        f"UnixHTTPConnectionPool(host='localhost', port=None): Read timed out. (read timeout={seconds})")


def unreachable() -> requests.exceptions.ConnectionError:
    """What requests raises when the socket is gone (dockerd stopped)."""
    return requests.exceptions.ConnectionError(
        ("Connection aborted.", FileNotFoundError(2, "No such file or directory")))


@dataclass
class _ImageRecord:
    id: str
    labels: dict[str, str]
    tags: list[str] = field(default_factory=list)
    created: int = field(default_factory=lambda: next(_clock))


class FakeImage:
    """docker-py's ``Image`` model over a record of the fake engine."""

    def __init__(self, engine: "FakeDocker", record: _ImageRecord):
        self._engine, self._record = engine, record
        self.id = record.id
        self.attrs = {"Id": record.id, "RepoTags": list(record.tags), "Created": record.created,
                      "Config": {"Labels": dict(record.labels) or None}}

    @property
    def short_id(self) -> str:
        return self.id[:19]  # "sha256:" + 12, as docker-py does

    @property
    def labels(self) -> dict:
        return self.attrs["Config"].get("Labels") or {}

    @property
    def tags(self) -> list[str]:
        return [t for t in self.attrs["RepoTags"] if t != "<none>:<none>"]

    def tag(self, repository: str, tag: str | None = None, **kwargs: Any) -> bool:
        self._engine._call("image.tag")
        self._engine.tag(self.id, f"{repository}:{tag or 'latest'}")
        return True


class FakeImages:
    def __init__(self, engine: "FakeDocker"):
        self._engine = engine

    def get(self, name: str) -> FakeImage:
        self._engine._call("images.get")
        return FakeImage(self._engine, self._engine._find_image(name))

    def list(self, name: str | None = None, all: bool = False, filters: dict | None = None) -> list[FakeImage]:
        rows = self._engine.api.images(name=name, all=all, filters=filters)
        return [self.get(row["Id"]) for row in rows]  # docker-py inspects each: a removed one is a NotFound

    def pull(self, repository: str, tag: str | None = None, **kwargs: Any) -> FakeImage:
        self._engine._call("images.pull")
        ref = f"{repository}:{tag}" if tag else repository
        if ref not in self._engine.pullable:
            raise api_error(404, f"pull access denied for {repository}, repository does not exist",
                            "/v1.47/images/create")
        return FakeImage(self._engine, self._engine.add_image(self._engine.pullable[ref], ref))

    def remove(self, image: str, force: bool = False, noprune: bool = False) -> None:
        self._engine._call("images.remove")
        record = self._engine._find_image(image)
        del self._engine.image_records[record.id]


class FakeAPI:
    """The low-level ``APIClient`` calls the package makes."""

    def __init__(self, engine: "FakeDocker"):
        self._engine = engine

    def images(self, name: str | None = None, quiet: bool = False, all: bool = False,
               filters: dict | None = None) -> list[dict]:
        self._engine._call("api.images")
        wanted = (filters or {}).get("label")
        wanted = [wanted] if isinstance(wanted, str) else list(wanted or [])
        rows = []
        for record in self._engine.image_records.values():
            if all_labels(record.labels, wanted):
                rows.append({"Id": record.id, "RepoTags": list(record.tags) or None, "Created": record.created,
                             "Labels": dict(record.labels) or None})
        return rows

    def close(self) -> None:
        pass


def _has_label(labels: dict[str, str], item: str) -> bool:
    key, sep, value = item.partition("=")
    return key in labels and (not sep or labels[key] == value)


class FakeContainer:
    """docker-py's ``Container`` model: the calls the package makes, each able to fail."""

    def __init__(self, engine: "FakeDocker", image: str, command: Any, labels: dict[str, str] | None,
                 exit_code: int = 0, stdout: bytes = b"", stderr: bytes = b""):
        self._engine = engine
        self.id = _new_id("container")[7:]
        self.image, self.command = image, command
        self.labels = dict(labels or {})
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr
        self.status = "created"
        self.attrs = {"Id": self.id, "Config": {"Image": image, "Labels": self.labels}, "State": {}}
        self.killed: list[str] = []

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def _gone_check(self, call: str) -> None:
        self._engine._call(call)
        if self.id not in self._engine.container_records:
            raise container_not_found(self.id)

    def start(self) -> None:
        self._gone_check("container.start")
        self.status = "running"

    def wait(self, timeout: float | None = None, **kwargs: Any) -> dict:
        self._gone_check("container.wait")
        self.status = "exited"
        return {"StatusCode": self.exit_code, "Error": None}

    def logs(self, stdout: bool = True, stderr: bool = True, stream: bool = False, tail: Any = "all",
             **kwargs: Any) -> Any:
        self._gone_check("container.logs")
        data = (self.stdout if stdout else b"") + (self.stderr if stderr else b"")
        return iter([data]) if stream else data

    def kill(self, signal: str | int | None = None) -> None:
        self._gone_check("container.kill")
        self.killed.append(str(signal))

    def reload(self) -> None:
        self._gone_check("container.reload")

    def remove(self, force: bool = False, v: bool = False, **kwargs: Any) -> None:
        self._gone_check("container.remove")
        del self._engine.container_records[self.id]


class FakeContainers:
    def __init__(self, engine: "FakeDocker"):
        self._engine = engine
        #: what the next created container prints and exits with
        self.next_run: dict[str, Any] = {}

    def create(self, image: str, command: Any = None, labels: dict[str, str] | None = None,
               **kwargs: Any) -> FakeContainer:
        self._engine._call("containers.create")
        self._engine._find_image(image)
        container = FakeContainer(self._engine, image, command, labels, **self.next_run)
        self._engine.container_records[container.id] = container
        return container

    def get(self, container_id: str) -> FakeContainer:
        self._engine._call("containers.get")
        found = self._engine.container_records.get(container_id)
        if found is None:
            raise container_not_found(container_id)
        return found

    def list(self, all: bool = False, filters: dict | None = None, ignore_removed: bool = False,
             **kwargs: Any) -> list[FakeContainer]:
        self._engine._call("containers.list")
        wanted = (filters or {}).get("label")
        wanted = [wanted] if isinstance(wanted, str) else list(wanted or [])
        ids = [c.id for c in self._engine.container_records.values()
               if all_labels(c.labels, wanted) and (all or c.status == "running")]
        found = []
        for ident in ids:  # docker-py lists, then inspects each one
            try:
                found.append(self.get(ident))
            except docker.errors.NotFound:
                if not ignore_removed:
                    raise
        return found


def all_labels(labels: dict[str, str], wanted: list[str]) -> bool:
    return all(_has_label(labels, item) for item in wanted)


class FakeDocker:
    """A ``docker.DockerClient`` stand-in: ``images``, ``containers``, ``api``, ``info``, ``ping``, ``close``."""

    def __init__(self, runtimes: tuple[str, ...] = ("runc",)):
        self.image_records: dict[str, _ImageRecord] = {}
        self.container_records: dict[str, FakeContainer] = {}
        self.pullable: dict[str, dict[str, str]] = {}  # ref -> labels of an image a pull would bring
        self.runtimes = runtimes
        self.faults: dict[str, list[BaseException | Callable[[], None] | None]] = {}
        self.always: dict[str, BaseException] = {}
        self.calls: list[str] = []
        self.images = FakeImages(self)
        self.containers = FakeContainers(self)
        self.api = FakeAPI(self)

    # --- set-up -------------------------------------------------------------------------------------------
    def add_image(self, labels: dict[str, str] | None = None, *tags: str, created: int | None = None) -> _ImageRecord:
        record = _ImageRecord(_new_id("image"), dict(labels or {}))
        if created is not None:
            record.created = created
        self.image_records[record.id] = record
        for tag in tags:
            self.tag(record.id, tag)
        return record

    def tag(self, image_id: str, ref: str) -> None:
        for record in self.image_records.values():  # a tag names one image: it moves
            if ref in record.tags:
                record.tags.remove(ref)
        self.image_records[image_id].tags.append(ref)

    def then(self, call: str, *items: BaseException | Callable[[], None] | None) -> "FakeDocker":
        """Queue what the next calls of ``call`` do first: raise an error, run a callable, or (None) nothing."""
        self.faults.setdefault(call, []).extend(items)
        return self

    def fail(self, call: str, error: BaseException) -> "FakeDocker":
        """Every call of ``call`` raises ``error`` from now on (an engine that stays gone)."""
        self.always[call] = error
        return self

    def _call(self, call: str) -> None:
        self.calls.append(call)
        if call in self.always:
            raise self.always[call]
        queued = self.faults.get(call)
        if queued:
            item = queued.pop(0)
            if isinstance(item, BaseException):
                raise item
            if callable(item):
                item()

    def _find_image(self, ref: str) -> _ImageRecord:
        if ref in self.image_records:
            return self.image_records[ref]
        short = ref[len("sha256:"):] if ref.startswith("sha256:") else ref
        is_id = len(short) >= 12 and all(c in "0123456789abcdef" for c in short)
        for record in self.image_records.values():
            if ref in record.tags or (is_id and record.id[len("sha256:"):].startswith(short)):
                return record
        raise image_not_found(ref)

    # --- DockerClient ------------------------------------------------------------------------------------
    def info(self) -> dict:
        self._call("info")
        return {"Runtimes": {name: {"path": name} for name in self.runtimes}}

    def ping(self) -> bool:
        self._call("ping")
        return True

    def close(self) -> None:
        pass
