"""Build jobs: ``bake.build`` in a background thread per snapshot, its events kept for the panel to poll.

One job per snapshot (project + name) at a time. The threads are daemons so a server shutting down never waits
for a build; the engine finishes or drops it on its own, and a half-made image is never tagged.

A job can be cancelled (``DELETE .../build``) and has a timeout. Both set the job's stop event: its listener
raises ``BuildCancelled`` at the next event, and the engine build and host pip runs see the event even while a
step prints nothing (``engine.build.stop_on``), so the build stops within a second or two and leaves nothing.

The panel follows a job through a server-sent-events stream: ``Job.changed`` lets a coroutine on the server's
loop wait for the next event without polling (the build thread wakes it with ``call_soon_threadsafe``). A
failure that was not a cancel is recorded (:mod:`.build_records`) so it outlives the page and the server.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import bake
from ..engine.build import stop_on
from ..events import Event
from ..exceptions import BuildCancelled, BuildRunning, YolosnapError
from . import build_records

BUILDING, DONE, FAILED, IDLE = "building", "done", "failed", "idle"
CANCELLED = "cancelled"
#: A build job's default time limit (seconds): a torch image takes minutes, a hung one should not run for days.
JOB_TIMEOUT_S = 2 * 3600
log = logging.getLogger(__name__)


@dataclass
class Job:
    """One build: its state, every event so far, and its outcome."""

    name: str
    project: Path
    state: str = BUILDING
    events: list[dict] = field(default_factory=list)
    error: str | None = None
    image: str | None = None
    stop: threading.Event = field(default_factory=threading.Event, repr=False)
    ended: threading.Event = field(default_factory=threading.Event, repr=False)
    reason: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    digest: str | None = None
    started: float = field(default_factory=time.time)
    ended_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _waiters: list[tuple[Any, Any]] = field(default_factory=list, repr=False)

    def listen(self, event: Event) -> None:
        """The build's listener: called from the build thread; stops the build once the job is cancelled."""
        if self.stop.is_set():
            raise BuildCancelled(self.reason or CANCELLED)
        row = {"kind": event.kind, "message": event.message}
        if event.total:
            row.update(step=event.step, total=event.total)
        with self._lock:
            self.events.append(row)
        self._wake()

    async def changed(self, since: int, timeout: float) -> None:
        """Return once there are events past ``since`` or the job ended, or after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if len(self.events) > since or self.state != BUILDING:
                return
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove((loop, future))

    def _wake(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits any more
                loop.call_soon_threadsafe(_resolve, future)

    def cancel(self, reason: str = CANCELLED) -> bool:
        """Ask the build to stop (from any thread); False when it has ended already."""
        with self._lock:
            if self.state != BUILDING:
                return False
            if not self.stop.is_set():
                self.reason = reason
                self.stop.set()
            return True

    def finish(self, image: str | None = None, error: str | None = None) -> None:
        with self._lock:
            self.state, self.image, self.error = (FAILED if error else DONE), image, error
            self.ended_at = time.time()
        self.ended.set()
        self._wake()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the build thread is done (a cancelled build has then removed what it made)."""
        return self.ended.wait(timeout)

    def view(self, since: int = 0) -> dict:
        """What a poll returns: the events from index ``since`` and where the next poll starts."""
        with self._lock:
            events = self.events[since:]
            elapsed = (self.ended_at or time.time()) - self.started
            return {"state": self.state, "events": events, "next": since + len(events), "error": self.error,
                    "image": self.image, "started": round(self.started, 3), "elapsed": round(elapsed, 1),
                    "options": dict(self.options)}


def _resolve(future: Any) -> None:
    if not future.done():
        future.set_result(None)


def idle_view() -> dict:
    return {"state": IDLE, "events": [], "next": 0, "error": None, "image": None}


