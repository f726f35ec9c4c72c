"""jupyter_yolosnap: snapshot a live kernel's GPU training environment, diff it, and reproduce it.

Load in a notebook with ``%load_ext jupyter_yolosnap``; the same functions serve the ``yolosnap`` CLI.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_ipython_extension"]


def load_ipython_extension(ipython) -> None:  # noqa: ANN001 - IPython's own type
    """Register ``%snapshot`` and ``%%in_env`` (imported here so the CLI never pays for IPython)."""
    from .frontends.magics import SnapshotMagics

    ipython.register_magics(SnapshotMagics)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab sidebar (built from ``labextension/``; ``pip install`` ships it as shared-data)."""
    return [{"src": "labextension", "dest": "jupyter-yolosnap"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Jupyter Server finds the REST API here (``pip install`` enables it through jupyter-config)."""
    return [{"module": "jupyter_yolosnap"}]


def _load_jupyter_server_extension(serverapp) -> None:  # noqa: ANN001 - jupyter_server's ServerApp
    """Add the ``/yolosnap/`` handlers; imported here so notebooks and the CLI never load tornado handlers."""
    from .server import load

    load(serverapp)
