"""A snapshot as a plain Jupyter kernel: ``yolosnap-<name>`` in the kernel picker runs in the snapshot's container.

``install``/``remove`` write the user's kernelspec (:mod:`.install`); jupyter_client starts, polls, interrupts,
restarts and kills the kernel through the kernelspec's provisioner (:mod:`.provisioner`), with no process of ours
standing in for it. ``python -m jupyter_yolosnap.kernelspec`` is only the kernelspec's ``argv``: what a client
without provisioner support runs, and it refuses.
"""
from __future__ import annotations

from .install import PROVISIONER, display_name, install, installed, kernel_name, provisioner_config, remove

__all__ = ["PROVISIONER", "display_name", "install", "installed", "kernel_name", "provisioner_config", "remove"]
