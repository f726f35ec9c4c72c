"""``%snapshot``: the notebook's front door, a thin layer over :mod:`jupyter_yolosnap.commands`.

Errors become IPython ``UsageError``s: one line in the notebook, no traceback.
"""
from __future__ import annotations

import shlex

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from .commands import build_parser, execute, parse
from ..exceptions import UsageFailure, YolosnapError

_HELP = build_parser(prog="%snapshot").format_help()


@magics_class
class SnapshotMagics(Magics):
    """Magics that snapshot this kernel's environment."""

    @line_magic
    def snapshot(self, line: str):
        """Run ``%snapshot COMMAND ...``; with no ``--python``, the environment captured is this kernel's."""
        try:
            args = parse(shlex.split(line), prog="%snapshot", raising=True)
            progress = None
            if args.command == "build":
                from .progress import NotebookProgress

                progress = args.listener = NotebookProgress(f"Building snapshot {args.name!r}")
            elif args.command == "restore":  # a bar only when the kernel image must be made
                from .progress import LazyProgress

                progress = args.listener = LazyProgress(f"Preparing the kernel image of snapshot {args.name!r}")
            try:
                outcome = execute(args)
            except BaseException:
                if progress is not None:
                    progress.fail()
                raise
        except UsageFailure as err:
            if err.status == 0:  # --help / --version: argparse printed them already
                return None
            raise UsageError(str(err)) from None
        except YolosnapError as err:
            raise UsageError(str(err)) from None
        except ValueError as err:  # shlex: unbalanced quotes
            raise UsageError(f"%snapshot: {err}") from None
        if args.command == "run" and outcome.exit_code != 0:  # the cell fails, as a failing script should
            display(outcome.shown)
            done = outcome.data
            raise UsageError(f"{' '.join(done.argv)} exited with code {done.exit_code} in snapshot {args.name!r}; "
                             f"its log: {done.log}")
        if isinstance(outcome.shown, str):  # JSON and plain text: printed, not shown as a quoted repr
            print(outcome.shown)
            return None
        return outcome.shown

    snapshot.__doc__ = f"""Snapshot this kernel's environment, list, show and diff snapshots.

Examples::

    %snapshot save yolo-v5-base
    %snapshot list
    %snapshot show yolo-v5-base
    %snapshot diff yolo-v5-base          # against this kernel, now
    %snapshot diff yolo-v5-base@1 yolo-v5-base
    %snapshot build yolo-v5-base         # bake into a Docker image, verified by a capture inside it
    %snapshot check yolo-v5-base         # re-verify the image against the manifest
    %snapshot run yolo-v5-base -- python train.py --epochs 3   # a script in a fresh container, live output
    %snapshot restore yolo-v5-base       # a kernel (yolosnap-yolo-v5-base) that runs in the image
    %snapshot ps                         # warm kernels, runs and TensorBoards of snapshots
    %snapshot stop yolo-v5-base          # end this notebook's kernel of it (--all: everyone's)

    %%in_env yolo-v5-base --gpus auto --push cfg --pull metrics   (cell magic: the cell runs in the container)

{_HELP}"""
