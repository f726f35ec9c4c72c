"""One parser for every verb and option, and one dispatcher, for ``yolosnap``, ``%snapshot`` and ``%%in_env``,
so the doors never disagree.

``execute`` calls :mod:`jupyter_yolosnap.service` and returns what to show and the exit code; the CLI prints it,
the magic displays it. Options a user sets once (GPUs, network, strategy, project) are None here until
:func:`fill_defaults` gives them the user's setting or the default.
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


def _project(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--project", metavar="DIR", default=None, help="project folder (default: nearest ancestor "
                     "with .yolosnap/, else the current folder)")


def _container_options(sub: argparse.ArgumentParser) -> None:
    """The options of a container of a snapshot, the same for ``run`` and ``%%in_env`` (defaults: None, filled
    from the user's settings by :func:`fill_defaults`)."""
    sub.add_argument("--gpus", default=None, help="all, a count (2), device=0,1, none, or auto (default: GPUs "
                     "when this host has a driver and the engine a GPU runtime)")
    sub.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VAL]",
                     help="an environment variable (repeatable; KEY alone passes this process's value)")
    sub.add_argument("-v", "--volume", action="append", default=[], metavar="HOST:CONTAINER[:ro]",
                     help="an extra folder to mount (repeatable); the working directory is always mounted")


def _replace(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--replace", action="store_true", help="replace a snapshot of that name that holds another "
                     "environment (it stays in history)")


