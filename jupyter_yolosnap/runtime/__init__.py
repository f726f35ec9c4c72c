"""Run code inside a snapshot's verified image: a warm kernel per snapshot bridged into the notebook
(``%%in_env``), and one-off scripts with live logs (``%snapshot run``)."""
from __future__ import annotations

from ..exceptions import KernelDied, RemoteError, RuntimeFailure, VariableError
from .registry import end, get, ps, running, stop, sweep
from .script import ScriptRun, run_script

__all__ = ["KernelDied", "RemoteError", "RuntimeFailure", "VariableError", "ScriptRun", "end", "get", "ps",
           "run_script", "running", "stop", "sweep"]
