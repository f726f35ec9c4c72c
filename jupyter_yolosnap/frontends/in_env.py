"""The body of ``%%in_env``: move the named variables, run the cell in the snapshot's warm kernel, bring
variables back. Parsing is :func:`.commands.in_env_parser`'s; the kernel comes from :func:`service.kernel`."""
from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from .. import service
from ..exceptions import VariableError
from ..runtime.remote_kernel import PartialPull, check_identifier
from .progress import LazyProgress


def names(text: str | None, verb: str) -> list[str]:
    """``a, b`` -> ``["a", "b"]``, each a plain Python identifier."""
    found = [n.strip() for n in (text or "").split(",") if n.strip()]
    for name in found:
        check_identifier(name, verb)
    return found


def run_cell(shell: Any, args: argparse.Namespace, cell: str) -> None:
    """Run ``cell`` in snapshot ``args.name``'s kernel with the notebook's ``shell`` as the variables' home."""
    progress = LazyProgress(f"Preparing a kernel for snapshot {args.name!r}")
    push_names, pull_names = names(args.push, "push"), names(args.pull, "pull")
    values = {}
    for name in push_names:
        if name not in shell.user_ns:
            raise VariableError(f"cannot push {name!r}: there is no variable {name!r} in this notebook")
        values[name] = shell.user_ns[name]
    options = service.RunOptions(args.gpus, tuple(args.env), tuple(args.volume))
    try:
        kernel = service.kernel(args.name, args.project, options, listener=progress)
    except BaseException:
        progress.fail()
        raise
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
    sampler = service.gpu_sampler(kernel.container, Path(os.getcwd(), ".yolosnap-runs",
                                                         f"{args.name}-cell-{stamp}.gpu.csv"))
    try:
        with sampler if sampler is not None else contextlib.nullcontext():
            pulled = kernel.run_cell(cell, push=values, pull=pull_names, trusted=args.pull_trusted)
    except PartialPull as partial:
        shell.user_ns.update(partial.values)
        raise
    finally:
        if sampler is not None and sampler.summary():
            print(f"GPU: {sampler.summary()}" + (f" ({sampler.path})" if sampler.path.exists() else ""))
    shell.user_ns.update(pulled)