def build_parser(prog: str = "yolosnap", raising: bool = False) -> argparse.ArgumentParser:
    """The subcommands; ``raising=True`` makes argparse raise ``UsageFailure`` instead of exiting."""
    cls = _Parser if raising else argparse.ArgumentParser
    parser = cls(prog=prog, description="Snapshot, diff and reproduce Python/GPU environments. Snapshots live "
                 "in <project>/.yolosnap/<name>/snapshot.json, to be committed with the code.")
    parser.add_argument("--version", action="version", version=f"jupyter_yolosnap {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=cls)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _project(sub)
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
    delete = command("delete", "delete snapshot NAME (every revision) and its restored kernel; its images stay "
                               "on the engine (docker image rm removes them)")
    delete.add_argument("name")
    build = command("build", "build snapshot NAME into a Docker image and verify it (check runs at the end)")
    build.add_argument("name")
    build.add_argument("--strategy", choices=("wheelhouse", "pinned"), default=None,
                       help="wheelhouse (default): wheels collected on this host with its pip settings, no index "
                            "access inside the build (air-gapped sites); pinned: exact pins installed from the "
                            "indexes inside the build")
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
    _container_options(run)
    run.add_argument("--network", choices=("none", "host"), default=None,
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
    export = command("export", "write snapshot NAME and its verified image into one .tar.gz (image, manifest, "
                               "Dockerfile, checksums) to carry to another machine")
    export.add_argument("name")
    export.add_argument("file", metavar="FILE", help="the archive to write (a folder: NAME.tar.gz in it)")
    imp = command("import", "register the snapshot in an archive written by export: every checksum, the manifest "
                            "digest and the image are checked first")
    imp.add_argument("file", metavar="FILE")
    _replace(imp)
    push = command("push", "push snapshot NAME's verified image, its manifest inside, to a registry (logins are "
                           "the engine's: docker login)")
    push.add_argument("name")
    push.add_argument("reference", metavar="REGISTRY/REPO:TAG")
    pull = command("pull", "pull an image pushed by push and register the snapshot inside it, checked as import is")
    pull.add_argument("reference", metavar="REGISTRY/REPO:TAG")
    _replace(pull)
    k8s = command("k8s", "print the Kubernetes Job that runs the command in snapshot NAME's pushed image (by digest), "
                         "with nvidia.com/gpu limits; --apply submits it with your kubeconfig")
    k8s.add_argument("name")
    k8s.add_argument("--image", metavar="REPO@sha256:DIGEST", help="the snapshot's image in a registry (default: "
                     "where this manifest was last pushed or pulled)")
    k8s.add_argument("--gpus", default=None, help="GPUs per pod: a count (requests and limits of nvidia.com/gpu)")
    k8s.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VAL", help="an environment variable")
    k8s.add_argument("-v", "--volume", action="append", default=[], metavar="HOST:CONTAINER[:ro]",
                     help="a node folder to mount (hostPath), or pvc:CLAIM:CONTAINER[:ro]; repeatable")
    k8s.add_argument("--nodes", type=int, default=1, help="more than 1: a Kubeflow PyTorchJob run with torchrun")
    k8s.add_argument("--namespace", default=None)
    k8s.add_argument("--kubeconfig", metavar="FILE", default=None)
    k8s.add_argument("--context", default=None)
    what = k8s.add_mutually_exclusive_group()
    what.add_argument("--apply", action="store_true", help="submit the job")
    what.add_argument("--status", action="store_true", help="show the job's state instead")
    what.add_argument("--logs", action="store_true", help="print the job's pod logs instead")
    k8s.epilog = "The command comes after --:  k8s NAME --gpus 2 -- python train.py --epochs 3"
    return parser


def in_env_parser() -> argparse.ArgumentParser:
    """``%%in_env NAME [options]``: the same container options as ``run``, plus the variables to move."""
    parser = _Parser(prog="%%in_env", description="Run this cell inside snapshot NAME's image, in a warm kernel "
                     "kept per snapshot; its output, displays and errors appear here.")
    parser.add_argument("name", help="the snapshot to run in (built with %%snapshot build NAME)")
    _project(parser)
    _container_options(parser)
    parser.add_argument("--push", default="", help="comma-separated notebook variables to send in before the cell")
    parser.add_argument("--pull", default="", help="comma-separated variables to bring back after the cell (plain "
                        "data only: containers, scalars, numpy arrays)")
    parser.add_argument("--pull-trusted", action="store_true", help="unpickle pulled variables of any class: only "
                        "for a snapshot you trust, its pickles can run code here")
    return parser


def fill_defaults(args: argparse.Namespace, gpus: str | None = None, network: str | None = None,
                  strategy: str | None = None, project: str | None = None) -> argparse.Namespace:
    """Options the command line left out take the user's settings (the magics' traitlets), else the defaults."""
    from .. import service

    if getattr(args, "project", None) is None:
        args.project = project or None
    if hasattr(args, "gpus") and args.gpus is None and getattr(args, "command", None) != "k8s":  # pods: a count
        args.gpus = gpus or service.DEFAULT_GPUS
    if hasattr(args, "network") and args.network is None:
        args.network = network or service.DEFAULT_NETWORK
    if hasattr(args, "strategy") and args.strategy is None:
        args.strategy = strategy or service.DEFAULT_STRATEGY
    return args


def parse(argv: Sequence[str], prog: str = "yolosnap", raising: bool = False) -> argparse.Namespace:
    """Parse a command line; for ``run``, everything after the first ``--`` is the command, untouched."""
    argv = list(argv)
    parser = build_parser(prog, raising)
    head, tail = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, None)
    args, extra = parser.parse_known_args(head)
    takes_command = args.command == "run" or (args.command == "k8s" and not (args.status or args.logs))
    if takes_command and (extra or not tail):
        parser.error(f"{args.command} needs the command after --, e.g.: {args.command} {args.name} -- python train.py")
    if extra or (tail is not None and not takes_command):
        parser.error("unrecognized arguments: " + " ".join(extra + (["--", *tail] if tail is not None else [])))
    if takes_command:
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
    """Run one parsed command through :mod:`jupyter_yolosnap.service`; what to show comes from :mod:`.render`."""
    from .. import service
    from . import render

    fill_defaults(args)
    verb = args.command
    if verb == "save":
        saved = service.save(args.name, args.python, args.project)
        return Outcome(render.render_saved(saved), data=saved)
    if verb == "list":
        summaries = service.list_snapshots(args.project)
        return Outcome(render.render_list(summaries, service.open_store(args.project).project), data=summaries)
    if verb == "show":
        data = service.load(args.name, args.project)
        return Outcome(json_text(data) if args.json else render.render_manifest(data), data=data)
    if verb == "history":
        revisions = service.history(args.name, args.project)
        return Outcome(render.render_history(revisions, args.name), data=revisions)
    if verb == "diff":
        result = service.diff(args.a, args.b, args.python, args.project)
        shown = json.dumps(result.to_dict(), indent=2) if args.json else render.render_diff(result)
        return Outcome(shown, 0 if result.identical else 1, result)
    if verb == "delete":
        deleted = service.delete(args.name, args.project)
        return Outcome(render.render_deleted(deleted), data=deleted)
    if verb == "build":
        options = service.BuildOptions(args.strategy, args.base, args.registry_mirror, args.ca_bundle,
                                       args.incremental, args.host_builds, args.trust_remote_sources, args.installers)
        result = service.build(args.name, args.project, options, _listener(args))
        shown = render.render_built(result, service.readiness(service.load(args.name, args.project)))
        return Outcome(shown, data=result, last_line=result.image)
    if verb == "check":
        result = service.check(args.name, args.project)
        loaded = service.load(args.name, args.project)
        shown = json.dumps(result.diff.to_dict() | {"clean": result.clean}, indent=2) if args.json else \
            render.render_check(result, service.readiness(loaded), render.manifest_warnings(loaded))
        return Outcome(shown, 0 if result.clean else 1, result)
    if verb == "run":
        options = service.RunOptions(args.gpus, tuple(args.env), tuple(args.volume), args.network, args.tensorboard)
        done = service.run(args.name, args.argv, args.project, options)
        return Outcome(render.render_run(done.run, done.table, done.png, done.png_path), done.run.exit_code,
                       done.run)
    if verb == "ps":
        rows = service.ps()
        shown = json.dumps([row.__dict__ for row in rows], indent=2) if args.json else render.render_ps(rows)
        return Outcome(shown, data=rows)
    if verb == "stop":
        removed = service.stop(args.name, args.everyone)
        return Outcome(render.render_stopped(removed, args.name, service.ps()), data=removed)
    if verb == "restore":
        if args.remove:
            removed = service.unrestore(args.name, args.project)
            return Outcome(render.render_unrestored(args.name, removed), data=removed)
        restored = service.restore(args.name, args.project, _listener(args))
        return Outcome(render.render_restored(args.name, restored), data=restored.kernel_name,
                       last_line=restored.kernel_name)
    if verb == "export":
        exported = service.export(args.name, args.file, args.project, _listener(args))
        return Outcome(render.render_exported(exported), data=exported, last_line=str(exported.path))
    if verb == "import":
        imported = service.import_archive(args.file, args.project, args.replace, _listener(args))
        return Outcome(render.render_adopted(imported, f"Imported snapshot {imported.name!r} from {args.file}"),
                       data=imported, last_line=imported.image)
    if verb == "push":
        pushed = service.push(args.name, args.reference, args.project, _listener(args))
        return Outcome(render.render_pushed(pushed), data=pushed, last_line=pushed.by_digest)
    if verb == "pull":
        pulled = service.pull(args.reference, args.project, args.replace, _listener(args))
        return Outcome(render.render_adopted(pulled, f"Pulled snapshot {pulled.name!r} from {pulled.reference}"),
                       data=pulled, last_line=pulled.image)
    if verb == "k8s":
        options = service.K8sOptions(args.image, args.gpus, tuple(args.volume), tuple(args.env), args.nodes,
                                     args.namespace, args.kubeconfig, args.context)
        if args.status:
            state = service.k8s_status(args.name, options)
            return Outcome(state.line(), data=state)
        if args.logs:
            return Outcome(service.k8s_logs(args.name, options).rstrip("\n"))
        from ..share.k8s import to_yaml

        job = service.k8s_job(args.name, args.argv, args.project, options)
        if not args.apply:
            return Outcome(to_yaml(job).rstrip("\n"), data=job)
        submitted = service.k8s_apply(job, options)
        return Outcome(render.render_submitted(submitted), data=submitted)
    raise YolosnapError(f"unknown command {verb!r}")


def json_text(data: dict) -> str:
    """A manifest as the file holds it."""
    from ..snapshot.manifest import dumps

    return dumps(data).rstrip("\n")


def _listener(args: argparse.Namespace):
    """The progress display the door gave (``args.listener``: a notebook bar), else the terminal's."""
    given = getattr(args, "listener", None)
    if given is not None:
        return given
    from ..events import TerminalProgress

    return TerminalProgress(verbose=getattr(args, "verbose", False))
