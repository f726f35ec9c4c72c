"""Every error a user can see, in one place.

Each message is one line that says what is wrong and what to do. Front doors turn these into their own
form: the CLI prints ``yolosnap: <message>`` and exits 2, the magics raise IPython's ``UsageError`` so the
notebook shows the line without a traceback. IPython is not imported here, so the CLI starts fast.
"""
from __future__ import annotations


class YolosnapError(Exception):
    """Base of every error this package raises on purpose; ``str(err)`` is the user-facing line."""


class InvalidName(YolosnapError):
    """A snapshot name that cannot be a folder name on every platform."""


class SnapshotNotFound(YolosnapError):
    """The named snapshot (or revision of it) is not in the project's store."""


class ManifestError(YolosnapError):
    """A manifest that cannot be read: not JSON, wrong shape, or written by a newer version."""


class StoreError(YolosnapError):
    """The store cannot be written (read-only project, full disk) or is locked."""


class CaptureError(YolosnapError):
    """The interpreter to capture cannot be run or did not answer like a Python."""


class EngineError(YolosnapError):
    """The Docker engine is missing, unreachable, or refused an operation."""


class UsageFailure(YolosnapError):
    """Bad magic arguments (argparse's complaint, raised instead of exiting the kernel)."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


class BuildFailed(EngineError):
    """A build step failed; carries the step and the last log lines, like docker-py's ``BuildError``."""

    def __init__(self, message: str, step: str | None = None, log: list[str] | None = None):
        super().__init__(message)
        self.step = step
        self.log = log or []


class DriftFound(YolosnapError):
    """An image does not hold the environment its snapshot promises (``check`` failed)."""


class RecipeError(YolosnapError):
    """The manifest cannot be turned into a build: a pin no base can satisfy, an unknown CUDA or torch build."""

class RuntimeFailure(YolosnapError):
    """Running code in a snapshot's container failed for a reason the user can act on (bad option, no image)."""


class KernelDied(EngineError):
    """The kernel's container stopped (crash, OOM kill, ``docker kill``); the next cell starts a fresh one."""


class VariableError(YolosnapError):
    """A ``--push``/``--pull`` variable is missing or cannot be pickled; the kernel is untouched and usable."""


class RemoteError(YolosnapError):
    """The cell raised inside the snapshot's kernel.

    ``str()`` is one line; IPython shows the remote traceback instead of a local one through
    ``_render_traceback_`` (ipyparallel's ``RemoteError`` does the same), so the cell looks like a local failure.
    """

    def __init__(self, ename: str, evalue: str, traceback: list[str], snapshot: str = ""):
        where = f" (in snapshot {snapshot!r})" if snapshot else ""
        super().__init__(f"{ename}: {evalue}{where}")
        self.ename = ename
        self.evalue = evalue
        self.traceback = list(traceback)
        self.snapshot = snapshot

    def _render_traceback_(self) -> list[str]:
        return self.traceback or [str(self)]


class BuildRunning(YolosnapError):
    """A build of this snapshot is already running (the server answers 409)."""


class UnsafeValue(ManifestError):
    """A manifest value that breaks the field grammar where it is about to be used (Dockerfile, shell, pip, path)."""


class BuildCancelled(YolosnapError):
    """A build stopped on request (the panel's cancel, a job timeout, Ctrl-C): the engine stopped it, nothing is left."""


class RunTerminated(SystemExit):
    """``run`` was stopped by SIGTERM or SIGHUP; its container (and TensorBoard) are removed before this rises.

    A ``SystemExit`` on purpose, not a ``YolosnapError``: the process was asked to end, so the CLI exits with the
    shell's code for that signal (128 + signum: 143 for SIGTERM, 129 for SIGHUP), and ``except Exception``
    blocks on the way let it through. ``str()`` is the one line that says what happened.
    """

    def __init__(self, signum: int, snapshot: str = ""):
        super().__init__(128 + signum)
        self.signum = signum
        self.snapshot = snapshot

    def __str__(self) -> str:
        import signal

        where = f" in snapshot {self.snapshot!r}" if self.snapshot else ""
        return (f"the run{where} was stopped by {signal.Signals(self.signum).name}; its container was removed "
                f"(exit code {self.code})")


class KubernetesError(YolosnapError):
    """A Kubernetes cluster could not be used: no kubeconfig, unreachable, or the API server refused (401/403/404/409).

    The line never holds a token or any other secret of the kubeconfig.
    """


class KubernetesUsageError(UsageFailure):
    """An option or argument that cannot go into a Kubernetes job (``--gpus abc``, a ``-v`` with ``..``, a tag-only
    image); nothing was rendered or sent."""


class NoVerifiedImage(RuntimeFailure):
    """Snapshot ``name``'s current manifest has no verified image on the engine (never built, or a tag whose
    digest label names another manifest). A ``RuntimeFailure``: the server answers 409, as for other runs that
    must wait for a build."""

    def __init__(self, name: str, tag: str):
        super().__init__(f"snapshot {name!r} has no image verified for its current manifest ({tag}); build it "
                         f"first: %snapshot build {name} (in a terminal: yolosnap build {name})")
        self.name = name
        self.tag = tag


class ArchiveError(YolosnapError):
    """A snapshot archive that cannot be written, or is refused on import: damaged (truncated, a wrong checksum),
    tampered with (a member replaced, links, ``..`` paths, extra members), of a newer format, or holding an image
    other than the one its manifest names. Nothing of a refused archive is registered or left on the engine."""


class RegistryError(YolosnapError):
    """A registry push or pull that failed (a login is needed, the reference is not there, the registry cannot be
    reached) or a pulled image that is refused (no snapshot manifest inside, labels that name another manifest).
    The line never holds a credential."""


class SnapshotExists(YolosnapError):
    """An import or pull would put another environment under the name of a snapshot the project already has
    (a different digest); nothing was changed. Pass ``replace`` (``--replace``) to keep the old one in history."""
