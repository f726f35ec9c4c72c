"""Run code inside a snapshot's verified image: a warm kernel per snapshot bridged into the notebook
(``%%in_env``), and one-off scripts with live logs (``%snapshot run``)."""
from __future__ import annotations

from ..exceptions import KernelDied, RemoteError, RuntimeFailure, VariableError
from .registry import format_ps, get, ps, running, stop, sweep
from .script import ScriptRun, run_script

__all__ = ["KernelDied", "RemoteError", "RuntimeFailure", "VariableError", "ScriptRun", "format_ps", "get", "ps",
           "run_script", "running", "stop", "sweep"]
