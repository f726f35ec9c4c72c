"""One parser and one dispatcher for ``yolosnap`` and ``%snapshot``, so the two never disagree.

``execute`` returns what to show and the exit code; the CLI prints it, the magic displays it.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any, NoReturn, Sequence

from .. import __version__
from ..exceptions import UsageFailure, YolosnapError


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, for use inside a kernel."""

    def error(self, message: str) -> NoReturn:
        raise UsageFailure(f"{self.prog}: {message} (see {self.prog.split()[0]} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageFailure((message or "").strip(), status=status)


def build_parser(prog: str = "yolosnap", raising: bool = False) -> argparse.ArgumentParser:
    """The subcommands; ``raising=True`` makes argparse raise ``UsageFailure`` instead of exiting."""
    cls = _Parser if raising else argparse.ArgumentParser
    parser = cls(prog=prog, description="Snapshot, diff and reproduce Python/GPU environments. Snapshots live "
                 "in <project>/.yolosnap/<name>/snapshot.json, to be committed with the code.")
    parser.add_argument("--version", action="version", version=f"jupyter_yolosnap {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=cls)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--project", metavar="DIR", help="project folder (default: nearest ancestor with "
                         ".yolosnap/, else the current folder)")
        return sub

    save = command("save", "capture an interpreter's environment as snapshot NAME")
    save.add_argument("name")
    save.add_argument("--python", metavar="EXE", help="interpreter to capture (default: this one)")
    command("list", "list the project's snapshots")
    show = command("show", "show a snapshot (NAME or NAME@N)")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print the manifest itself")
    hist = command("history", "list the stored revisions of a snapshot (NAME@N refers to revision N)")
    hist.add_argument("name")
    diff = command("diff", "diff snapshot A against snapshot B, or against a live interpreter; "
                           "exit 0 if identical, 1 if they differ")
    diff.add_argument("a")
    diff.add_argument("b", nargs="?")
    diff.add_argument("--python", metavar="EXE", help="interpreter to compare with when B is not given "
                      "(default: this one)")
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    build = command("build", "build snapshot NAME into a Docker image and verify it (check runs at the end)")
    build.add_argument("name")
    build.add_argument("--strategy", choices=("wheelhouse", "pinned"), default="wheelhouse",
                       help="wheelhouse: wheels collected on this host with its pip settings, no index access "
                            "inside the build (air-gapped sites); pinned: exact pins installed from the indexes "
                            "inside the build")
    build.add_argument("--base", metavar="IMAGE", help="base image (default: python:<snapshot's X.Y.Z>-slim-<debian>)")
    build.add_argument("--registry-mirror", metavar="PREFIX", help="pull the default base through this registry")
    build.add_argument("--ca-bundle", metavar="FILE", help="CA certificates for index access in --strategy pinned "
                       "(default: this host's bundle)")
    build.add_argument("--no-incremental", dest="incremental", action="store_false",
                       help="always build in full, never on top of the previous verified image")
    build.add_argument("--verbose", action="store_true", help="print the build log as it comes")
    build.add_argument("--host-builds", action="store_true",
                       help="wheelhouse strategy: let pins that have no wheel build on this host (runs their setup "
                            "code here; by default they are refused)")
    build.add_argument("--installers", choices=("same", "pypi"), default="same",
                       help="same (default): refuse distributions another installer (conda) put there; pypi: "
                            "accept their PyPI wheels in the image (check then shows the swap, not drift)")
    build.add_argument("--trust-remote-sources", action="store_true",
                       help="build remote VCS and source-archive installs (and, with --strategy pinned, pins that "
                            "have no wheel): their setup code runs inside the build, which has this host's network")
    check = command("check", "capture inside the snapshot's image and diff it against the manifest; exit 0 only "
                             "without drift")
    check.add_argument("name")
    check.add_argument("--json", action="store_true", help="print the differences as JSON")
    run = command("run", "run a command in a fresh container of snapshot NAME's image: live output, a log file "
                         "in .yolosnap-runs/, the command's exit code as the result")
    run.add_argument("name")
    run.add_argument("--gpus", default="auto", help="all, a count (2), device=0,1, none, or auto (default: GPUs "
                     "when this host has a driver and the engine a GPU runtime)")
    run.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VAL]",
                     help="an environment variable (repeatable; KEY alone passes this process's value)")
    run.add_argument("-v", "--volume", action="append", default=[], metavar="HOST:CONTAINER[:ro]",
                     help="an extra folder to mount (repeatable); the working directory is always mounted")
    run.add_argument("--network", choices=("none", "host"), default="none",
                     help="none (default) or host, for a script that must download (datasets, weights)")
    run.add_argument("--tensorboard", metavar="DIR", help="serve TensorBoard on DIR while the run lasts")
    run.epilog = "The command comes after --:  run NAME [options] -- python train.py --epochs 3"
    restore = command("restore", "make snapshot NAME a Jupyter kernel (yolosnap-NAME) that runs inside its image; "
                                 "pick it in any notebook's kernel picker")
    restore.add_argument("name")
    restore.add_argument("--remove", action="store_true", help="remove that kernel instead")
    ps = command("ps", "list the running snapshot containers (warm kernels, runs, TensorBoards)")
    ps.add_argument("--json", action="store_true", help="print them as JSON")
    stop = command("stop", "end snapshot containers: this notebook's kernels and those whose owner is gone")
    stop.add_argument("name", nargs="?", help="only this snapshot's (default: every snapshot's)")
    stop.add_argument("--all", dest="everyone", action="store_true",
                      help="also end containers of other notebooks and runs that are still alive")
    return parser


