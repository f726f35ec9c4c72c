"""``%%in_env``: run a cell inside a snapshot's container, with output, plots and errors shown here.

A thin front door over :mod:`jupyter_yolosnap.runtime` (``%snapshot run/ps/stop`` go through ``commands``).
Errors are one-line ``UsageError``s, except an exception raised by the cell itself: that shows the remote
traceback, like a local cell's failure.
"""
from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..exceptions import RemoteError, VariableError, YolosnapError
from .progress import LazyProgress
from ..runtime import registry
from ..runtime.remote_kernel import PartialPull, check_identifier

__all__ = ["RuntimeMagics"]


def _names(text: str | None, verb: str) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    for name in names:
        check_identifier(name, verb)
    return names


@magics_class
class RuntimeMagics(Magics):
    """Cells that run inside a snapshot's verified image, in a warm kernel kept per snapshot."""

    @magic_arguments()
    @argument("name", help="the snapshot to run in (built with %%snapshot build NAME)")
    @argument("--gpus", default=None, help="all, a count, device=0,1, none or auto (the default: GPUs where this "
                                           "host and engine can give them); "
                                           "applies when the kernel starts")
    @argument("--push", default="", help="comma-separated notebook variables to send in before the cell")
    @argument("--pull", default="", help="comma-separated variables to bring back after the cell (plain data "
                                         "only: containers, scalars, numpy arrays)")
    @argument("--pull-trusted", action="store_true", help="unpickle pulled variables of any class: only for a "
                                                          "snapshot you trust, its pickles can run code here")
    @argument("--project", default=None, help="the project folder holding .yolosnap/ (default: found from cwd)")
    @argument("-e", "--env", action="append", default=[], metavar="KEY=VAL",
              help="an environment variable for the kernel (repeatable)")
    @argument("-v", "--volume", action="append", default=[], metavar="HOST:CONTAINER[:ro]",
              help="an extra folder to mount (repeatable); the working directory is always mounted")
    @cell_magic
    def in_env(self, line: str, cell: str) -> None:
        """Run this cell inside snapshot NAME's image; its stdout, displays and errors appear here.

        The kernel stays warm: variables persist from cell to cell until ``%snapshot stop NAME`` (or until the
        snapshot is rebuilt: then a fresh kernel starts in the new image). Ctrl-C interrupts the remote cell and
        keeps the kernel. ``--pull`` brings back plain data only; ``--pull-trusted`` any object.

        Example::

            %%in_env yolo-v5-base --gpus auto --push config --pull metrics
            metrics = train(config)
        """
        args = parse_argstring(self.in_env, line)
        progress = LazyProgress(f"Preparing a kernel for snapshot {args.name!r}")
        try:
            push_names = _names(args.push, "push")
            pull_names = _names(args.pull, "pull")
            values = {}
            for name in push_names:
                if name not in self.shell.user_ns:
                    raise VariableError(f"cannot push {name!r}: there is no variable {name!r} in this notebook")
                values[name] = self.shell.user_ns[name]
            try:
                kernel = registry.get(args.name, args.project, gpus=args.gpus, env=args.env or None,
                                      volumes=args.volume or None, listener=progress)
            except BaseException:
                progress.fail()
                raise
            try:
                pulled = kernel.run_cell(cell, push=values, pull=pull_names, trusted=args.pull_trusted)
            except PartialPull as partial:
                self.shell.user_ns.update(partial.values)
                raise
            self.shell.user_ns.update(pulled)
        except RemoteError:
            raise  # shown with the remote traceback (RemoteError._render_traceback_)
        except YolosnapError as err:
            raise UsageError(str(err)) from None

