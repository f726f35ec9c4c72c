"""A snapshot as a plain Jupyter kernel: ``yolosnap-<name>`` in the kernel picker runs in the snapshot's container.

``install``/``remove`` write the user's kernelspec; ``python -m jupyter_yolosnap.kernelspec`` is the process the
kernelspec starts (see :mod:`.launcher`).
"""
from __future__ import annotations

from .install import display_name, install, installed, kernel_name, remove

__all__ = ["display_name", "install", "installed", "kernel_name", "remove"]
