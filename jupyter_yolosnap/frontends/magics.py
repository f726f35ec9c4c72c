"""``%snapshot`` and ``%%in_env``: the notebook's front door, thin layers over :mod:`.commands`.

Options a user wants to set once are traitlets, settable with ``%config`` (as jupysql's ``%config SqlMagic``)::

    %config SnapshotMagics.gpus = "none"          # every run and %%in_env kernel without GPUs
    %config SnapshotMagics.network = "host"       # runs may download
    %config SnapshotMagics.strategy = "pinned"    # builds install from the indexes
    %config SnapshotMagics.project = "/work/repo" # the project folder, wherever the notebook is

An option on the line wins over the setting. Errors become IPython ``UsageError``s: one line in the notebook,
no traceback (a cell's own exception inside ``%%in_env`` shows the remote traceback, as a local cell's would).
"""
from __future__ import annotations

import shlex

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Unicode

from .. import service
from ..exceptions import RemoteError, UsageFailure, YolosnapError
from .commands import build_parser, execute, fill_defaults, in_env_parser, parse

_HELP = build_parser(prog="%snapshot").format_help()


SHARING = {"export": "Exporting snapshot {!r}", "import": "Importing {}", "push": "Pushing snapshot {!r}",
           "pull": "Pulling {}"}  # the verbs that move images show a bar


@magics_class
class SnapshotMagics(Magics):
    """Snapshot this kernel's environment, build and check it, run code in its container."""

    gpus = Unicode(service.DEFAULT_GPUS, help="--gpus of runs and %%in_env kernels when the line gives none: all, "
                   "a count, device=0,1, none or auto").tag(config=True)
    network = Unicode(service.DEFAULT_NETWORK, help="--network of runs: none or host").tag(config=True)
    strategy = Unicode(service.DEFAULT_STRATEGY, help="--strategy of builds: wheelhouse or pinned").tag(config=True)
    project = Unicode("", help="the project folder holding .yolosnap/ (default: found from the current folder)"
                      ).tag(config=True)

    def _settings(self) -> dict:
        return {"gpus": self.gpus, "network": self.network, "strategy": self.strategy, "project": self.project}

    @line_magic
    def snapshot(self, line: str):
        """Run ``%snapshot COMMAND ...``; with no ``--python``, the environment captured is this kernel's."""
        try:
            args = fill_defaults(parse(shlex.split(line), prog="%snapshot", raising=True), **self._settings())
            progress = None
            if args.command == "build":
                from .progress import NotebookProgress

                progress = args.listener = NotebookProgress(f"Building snapshot {args.name!r}")
            elif args.command in SHARING:
                from .progress import NotebookProgress

                progress = args.listener = NotebookProgress(SHARING[args.command].format(
                    getattr(args, "name", None) or getattr(args, "file", None) or getattr(args, "reference", "")))
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
            raise UsageError(f"{shlex.join(done.argv)} exited with code {done.exit_code} in snapshot "
                             f"{args.name!r}; its log: {done.log}")
        if isinstance(outcome.shown, str):  # JSON and plain text: printed, not shown as a quoted repr
            print(outcome.shown)
            return None
        return outcome.shown

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
        from .in_env import run_cell

        try:
            args = in_env_parser().parse_args(shlex.split(line))
            if args.gpus is None and self.gpus != service.DEFAULT_GPUS:
                args.gpus = self.gpus  # a %config setting counts as given; unset, the running kernel's stays
            args.project = args.project or self.project or None
            run_cell(self.shell, args, cell)
        except UsageFailure as err:
            if err.status == 0:
                return None
            raise UsageError(str(err)) from None
        except RemoteError:
            raise  # shown with the remote traceback (RemoteError._render_traceback_)
        except YolosnapError as err:
            raise UsageError(str(err)) from None
        except ValueError as err:  # shlex: unbalanced quotes
            raise UsageError(f"%%in_env: {err}") from None
        return None

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
    %snapshot delete yolo-v5-base        # remove the snapshot and its kernel (images stay)
    %snapshot export yolo-v5-base yolo-v5-base.tar.gz   # image, manifest, Dockerfile, checksums in one file
    %snapshot import yolo-v5-base.tar.gz # checked end to end before anything is registered (--replace)
    %snapshot push yolo-v5-base registry.internal.ai/yolo-train:2025-q2   # logins: docker login
    %snapshot pull registry.internal.ai/yolo-train:2025-q2               # the image and its snapshot
    %snapshot k8s yolo-v5-base --gpus 2 -- python train.py   # the Kubernetes Job (--apply submits it)

    %%in_env yolo-v5-base --gpus auto --push cfg --pull metrics   (cell magic: the cell runs in the container)

Settings: %config SnapshotMagics.gpus / .network / .strategy / .project

{_HELP}"""
    in_env.__doc__ = (in_env.__doc__ or "") + "\n" + in_env_parser().format_help()