def parse(argv: Sequence[str], prog: str = "yolosnap", raising: bool = False) -> argparse.Namespace:
    """Parse a command line; for ``run``, everything after the first ``--`` is the command, untouched."""
    argv = list(argv)
    parser = build_parser(prog, raising)
    head, tail = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, None)
    args, extra = parser.parse_known_args(head)
    if args.command == "run" and (extra or not tail):
        parser.error(f"run needs the command after --, e.g.: run {args.name} -- python train.py")
    if extra or (tail is not None and args.command != "run"):
        parser.error("unrecognized arguments: " + " ".join(extra + (["--", *tail] if tail is not None else [])))
    if args.command == "run":
        args.argv = tail
    return args


@dataclass
class Outcome:
    """What a command produced: something to show (str or a ``render.Message``), an exit code, the data."""

    shown: Any
    exit_code: int = 0
    data: Any = None
    last_line: str | None = None  # printed last by the CLI (the image reference after a build)


def execute(args: argparse.Namespace) -> Outcome:
    """Run one parsed command through :mod:`jupyter_yolosnap.api`."""
    from .. import service
    from . import render
    from ..snapshot.manifest import dumps, warnings

    if args.command == "save":
        saved = service.save(args.name, args.python, args.project)
        return Outcome(render.render_saved(saved), data=saved)
    if args.command == "list":
        summaries = service.list_snapshots(args.project)
        return Outcome(render.render_list(summaries, service.open_store(args.project).project), data=summaries)
    if args.command == "show":
        data = service.load(args.name, args.project)
        return Outcome(dumps(data).rstrip("\n") if args.json else render.render_manifest(data), data=data)
    if args.command == "history":
        revisions = service.history(args.name, args.project)
        return Outcome(render.render_history(revisions, args.name), data=revisions)
    if args.command == "diff":
        if args.b is not None and args.python:
            raise YolosnapError("give either a second snapshot or --python, not both")
        result = service.diff(args.a, args.b, args.python, args.project)
        shown = json.dumps(result.to_dict(), indent=2) if args.json else render.render_diff(result)
        return Outcome(shown, 0 if result.identical else 1, result)
    if args.command == "build":
        from .. import bake

        result = bake.build(args.name, args.project, args.strategy, args.base, args.registry_mirror, args.ca_bundle,
                            args.incremental, listener=getattr(args, "listener", None) or _terminal(args),
                            host_builds=args.host_builds, trust_remote_sources=args.trust_remote_sources,
                            installers=args.installers)
        shown = render.render_built(result, _readiness(service.load(args.name, args.project)))
        return Outcome(shown, data=result, last_line=result.image)
    if args.command == "check":
        from .. import bake

        result = bake.check(args.name, args.project)
        loaded = service.load(args.name, args.project)
        shown = json.dumps(result.diff.to_dict() | {"clean": result.clean}, indent=2) if args.json else \
            render.render_check(result, _readiness(loaded), warnings(loaded))
        return Outcome(shown, 0 if result.clean else 1, result)
    if args.command in ("run", "ps", "stop"):
        return _runtime(args)
    if args.command == "restore":
        return _restore(args)
    raise YolosnapError(f"unknown command {args.command!r}")


