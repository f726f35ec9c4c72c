"""The notebook's rendering of the event stream: a progress bar over Dockerfile steps and a collapsible log."""
from __future__ import annotations

import sys
from typing import Any

from ..events import Event

LOG_LINES = 400


class NotebookProgress:
    """An ipywidgets view: ``IntProgress`` for steps, a label for the phase, an ``Accordion`` holding the log."""

    def __init__(self, title: str = "yolosnap", display_now: bool = True):
        import ipywidgets as widgets

        self.bar = widgets.IntProgress(value=0, min=0, max=1, description="", bar_style="info")
        self.label = widgets.HTML(value=f"<b>{title}</b>")
        self.log = widgets.Textarea(value="", disabled=True, layout=widgets.Layout(width="100%", height="16em"))
        self.accordion = widgets.Accordion(children=[self.log], selected_index=None)
        self.accordion.set_title(0, "build log")
        self.box = widgets.VBox([self.label, self.bar, self.accordion])
        self._lines: list[str] = []
        if display_now:
            from IPython.display import display

            display(self.box)

    def __call__(self, event: Event) -> None:
        if event.kind == "step":
            self.bar.max = max(event.total, 1)
            self.bar.value = event.step
            self.label.value = f"step {event.step}/{event.total}: <code>{_escape(event.message[:120])}</code>"
            self._append(f"[{event.step}/{event.total}] {event.message}")
        elif event.kind == "phase":
            self.label.value = f"<b>{_escape(event.message)}</b>"
            self._append(f"==> {event.message}")
            if event.message.startswith("verified"):
                self.bar.value, self.bar.bar_style = self.bar.max, "success"
        else:
            self._append(event.message)

    def fail(self) -> None:
        """Show a failed operation: red bar, log opened."""
        self.bar.bar_style = "danger"
        self.accordion.selected_index = 0

    def _append(self, line: str) -> None:
        self._lines.append(line)
        del self._lines[:-LOG_LINES]
        self.log.value = "\n".join(self._lines)


class LazyProgress:
    """Shows progress only once an event comes (a kernel image is built once per snapshot; a cached one is
    silent): a ``NotebookProgress`` in a notebook, phase lines on stderr elsewhere."""

    def __init__(self, title: str):
        self.title = title
        self.view: Any = None

    def __call__(self, event: Event) -> None:
        if self.view is None:
            self.view = self._make()
        self.view(event)

    def _make(self) -> Any:
        try:
            from ipykernel.zmqshell import ZMQInteractiveShell
            from IPython import get_ipython

            if isinstance(get_ipython(), ZMQInteractiveShell):
                return NotebookProgress(self.title)
        except ImportError:
            pass
        return lambda e: print(f"yolosnap: {e.message}", file=sys.stderr) if e.kind == "phase" else None

    def fail(self) -> None:
        """Mark the failure on the bar, if one was shown."""
        if self.view is not None and hasattr(self.view, "fail"):
            self.view.fail()


def _escape(text: str) -> str:
    import html

    return html.escape(text)
