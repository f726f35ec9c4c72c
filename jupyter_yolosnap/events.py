"""One progress stream for long operations; each front door renders it its own way.

The build yields :class:`Event` objects to a callback: the CLI prints them as terminal lines, the notebook
drives an ipywidgets progress bar and a collapsible log (:mod:`jupyter_yolosnap.frontends.progress`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Event:
    """``kind`` is ``phase`` (a stage of the operation), ``step`` (Dockerfile step ``step``/``total``) or ``log``."""

    kind: str
    message: str
    step: int = 0
    total: int = 0


Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The listener for callers that want no progress."""


class TerminalProgress:
    """Prints phases and steps as they come, and log lines only when ``verbose`` (a failing build's log is shown
    with its error anyway)."""

    def __init__(self, stream=None, verbose: bool = False):
        self.stream = stream or sys.stderr
        self.verbose = verbose

    def __call__(self, event: Event) -> None:
        if event.kind == "phase":
            print(f"==> {event.message}", file=self.stream, flush=True)
        elif event.kind == "step":
            print(f"  [{event.step}/{event.total}] {event.message[:150]}", file=self.stream, flush=True)
        elif self.verbose:
            print(f"      {event.message}", file=self.stream, flush=True)


def chain(*listeners: Optional[Listener]) -> Listener:
    active = [listener for listener in listeners if listener is not None]

    def emit(event: Event) -> None:
        for listener in active:
            listener(event)

    return emit
