"""Snapshot archives: ``share.archive.export``/``import_archive`` beside ``docker save | gzip`` and
``gunzip | docker load`` on the same image, in one run.

Usage (from the repository root, after ``scripts/test.sh`` or ``scripts/setup.sh`` made ``.venv``, started the
engine and made the stand-in base image)::

    .venv/bin/python benchmarks/bench_share.py [--runs 3] [--write BENCHMARKS.md]

Environment: a venv with ``six`` and ``numpy`` saved and built once into ``yolosnap/bench-share`` on the stand-in
base ``python:3.11.7-slim-bookworm``. Each run is an interleaved pair per figure, the order alternating from run
to run; medians of ``--runs`` runs:

- export: ``docker save <verified tag> | gzip > FILE`` (the docker CLI and gzip's default level 6, a shell
  pipeline) vs ``archive.export`` (docker-py's save stream, parts, checksums, a gzip member per 4 MiB on a
  thread per core, level 6, the file renamed into place when complete);
- import: the snapshot's image is removed first (its tags; the base image stays, as on a colleague's machine
  that has the base), then ``gunzip < FILE | docker load`` vs ``archive.import_archive`` into a fresh project
  (streamed, every check, the manifest registered, tagged). Ours is timed with its in-image check (a capture
  inside the image, as a build's) and without it (``verify=False``);
- archive sizes of both.

Every image the benchmark made is removed at the end, also on failure.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from markdown_section import publish  # noqa: E402  (benchmarks/ is sys.path[0])

REPO = Path(__file__).resolve().parents[1]
NAME = "bench-share"
sys.path.insert(0, str(REPO))


def log(message: str) -> None:
    print(f"bench_share: {message}", file=sys.stderr, flush=True)


def timed(action) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def shell(command: str) -> None:
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_share: failed: {command}\n{done.stderr}")


def remove_image(client, repository: str) -> None:
    """Every tag of the snapshot's repository (the image goes with its last tag; the base layers stay)."""
    for found in client.images.list(name=repository):
        for tag in found.tags:
            client.images.remove(tag, force=True)


def measure(runs: int, folder: Path) -> dict:
    from jupyter_yolosnap import bake, service
    from jupyter_yolosnap.engine.client import connect
    from jupyter_yolosnap.share import archive
    from jupyter_yolosnap.snapshot import names
    from jupyter_yolosnap.snapshot.store import open_store

    client = connect(timeout=900)
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "six==1.16.0", "numpy==2.1.3"], check=True, capture_output=True)
    project = folder / "project"
    project.mkdir()
    log("saving and building the snapshot (once)")
    service.save(NAME, str(venv / "bin/python"), project)
    built = bake.build(NAME, project)
    tag, image_id = built.image, built.image_id
    repository = names.image_repository(NAME)
    size = client.images.get(image_id).attrs["Size"]
    store = open_store(project)
    theirs, ours = folder / "docker-save.tar.gz", folder / "yolosnap.tar.gz"
    figures: dict[str, list[float]] = {k: [] for k in ("save", "export", "load", "import", "import_nocheck")}

    def restore() -> None:  # our export needs the verified image with its tags
        if not client.images.list(name=repository):
            archive.import_archive(open_store(fresh()), ours, verify=False)

    counter = [0]

    def fresh() -> Path:
        counter[0] += 1
        path = folder / f"fresh-{counter[0]}"
        path.mkdir()
        return path

    for run in range(runs):
        log(f"run {run + 1}/{runs}")
        pairs = [("save", lambda: shell(f"docker save {tag} | gzip > {theirs}")),
                 ("export", lambda: archive.export(store, NAME, ours))]
        for key, action in (pairs if run % 2 == 0 else pairs[::-1]):
            restore()
            figures[key].append(timed(action))
        loads = [("load", lambda: shell(f"gunzip < {theirs} | docker load -q")),
                 ("import", lambda: archive.import_archive(open_store(fresh()), ours)),
                 ("import_nocheck", lambda: archive.import_archive(open_store(fresh()), ours, verify=False))]
        for key, action in (loads if run % 2 == 0 else loads[::-1]):
            remove_image(client, repository)
            figures[key].append(timed(action))
            if client.images.get(tag).id != image_id:
                raise SystemExit(f"bench_share: {key} did not bring back image {image_id}")
        restore()
    return {**figures, "image_size": size, "theirs_size": theirs.stat().st_size, "ours_size": ours.stat().st_size,
            "tag": tag, "cores": os.cpu_count() or 1}


