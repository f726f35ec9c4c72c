"""jupyter_yolosnap: snapshot a live kernel's GPU training environment, diff it, and reproduce it.

Load in a notebook with ``%load_ext jupyter_yolosnap``; the same functions serve the ``yolosnap`` CLI.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_ipython_extension"]


def load_ipython_extension(ipython) -> None:  # noqa: ANN001 - IPython's own type
    """Register ``%snapshot`` (imported here so the CLI never pays for IPython)."""
    from .magics import SnapshotMagics

    ipython.register_magics(SnapshotMagics)
