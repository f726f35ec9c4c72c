"""One parser and one dispatcher for ``yolosnap`` and ``%snapshot``, so the two never disagree.

``execute`` returns what to show and the exit code; the CLI prints it, the magic displays it.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any, NoReturn

from . import __version__
from .exceptions import UsageFailure, YolosnapError


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
    check = command("check", "capture inside the snapshot's image and diff it against the manifest; exit 0 only "
                             "without drift")
    check.add_argument("name")
    check.add_argument("--json", action="store_true", help="print the differences as JSON")
    return parser


@dataclass
class Outcome:
    """What a command produced: something to show (str or a ``render.Message``), an exit code, the data."""

    shown: Any
    exit_code: int = 0
    data: Any = None
    last_line: str | None = None  # printed last by the CLI (the image reference after a build)


def execute(args: argparse.Namespace) -> Outcome:
    """Run one parsed command through :mod:`jupyter_yolosnap.api`."""
    from . import api, render
    from .manifest import dumps

    if args.command == "save":
        saved = api.save(args.name, args.python, args.project)
        return Outcome(render.render_saved(saved), data=saved)
    if args.command == "list":
        summaries = api.list_snapshots(args.project)
        return Outcome(render.render_list(summaries, api.open_store(args.project).project), data=summaries)
    if args.command == "show":
        data = api.load(args.name, args.project)
        return Outcome(dumps(data).rstrip("\n") if args.json else render.render_manifest(data), data=data)
    if args.command == "history":
        revisions = api.history(args.name, args.project)
        return Outcome(render.render_history(revisions, args.name), data=revisions)
    if args.command == "diff":
        if args.b is not None and args.python:
            raise YolosnapError("give either a second snapshot or --python, not both")
        result = api.diff(args.a, args.b, args.python, args.project)
        shown = json.dumps(result.to_dict(), indent=2) if args.json else render.render_diff(result)
        return Outcome(shown, 0 if result.identical else 1, result)
    if args.command == "build":
        from . import bake

        result = bake.build(args.name, args.project, args.strategy, args.base, args.registry_mirror, args.ca_bundle,
                            args.incremental, listener=getattr(args, "listener", None) or _terminal(args))
        shown = render.render_built(result, _readiness(api.load(args.name, args.project)))
        return Outcome(shown, data=result, last_line=result.image)
    if args.command == "check":
        from . import bake

        result = bake.check(args.name, args.project)
        shown = json.dumps(result.diff.to_dict() | {"clean": result.clean}, indent=2) if args.json else \
            render.render_check(result, _readiness(api.load(args.name, args.project)))
        return Outcome(shown, 0 if result.clean else 1, result)
    raise YolosnapError(f"unknown command {args.command!r}")


def _terminal(args: argparse.Namespace):
    from .events import TerminalProgress

    return TerminalProgress(verbose=getattr(args, "verbose", False))


def _readiness(manifest: dict) -> list[str]:
    """GPU readiness lines for a snapshot on this host and engine."""
    from .engine.client import connect
    from .gpu import probe_gpus
    from .readiness import engine_gpu_runtime, gpu_readiness

    return gpu_readiness(manifest, probe_gpus(), engine_gpu_runtime(connect()))
