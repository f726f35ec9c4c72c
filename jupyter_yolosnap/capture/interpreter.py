"""The interpreter itself: what a base image must match, to the micro version."""
from __future__ import annotations

import os
import platform
import sys
import sysconfig


def environment_kind() -> str:
    """Say whether this is a conda env, a venv or a system Python, since each is rebuilt differently."""
    if os.path.isdir(os.path.join(sys.prefix, "conda-meta")):
        return "conda"
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        return "venv"
    return "system"


def probe_interpreter() -> dict:
    """Describe the running interpreter; the wheel tag fields decide which wheels a rebuild can use."""
    impl = sys.implementation.name
    short = {"cpython": "cp", "pypy": "pp"}.get(impl, impl)
    return {
        "implementation": impl,
        "version": platform.python_version(),
        "version_info": list(sys.version_info[:3]),
        "build": sys.version.split("\n")[0],
        "abi": f"{short}{sys.version_info[0]}{sys.version_info[1]}",
        "soabi": sysconfig.get_config_var("SOABI"),
        "platform": sys.platform,
        "machine": platform.machine(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "environment": environment_kind(),
    }
