"""The REST API the JupyterLab panel calls, under ``<base_url>/yolosnap/``.

Every request may carry ``?path=<notebook folder relative to the server root>``; the project is found from
there (:mod:`.project`). Blocking work (captures, engine calls, image builds) runs in executor threads or build
jobs, never on the event loop. Every error is ``{"message": "<one line saying what to do>"}``; the status of
each error class is chosen in one table, ``STATUS``.
"""
from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, Callable

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from .. import service
from ..frontends import render
from ..exceptions import (ArchiveError, BuildRunning, CaptureError, EngineError, InvalidName, KubernetesError,
                          ManifestError, RegistryError, RuntimeFailure, SnapshotExists, SnapshotNotFound, StoreError,
                          UnsafeValue, UsageFailure, YolosnapError)
from ..recipe.dockerfile import image_reference
from ..recipe.plan import STRATEGIES
from ..snapshot.names import kernel_name, validate_name
from ..snapshot.store import Store
from . import SETTINGS_DIFFS, SETTINGS_JOBS, project
from .diff_cache import DiffCache
from .images import ImageIndex, ImageState
from .jobs import BUILDING, BuildJobs
from .kernels import kernel_environment, kernel_python

#: HTTP status of each error class; the first match in order wins, YolosnapError last.
STATUS: tuple[tuple[type[YolosnapError], int], ...] = (
    (InvalidName, 400), (UsageFailure, 400),
    (SnapshotNotFound, 404),
    (BuildRunning, 409), (RuntimeFailure, 409), (SnapshotExists, 409),
    (EngineError, 503),
    (RegistryError, 502), (KubernetesError, 502),  # a registry or cluster behind this server refused or is gone
    (ArchiveError, 500),  # the archive could not be written into the notebook's folder (permissions, full disk)
    (ManifestError, 422),  # a hand-edited or hostile manifest: the request was fine, the file is refused
    (CaptureError, 500), (StoreError, 500),
    (YolosnapError, 500),
)


def status_of(err: BaseException) -> int:
    for cls, status in STATUS:
        if isinstance(err, cls):
            return status
    return 500


