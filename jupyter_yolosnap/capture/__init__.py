"""Probes that read the environment of the interpreter they run in.

Standard library only, Python >= 3.9, and nothing here imports the rest of jupyter_yolosnap: the same
package runs in a user's kernel, in any ``--python`` given on the command line (put on ``sys.path`` and run as
``python -m capture``), and inside a built image to verify it. Host facts (GPUs, driver) are not read here:
inside a container they would describe the wrong machine; :mod:`jupyter_yolosnap.gpu` reads them.
"""
from __future__ import annotations

import os

from .cuda import probe_cuda
from .environment import probe_environment
from .git import probe_git
from .interpreter import probe_interpreter
from .native_libs import scan_native_libraries
from .packages import probe_packages
from .system import probe_system

PROBE_VERSION = 1


def default_cache_file() -> str:
    """Where the native-library scan keeps what it has read (per user, survives across captures)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "jupyter_yolosnap", "native-libs.json")


def capture_environment(project_dir: str | None = None, cache_file: str | None = None) -> dict:
    """Everything this interpreter can say about its environment, as manifest sections."""
    packages, shared_objects = probe_packages()
    system = probe_system()
    return {
        "probe_version": PROBE_VERSION,
        "python": probe_interpreter(),
        "packages": packages,
        "cuda": probe_cuda(packages),
        "os": system,
        "native_libs": scan_native_libraries(shared_objects, cache_file or default_cache_file()),
        "env": probe_environment(),
        "git": probe_git(project_dir) if project_dir else None,
    }
