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
    return parser


@dataclass
class Outcome:
    """What a command produced: something to show (str or a ``render.Message``), an exit code, the data."""

    shown: Any
    exit_code: int = 0
    data: Any = None


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
    raise YolosnapError(f"unknown command {args.command!r}")