def _runtime(args: argparse.Namespace) -> Outcome:
    """``run``, ``ps`` and ``stop``: containers of snapshot images (:mod:`jupyter_yolosnap.runtime`)."""
    from . import render
    from .. import runtime

    if args.command == "run":
        done = runtime.run_script(args.name, args.argv, args.project, gpus=args.gpus, env=args.env,
                                  volumes=args.volume, network=args.network, tensorboard=args.tensorboard)
        table = png = png_path = None
        if done.metrics is not None:
            from ..runtime import metrics

            table = metrics.read(done.metrics)
            png = metrics.plot_png(table) if table is not None else None
            if png is not None:
                png_path = done.log.with_suffix(".png")
                png_path.write_bytes(png)
        return Outcome(render.render_run(done, table, png, png_path), done.exit_code, done)
    if args.command == "ps":
        rows = runtime.ps()
        shown = json.dumps([row.__dict__ for row in rows], indent=2) if args.json else render.render_ps(rows)
        return Outcome(shown, data=rows)
    removed = runtime.end(args.name, args.everyone)
    return Outcome(render.render_stopped(removed, args.name, runtime.ps()), data=removed)


def _restore(args: argparse.Namespace) -> Outcome:
    """Install (or ``--remove``) the kernelspec whose kernel runs in the snapshot's container."""
    from .. import service, kernelspec
    from . import render

    if args.remove:
        removed = kernelspec.remove(args.name, service.open_store(args.project).project)
        return Outcome(render.Message(f"Removed kernel {kernelspec.kernel_name(args.name)}" if removed else
                                      f"No kernel {kernelspec.kernel_name(args.name)} of this project to remove"))
    from ..engine.client import connect
    from ..bake import kernel_layer

    manifest = service.load(args.name, args.project)
    made = kernel_layer.ensure(connect(), manifest, getattr(args, "listener", None) or _terminal(args))
    name = kernelspec.install(manifest["name"], args.project, manifest)
    rows = [("kernel", name), ("shown as", kernelspec.display_name(manifest["name"])), ("image", made.image)]
    return Outcome(render.Message(f"Snapshot {manifest['name']!r} is a kernel now: pick "
                                  f"'{kernelspec.display_name(manifest['name'])}' in the kernel picker", ("", ""),
                                  rows), data=name, last_line=name)


def _terminal(args: argparse.Namespace):
    from ..events import TerminalProgress

    return TerminalProgress(verbose=getattr(args, "verbose", False))


def _readiness(manifest: dict) -> list[str]:
    """GPU readiness lines for a snapshot on this host and engine."""
    from ..engine.client import connect
    from ..gpu import probe_gpus
    from ..gpu.readiness import engine_gpu_runtime, gpu_readiness

    return gpu_readiness(manifest, probe_gpus(), engine_gpu_runtime(connect()))