class YolosnapHandler(APIHandler):
    """Shared plumbing: the project of the request, executor calls, JSON bodies and errors."""

    @property
    def jobs(self) -> BuildJobs:
        return self.settings[SETTINGS_JOBS]

    @property
    def diffs(self) -> DiffCache:
        return self.settings[SETTINGS_DIFFS]

    def store(self) -> Store:
        return project.store_for(self.settings["server_root_dir"], self.get_query_argument("path", ""))

    async def blocking(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in the loop's executor: the server keeps answering while it works."""
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))

    def reply(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """``{"message": ...}`` and the status of ``STATUS`` for our errors; no tracebacks in replies."""
        err = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(err, YolosnapError):
            status_code = status_of(err)
            message = str(err)
        elif isinstance(err, web.HTTPError) and status_code == 403 and not err.log_message:
            message = ("forbidden: this request is not logged in to the Jupyter server; reload the page (or send "
                       "the server's token: Authorization: token ...)")
        elif isinstance(err, web.HTTPError):
            message = err.log_message or err.reason or self._reason
        elif err is not None:
            message = (f"unexpected error in jupyter_yolosnap ({type(err).__name__}: {err}); see the Jupyter "
                       "server log")
        else:
            message = self._reason
        self.set_status(status_code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Our errors are answers, not crashes: one warning line, no traceback."""
        if isinstance(value, YolosnapError):
            self.log.warning("yolosnap: %s %s -> %s: %s", self.request.method, self.request.path, status_of(value),
                             value)
            return
        super().log_exception(typ, value, tb)

    def idle_store(self, name: str, doing: str) -> Store:
        """The request's store, once ``name`` is valid and not being built (409: ``doing`` must wait)."""
        store = self.store()
        validate_name(name)
        if self.jobs.building(name, store.project):
            raise BuildRunning(f"snapshot {name!r} is being built; {doing} when the build is done")
        return store

    def json_body(self) -> dict:
        body = self.get_json_body()
        if not isinstance(body, dict):
            raise web.HTTPError(400, "send a JSON object body, e.g. {\"name\": \"base\", \"kernel_id\": \"...\"}")
        return body

    def since(self) -> int:
        """``?since=N``: how many of the build's events the caller has seen."""
        since = self.get_query_argument("since", "0")
        count = _count(since)
        if count is None:
            raise web.HTTPError(400, f"since={since[:20]!r} must be a count of events already seen (0 or more)")
        return count


def _count(text: str) -> int | None:
    """A count of events sent by a client (``since``, ``Last-Event-ID``): ASCII digits, at most nine; else None."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def summary(manifest: dict, image: ImageState, last_build: dict | None = None) -> dict:
    """One snapshot as the panel lists it; ``last_build``: its last build's failure, when that is what it was."""
    facts = service.summarize(manifest)
    torch = ((manifest.get("cuda") or {}).get("torch") or {})
    gpus = (manifest.get("gpu") or {}).get("gpus") or []
    return {"name": facts.name, "saved": facts.created, "python": facts.python, "torch": facts.torch,
            "cuda": torch.get("cuda") or None, "gpu": gpus[0].get("name") if gpus else None, "digest": facts.digest,
            "image": image.to_dict(), "kernel_name": kernel_name(facts.name),
            "last_build": None if image.state == "verified" else last_build}


def _row(store: Store, jobs: BuildJobs, images: ImageIndex, manifest: dict) -> dict:
    name = manifest["name"]
    return summary(manifest, images.state(manifest, jobs.building(name, store.project)),
                   jobs.last_failure(name, store.project, manifest["digest"]))


def _list(store: Store, jobs: BuildJobs, log: Any) -> dict:
    images = ImageIndex.read()
    rows, broken = [], []
    for name in store.names():
        try:
            manifest = store.load(name)
        except YolosnapError as err:  # one unreadable manifest must not hide the others
            log.warning("yolosnap: skipping snapshot %s: %s", name, err)
            broken.append({"name": name, "message": str(err)})
            continue
        rows.append(_row(store, jobs, images, manifest))
    body: dict = {"project": str(store.project), "snapshots": rows, "unreadable": broken}
    if images.error:
        body["engine_error"] = images.error
    return body


def _one(store: Store, jobs: BuildJobs, name: str) -> dict:
    manifest = store.load(validate_name(name))
    images = ImageIndex.read()
    body = _row(store, jobs, images, manifest)
    body["manifest"] = manifest
    if images.error:
        body["engine_error"] = images.error
    return body


class SnapshotsHandler(YolosnapHandler):
    """``GET /yolosnap/snapshots``: the list; ``POST``: save a running kernel's environment."""

    @web.authenticated
    async def get(self) -> None:
        store = self.store()
        self.reply(await self.blocking(_list, store, self.jobs, self.log))

    @web.authenticated
    async def post(self) -> None:
        store = self.store()
        body = self.json_body()
        name = validate_name(body.get("name"))
        python = await kernel_python(self.kernel_manager, body.get("kernel_id"))
        await self.blocking(service.save, name, python, store.project)
        body = await self.blocking(_one, store, self.jobs, name)
        body.pop("manifest", None)
        self.reply(body, 201)


class SnapshotHandler(YolosnapHandler):
    """``GET /yolosnap/snapshots/NAME``: summary plus manifest; ``DELETE``: remove it and its kernelspec."""

    @web.authenticated
    async def get(self, name: str) -> None:
        store = self.store()
        self.reply(await self.blocking(_one, store, self.jobs, name))

    @web.authenticated
    async def delete(self, name: str) -> None:
        """Images built from the snapshot are left on the engine (``docker image rm`` removes them)."""
        store = self.idle_store(name, "delete it")
        await self.blocking(service.delete, name, store.project)
        self.jobs.forget(name, store.project)
        self.set_status(204)
        self.finish()


def _diff_reply(result: Any) -> dict:
    return {"identical": result.identical, "diff": result.to_dict(), "text": str(render.render_diff(result))}


class DiffHandler(YolosnapHandler):
    """``GET /yolosnap/snapshots/NAME/diff?kernel_id=ID``: the snapshot against that kernel's environment now
    (kept in :mod:`.diff_cache` until the kernel's packages change; ``cached`` says so); ``?against=REF``: against
    another snapshot or revision (``OTHER``, ``NAME@N``)."""

    @web.authenticated
    async def get(self, name: str) -> None:
        store = self.store()
        store.path_of(validate_name(name))  # 404 before bothering the kernel
        against = self.get_query_argument("against", None)
        kernel_id = self.get_query_argument("kernel_id", None)
        if against is not None:
            if kernel_id is not None:
                raise web.HTTPError(400, "give either kernel_id (the notebook kernel) or against (a snapshot), "
                                         "not both")
            result = await self.blocking(service.diff, name, against, None, store.project)
            self.reply(_diff_reply(result))
            return
        env = await kernel_environment(self.kernel_manager, kernel_id)
        manifest = await self.blocking(store.load, name)
        key = (str(store.project), name, manifest["digest"], env.python, env.stamp)
        body = self.diffs.get(key) if env.stamp else None
        cached = body is not None
        if not cached:
            body = _diff_reply(await self.blocking(service.diff, name, None, env.python, store.project))
            if env.stamp:
                self.diffs.put(key, body)
        self.reply({**body, "cached": cached})


def _history(store: Store, name: str) -> dict:
    rows = service.history(name, store.project)
    return {"revisions": [{"number": r.revisions, "reference": f"{name}@{r.revisions}", "saved": r.created,
                           "digest": r.digest, "python": r.python, "torch": r.torch, "packages": r.packages,
                           "current": i == len(rows) - 1} for i, r in enumerate(rows)]}


class HistoryHandler(YolosnapHandler):
    """``GET /yolosnap/snapshots/NAME/history``: every revision, oldest first (``NAME@N`` for ``diff?against=``)."""

    @web.authenticated
    async def get(self, name: str) -> None:
        store = self.store()
        self.reply(await self.blocking(_history, store, validate_name(name)))


#: How long ``DELETE .../build`` waits for the cancelled build to have stopped and cleaned up before answering.
CANCEL_WAIT_S = 30


def build_options(body: Any) -> dict[str, str]:
    """The panel's build options (``{"strategy": ..., "base": ...}``, both optional), checked before any use."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise web.HTTPError(400, 'send the build options as a JSON object, e.g. {"strategy": "pinned"}, or none')
    unknown = sorted(set(body) - {"strategy", "base"})
    if unknown:
        raise web.HTTPError(400, f"unknown build option {unknown[0][:40]!r}; the options are strategy and base")
    options: dict[str, str] = {}
    strategy = body.get("strategy")
    if strategy is not None:
        if strategy not in STRATEGIES:
            raise web.HTTPError(400, f"strategy {str(strategy)[:40]!r} is not one of {', '.join(STRATEGIES)}; "
                                     "pick one of those")
        options["strategy"] = strategy
    base = body.get("base")
    if base not in (None, ""):
        try:
            options["base"] = image_reference(base)
        except UnsafeValue as err:
            raise web.HTTPError(400, str(err).replace("pass another --base", "give another base image")) from None
    return options


def _digest(store: Store, name: str) -> str | None:
    """The manifest's digest, to tell a recorded failure of this manifest from one of an earlier; None when the
    manifest is unreadable (its failure is then shown anyway)."""
    try:
        return store.load(name)["digest"]
    except YolosnapError:
        return None


class BuildHandler(YolosnapHandler):
    """``POST /yolosnap/snapshots/NAME/build`` (body: optional ``{"strategy", "base"}``): start a build job;
    ``GET ?since=N``: its state and new events (or the last failure recorded); ``DELETE``: cancel it."""

    @web.authenticated
    async def post(self, name: str) -> None:
        store = self.store()
        options = build_options(self.get_json_body())
        manifest = store.load(validate_name(name))  # a refused manifest answers 422 now, not as a failed job later
        self.jobs.start(name, store.project, options, manifest["digest"])
        self.reply({"state": "building"}, 202)

    @web.authenticated
    async def get(self, name: str) -> None:
        store = self.store()
        validate_name(name)
        since = self.since()
        self.reply(self.jobs.view(name, store.project, await self.blocking(_digest, store, name), since))

    @web.authenticated
    async def delete(self, name: str) -> None:
        """Answers once the build stopped (state ``failed``, error ``cancelled``) and its leftovers are gone, or
        after ``CANCEL_WAIT_S`` with state ``building`` (poll GET). Cancelling a finished build changes nothing."""
        store = self.store()
        validate_name(name)
        job = self.jobs.cancel(name, store.project)
        if job is None:
            self.reply(self.jobs.view(name, store.project, await self.blocking(_digest, store, name)))
            return
        await self.blocking(job.wait, CANCEL_WAIT_S)
        self.reply(job.view())


#: A stream with nothing new sends its state (the elapsed time moves) this often, so proxies keep it open and
#: a gone client is noticed.
KEEPALIVE_S = 15.0
#: Events that arrive within this long of each other go out in one message (a pip log is many lines a second).
BATCH_S = 0.1


class BuildEventsHandler(YolosnapHandler):
    """``GET /yolosnap/snapshots/NAME/build/events?since=N``: the build as server-sent events. Each message's
    data is what ``GET .../build`` answers, with the events since the previous message; the stream ends after the
    first message whose state is not ``building``. ``Last-Event-ID`` (an EventSource reconnecting) wins over
    ``since``."""

    @web.authenticated
    async def get(self, name: str) -> None:
        store = self.store()
        validate_name(name)
        since = self.since()
        resumed = _count(self.request.headers.get("Last-Event-ID", ""))
        since = since if resumed is None else resumed
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # a reverse proxy must not hold the stream back
        job = self.jobs.get(name, store.project)
        try:
            if job is None:  # no build of this server's: what GET .../build answers, as the one message
                await self._send(self.jobs.view(name, store.project, await self.blocking(_digest, store, name),
                                                since))
            else:
                while True:
                    view = job.view(since)
                    since = view["next"]
                    await self._send(view)
                    if view["state"] != BUILDING:
                        break
                    await job.changed(since, KEEPALIVE_S)
                    await asyncio.sleep(BATCH_S)
        except StreamClosedError:  # the page went away: nothing to clean up, the build goes on
            return
        self.finish(set_content_type="text/event-stream")

    async def _send(self, view: dict) -> None:
        self.write(f"id: {view['next']}\ndata: {json.dumps(view)}\n\n")
        await self.flush()


def _restore(store: Store, name: str) -> dict:
    """Kernel image first (tens of seconds the first time), then the kernelspec that starts it."""
    restored = service.restore(name, store.project)  # no verified image: RuntimeFailure (409) before any work
    return {"kernel_name": restored.kernel_name, "display_name": restored.display_name, "image": restored.image}


class RestoreHandler(YolosnapHandler):
    """``POST /yolosnap/snapshots/NAME/restore``: a kernelspec that runs the snapshot's image."""

    @web.authenticated
    async def post(self, name: str) -> None:
        store = self.idle_store(name, "restore it")
        self.reply(await self.blocking(_restore, store, name))


def routes(base_url: str) -> list[tuple[str, type[YolosnapHandler]]]:
    from .metrics import MetricsHandler  # Prometheus text: server/metrics.py
    from .share import ROUTES as SHARE  # export, push, k8s (server/share.py builds on YolosnapHandler)

    one = r"/snapshots/(?P<name>[^/]+)"
    table = [(r"/snapshots/?", SnapshotsHandler), (one + "/?", SnapshotHandler), (one + "/diff/?", DiffHandler),
             (one + "/history/?", HistoryHandler), (one + "/build/?", BuildHandler),
             (one + "/build/events/?", BuildEventsHandler), (one + "/restore/?", RestoreHandler),
             *((one + pattern, handler) for pattern, handler in SHARE), (r"/metrics/?", MetricsHandler)]
    return [(url_path_join(base_url, "yolosnap") + pattern, handler) for pattern, handler in table]
