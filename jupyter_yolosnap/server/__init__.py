"""The Jupyter Server side of yolosnap: a REST API under ``<base_url>/yolosnap/`` for the JupyterLab panel.

Loaded by ``jupyter_yolosnap._load_jupyter_server_extension``; every operation is the same ``api``/``bake``
call the CLI and magics make, run off the event loop.
"""
from __future__ import annotations

from typing import Any

from .diff_cache import DiffCache
from .jobs import BuildJobs

SETTINGS_JOBS = "yolosnap_jobs"
SETTINGS_DIFFS = "yolosnap_diffs"


def load(serverapp: Any) -> None:
    """Register the handlers on ``serverapp``'s web application, with one build-job table per server."""
    from .handlers import routes

    web_app = serverapp.web_app
    web_app.settings[SETTINGS_JOBS] = BuildJobs()
    web_app.settings[SETTINGS_DIFFS] = DiffCache()
    web_app.add_handlers(".*$", routes(web_app.settings.get("base_url", "/")))
    _adopt_kernels(serverapp)
    serverapp.log.info("jupyter_yolosnap: REST API at %syolosnap/", web_app.settings.get("base_url", "/"))


def _adopt_kernels(serverapp: Any) -> None:
    """Restored kernels this server starts get records; those an earlier server left are adopted once the loop
    runs (:mod:`jupyter_yolosnap.kernelspec.adopt`)."""
    from ..kernelspec.adopt import adopt
    from ..runtime import kernel_records

    kernel_records.serve()
    serverapp.io_loop.add_callback(adopt, serverapp.kernel_manager, serverapp.log)
