"""Run the capture probe in an interpreter: this one in-process, any other as a subprocess.

The probe package (:mod:`jupyter_yolosnap.capture`) is put on the other interpreter's ``sys.path`` as a
top-level package, so that interpreter needs nothing installed, not even jupyter_yolosnap.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from ..exceptions import CaptureError

PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)  # holds capture/, the package put on sys.path
_BOOT = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
         "from capture.__main__ import main; sys.exit(main(sys.argv[1:]))")
MIN_PYTHON = (3, 9)


def resolve_python(python: str) -> str:
    """An executable path for ``python`` (a path or a name on PATH), or a clear error."""
    found = shutil.which(python) if os.sep not in python else (python if os.path.exists(python) else None)
    if found is None:
        raise CaptureError(f"--python {python!r} was not found; pass the path of a python executable "
                           "(e.g. .venv/bin/python)")
    if os.path.isdir(found) or not os.access(found, os.X_OK):
        raise CaptureError(f"--python {python!r} is not an executable file; pass the path of a python executable")
    return found


def run_probe(python: str | None = None, project_dir: str | None = None, cache_file: str | None = None,
              timeout: float = 300) -> dict:
    """The capture of ``python`` as a dict; None means this interpreter, read in-process (no start-up cost).

    A given path always runs as a subprocess, even when it resolves to this interpreter's binary: a venv's
    ``bin/python`` is a symlink to its base, yet sees other packages.
    """
    if python is None:
        from . import capture_environment

        return capture_environment(project_dir, cache_file)
    exe = resolve_python(python)
    argv = [exe, "-c", _BOOT, PACKAGE_DIR]
    if project_dir:
        argv += ["--project", project_dir]
    if cache_file:
        argv += ["--cache", cache_file]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except OSError as err:
        raise CaptureError(f"--python {python!r} could not be started ({err.strerror}); "
                           "pass the path of a python executable") from None
    except subprocess.TimeoutExpired:
        raise CaptureError(f"--python {python!r} did not finish the capture in {timeout:.0f} s; "
                           "check that it is a working Python") from None
    try:
        result = json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        result = None
    if not isinstance(result, dict) or "python" not in result:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise CaptureError(f"--python {python!r} is not a Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+ interpreter "
                           f"that can run the capture ({last}); pass the path of a python executable")
    return result
