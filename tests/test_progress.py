"""The event stream's renderings: terminal lines and the notebook's ipywidgets view."""
from __future__ import annotations

import io

from jupyter_yolosnap.events import Event, TerminalProgress
from jupyter_yolosnap.frontends.progress import NotebookProgress

EVENTS = [Event("phase", "collecting 3 wheel(s) on the host"), Event("step", "FROM python:3.11.7", 1, 4),
          Event("log", "---> Using cache"), Event("step", "RUN pip install -r heavy.txt", 4, 4),
          Event("phase", "verified: yolosnap/x:abc")]


def test_terminal_shows_phases_and_steps_and_log_only_when_verbose():
    out = io.StringIO()
    for event in EVENTS:
        TerminalProgress(out)(event)
    assert out.getvalue().splitlines() == ["==> collecting 3 wheel(s) on the host", "  [1/4] FROM python:3.11.7",
                                           "  [4/4] RUN pip install -r heavy.txt", "==> verified: yolosnap/x:abc"]
    verbose = io.StringIO()
    TerminalProgress(verbose, verbose=True)(EVENTS[2])
    assert "---> Using cache" in verbose.getvalue()


def test_notebook_widget_tracks_steps_and_keeps_the_log():
    view = NotebookProgress("Building 'x'", display_now=False)
    for event in EVENTS[:4]:
        view(event)
    assert (view.bar.value, view.bar.max) == (4, 4)
    assert "heavy.txt" in view.label.value
    assert view.log.value.splitlines()[2] == "---> Using cache"
    view(EVENTS[4])
    assert view.bar.bar_style == "success"
    view.fail()
    assert view.bar.bar_style == "danger" and view.accordion.selected_index == 0