def cleanup() -> None:
    from jupyter_yolosnap.engine import labels
    from jupyter_yolosnap.engine.client import connect
    from jupyter_yolosnap.snapshot import names

    client = connect()
    remove_image(client, names.image_repository(NAME))
    for found in client.images.list(all=True, filters={"label": f"{labels.SNAPSHOT}={NAME}"}):
        client.images.remove(found.id, force=True)


def section(figures: dict, command: str) -> str:
    med = {k: statistics.median(v) for k, v in figures.items() if isinstance(v, list)}
    mb = lambda n: f"{n / 1e6:.1f} MB"  # noqa: E731
    size_ratio = figures["ours_size"] / figures["theirs_size"]
    rows = [
        ("export", "`docker save \\| gzip`", med["save"], med["export"]),
        ("import (ours with its in-image check)", "`gunzip \\| docker load`", med["load"], med["import"]),
        ("import without the in-image check (`verify=False`)", "`gunzip \\| docker load`", med["load"],
         med["import_nocheck"]),
    ]
    lines = [
        "## Share: `export`/`import` archives vs `docker save | gzip` and `gunzip | docker load`",
        "",
        f"Command: `{command}` ({len(figures['save'])} runs, each an interleaved pair whose order alternates from "
        "run to run; medians; wall time).",
        "",
        f"Image: a venv with `six` and `numpy` built on the stand-in base `python:3.11.7-slim-bookworm` "
        f"({mb(figures['image_size'])} unpacked). Before each import the snapshot's image is removed (the base "
        "image stays, as on a colleague's machine that has it). Ours: `share.archive.export` (docker-py's save "
        f"stream, parts and SHA-256 checksums, one gzip member per 4 MiB compressed on {figures['cores']} threads, "
        "level 6) and `share.archive.import_archive` into a fresh project (streamed into the engine's load, every "
        "check, the manifest registered, the image tagged).",
        "",
        "| figure | baseline command | baseline | ours | ratio ours/baseline | target | met |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for label, base, theirs, ours in rows:
        ratio = ours / theirs
        lines.append(f"| {label} | {base} | {theirs:.1f} s | {ours:.1f} s | {ratio:.2f} | <= 1.00 | "
                     f"{'yes' if ratio <= 1.0 else 'NO'} |")
    lines.append(f"| archive size | `docker save \\| gzip` | {mb(figures['theirs_size'])} | {mb(figures['ours_size'])} "
                 f"| {size_ratio:.3f} | <= 1.05 | {'yes' if size_ratio <= 1.05 else 'NO'} |")
    per_run = "; ".join(f"{label} " + ", ".join(f"{v:.1f}" for v in figures[key]) for key, label in (
        ("save", "docker save | gzip"), ("export", "export"), ("load", "gunzip | docker load"),
        ("import", "import"), ("import_nocheck", "import without check")))
    lines += ["", "Targets (issue: share and scale out): export and import at least as fast as the docker "
              "pipelines (ratio <= 1.00), the archive no more than 5% larger (<= 1.05).", "",
              f"Per run, in seconds: {per_run}.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", metavar="FILE", help="update this Markdown file's share section")
    args = parser.parse_args()
    if shutil.which("docker") is None or shutil.which("gzip") is None:
        raise SystemExit("bench_share: the baseline needs the docker CLI and gzip on PATH")
    with tempfile.TemporaryDirectory(prefix="bench-share-") as tmp:
        try:
            figures = measure(args.runs, Path(tmp))
        finally:
            cleanup()
    command = f".venv/bin/python benchmarks/bench_share.py --runs {args.runs}" + \
        (f" --write {args.write}" if args.write else "")
    publish(section(figures, command), args.write, REPO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