class BuildJobs:
    """The jobs of one server; ``build`` is swappable for tests of the bookkeeping alone."""

    def __init__(self, build: Callable[..., object] = bake.build, timeout: float = JOB_TIMEOUT_S):
        self._build = build
        self.timeout = timeout
        self._jobs: dict[tuple[str, str], Job] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(name: str, project: Path) -> tuple[str, str]:
        return (str(project), name)

    def get(self, name: str, project: Path) -> Job | None:
        with self._lock:
            return self._jobs.get(self._key(name, project))

    def building(self, name: str, project: Path) -> bool:
        job = self.get(name, project)
        return job is not None and job.state == BUILDING

    def start(self, name: str, project: Path, options: dict[str, str] | None = None,
              digest: str | None = None) -> Job:
        """Start building ``name`` (``options``: ``bake.build``'s strategy and base, already checked);
        ``BuildRunning`` when a build of it runs already. ``digest``: the manifest's, for the failure record."""
        with self._lock:
            current = self._jobs.get(self._key(name, project))
            if current is not None and current.state == BUILDING:
                raise BuildRunning(f"snapshot {name!r} is already being built; wait for that build to finish "
                                   "(its progress is in the yolosnap panel)")
            job = Job(name, project, options=dict(options or {}), digest=digest)
            self._jobs[self._key(name, project)] = job
        threading.Thread(target=self._run, args=(job,), name=f"yolosnap-build-{name}", daemon=True).start()
        return job

    def cancel(self, name: str, project: Path) -> Job | None:
        """Cancel the running build of ``name``; the job (running or not), or None when there never was one."""
        job = self.get(name, project)
        if job is not None:
            job.cancel()
        return job

    def forget(self, name: str, project: Path) -> None:
        """Drop a finished job and its failure record (the snapshot was deleted)."""
        with self._lock:
            job = self._jobs.get(self._key(name, project))
            if job is not None and job.state != BUILDING:
                del self._jobs[self._key(name, project)]
        build_records.remove(name, project)

    def view(self, name: str, project: Path, digest: str | None, since: int = 0) -> dict:
        """What the build endpoint answers: this server's job, else a recorded failure, else idle."""
        job = self.get(name, project)
        if job is not None:
            return job.view(since)
        record = build_records.read(name, project, digest)
        return build_records.view(record, since) if record is not None else idle_view()

    def last_failure(self, name: str, project: Path, digest: str | None) -> dict | None:
        """The list's ``last_build``: the failure of this server's last job, or a recorded one; None otherwise."""
        job = self.get(name, project)
        if job is not None:
            if job.state != FAILED or job.reason == CANCELLED:
                return None
            return {"state": FAILED, "error": job.error or "", "finished": build_records.utc_iso(job.ended_at)}
        return build_records.summary(build_records.read(name, project, digest))

    def _run(self, job: Job) -> None:
        timer = threading.Timer(self.timeout, job.cancel, args=(self._timed_out(job),))
        timer.daemon = True
        timer.start()
        try:
            with stop_on(job.stop):
                result = self._build(job.name, job.project, listener=job.listen, **job.options)
        except YolosnapError as err:
            self._failed(job, job.reason if job.stop.is_set() and job.reason else str(err))
        except Exception as err:  # broad on purpose: a bug, and this thread has no caller to raise to, so the
            # job must still end (the panel stops polling) and the traceback goes to the server log
            log.exception("yolosnap: building %s failed", job.name)
            self._failed(job, f"the build of {job.name!r} failed unexpectedly ({type(err).__name__}: {err}); "
                              "see the Jupyter server log")
        else:
            with contextlib.suppress(OSError):
                build_records.remove(job.name, job.project)
            job.finish(image=getattr(result, "image", None))
        finally:
            timer.cancel()

    @staticmethod
    def _failed(job: Job, error: str) -> None:
        """End ``job`` as failed; a failure the user did not ask for (not a cancel) is recorded first."""
        if job.reason != CANCELLED:
            try:
                build_records.write(job.name, job.project, job.digest, error, job.events)
            except OSError as err:  # a full or read-only runtime dir: the failure still shows until a reload
                log.warning("yolosnap: cannot record the failed build of %s: %s", job.name, err)
        job.finish(error=error)

    def _timed_out(self, job: Job) -> str:
        return (f"the build of {job.name!r} took longer than the server's limit ({self.timeout:g} s) and was "
                f"stopped; build it in a terminal to see where it hangs (yolosnap build {job.name})")
