"""Errors of the runtime room; all are ``YolosnapError`` so every front door shows them as one line."""
from __future__ import annotations

from ..exceptions import EngineError, YolosnapError


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
