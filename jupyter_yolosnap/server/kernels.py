"""Which Python a running notebook kernel uses, asked of the kernel itself.

The kernel reports ``sys.executable`` through a silent ``user_expressions`` request: the path a venv's kernel
runs as (resolving ``/proc/PID/exe`` would give the base interpreter and lose the venv). Nothing shows in the
notebook and the kernel's history is untouched. The same request returns the modification times of the
kernel's package folders (its ``sys.path`` entries named ``site-packages`` or ``dist-packages``): installing,
upgrading or removing a distribution changes them, so a diff against the kernel can be kept until they move.
"""
from __future__ import annotations

import ast
import os
from typing import Any, NamedTuple

from tornado.web import HTTPError

from ..snapshot.names import KERNEL_PREFIX

ASK_TIMEOUT_S = 10.0
EXPRESSION = "__import__('sys').executable"
#: ``[[folder, st_mtime_ns], ...]`` of the kernel's package folders (one expression: no names left behind).
STAMP_EXPRESSION = ("[[p, __import__('os').stat(p).st_mtime_ns] for p in __import__('sys').path "
                    "if p.rstrip('/').endswith(('site-packages', 'dist-packages')) and __import__('os').path.isdir(p)]")

CONTAINER_KERNEL_PREFIX = KERNEL_PREFIX


class KernelEnvironment(NamedTuple):
    python: str
    #: The package folders' modification times; empty when the kernel did not tell them.
    stamp: tuple[tuple[str, int], ...]


async def kernel_python(kernel_manager: Any, kernel_id: str | None, timeout: float = ASK_TIMEOUT_S) -> str:
    """The interpreter of kernel ``kernel_id`` on this machine; HTTP errors that say what to do otherwise."""
    return (await kernel_environment(kernel_manager, kernel_id, timeout)).python


async def kernel_environment(kernel_manager: Any, kernel_id: str | None,
                             timeout: float = ASK_TIMEOUT_S) -> KernelEnvironment:
    """Kernel ``kernel_id``'s interpreter and package-folder stamp (see the module docstring)."""
    if not kernel_id:
        raise HTTPError(400, "give kernel_id: the id of the notebook's running kernel")
    try:
        km = kernel_manager.get_kernel(kernel_id)
    except (KeyError, HTTPError):  # jupyter_server's manager raises a bare 404 HTTPError
        raise HTTPError(404, f"no running kernel {kernel_id!r}; start the notebook's kernel and try again") from None
    if str(getattr(km, "kernel_name", "")).startswith(CONTAINER_KERNEL_PREFIX):
        raise HTTPError(409, f"kernel {kernel_id!r} runs inside a snapshot's container; switch the notebook to a "
                             "kernel on this machine to save or diff its environment")
    client = km.client()
    client.start_channels()
    try:
        reply = await client.execute("", silent=True, store_history=False, allow_stdin=False, reply=True,
                                     user_expressions={"python": EXPRESSION, "stamp": STAMP_EXPRESSION},
                                     timeout=timeout)
    except TimeoutError:
        raise HTTPError(409, f"kernel {kernel_id!r} did not answer within {timeout:.0f} s (busy with a running "
                             "cell?); wait for the cell to finish and try again") from None
    finally:
        client.stop_channels()
    answers = reply.get("content", {}).get("user_expressions") or {}
    result = answers.get("python") or {}
    try:
        python = ast.literal_eval(result["data"]["text/plain"])
    except (KeyError, TypeError, ValueError, SyntaxError):
        raise HTTPError(409, f"kernel {kernel_id!r} did not tell its Python interpreter; is it a Python kernel "
                             "(ipykernel)?") from None
    if not isinstance(python, str) or not os.path.isfile(python):
        raise HTTPError(409, f"kernel {kernel_id!r} runs {python!r}, which is not on this machine (a remote "
                             "kernel?); use a kernel that runs here")
    return KernelEnvironment(python, _stamp(answers.get("stamp")))


def _stamp(answer: Any) -> tuple[tuple[str, int], ...]:
    """The stamp expression's value; empty when it failed or is not ``[[str, int], ...]`` (then nothing is kept)."""
    try:
        value = ast.literal_eval(answer["data"]["text/plain"])
        return tuple((str(folder), int(mtime)) for folder, mtime in value)
    except (KeyError, TypeError, ValueError, SyntaxError, MemoryError, RecursionError):
        return ()
