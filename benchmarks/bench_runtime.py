"""Cell latency in a snapshot's container: ``%%in_env`` (warm kernel) beside a local cell and beside the naive
approach, a fresh ``docker run`` per cell, in one run.

Usage (from the repository root, after ``scripts/test.sh`` or ``scripts/setup.sh`` made ``.venv``, started the
engine and made the stand-in base image)::

    .venv/bin/python benchmarks/bench_runtime.py [--cells 200] [--starts 7] [--write BENCHMARKS.md]

Environment: a small venv (``six``) saved and built once into ``yolosnap/bench-runtime`` on the stand-in base
``python:3.11.7-slim-bookworm``, with its kernel image (ipykernel in its own layer). Figures:

- warm no-op cell: ``pass`` through ``%%in_env`` in a real ``InteractiveShell`` vs the same ``pass`` run locally
  by that shell, interleaved, ``--cells`` times each; medians and their difference (target: at most 10 ms more).
- first cell of a snapshot: ``%snapshot stop`` then ``%%in_env ... print(1)``, container start and kernel
  start-up included, ``--starts`` times (target: within 1.5 s on the stand-in base).
- naive: ``docker run --rm <image> python -c 'pass'`` through docker-py per cell, ``--starts`` times; it also
  loses every variable between cells.

Every image and container the benchmark made is removed at the end, also on failure.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from markdown_section import publish  # noqa: E402  (benchmarks/ is sys.path[0])

REPO = Path(__file__).resolve().parents[1]
NAME = "bench-runtime"
sys.path.insert(0, str(REPO))


def log(message: str) -> None:
    print(f"bench_runtime: {message}", file=sys.stderr, flush=True)


def timed(action) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def measure(cells: int, starts: int, folder: Path) -> dict:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from jupyter_yolosnap import service, bake, runtime
    from jupyter_yolosnap.engine.client import connect
    from jupyter_yolosnap.bake import kernel_layer

    client = connect()
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "six==1.16.0"], check=True, capture_output=True)
    project = folder / "project"
    project.mkdir()
    log("saving and building the snapshot (once)")
    service.save(NAME, str(venv / "bin/python"), project)
    image = bake.build(NAME, project).image
    kernel_layer.ensure(client, service.load(NAME, project))
    os.chdir(project)

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_yolosnap")
    magic = f"%%in_env {NAME} --project {project}\n"

    def cell(code: str) -> None:
        with capture_output():
            result = shell.run_cell(code, store_history=False)
        if result.error_in_exec is not None or result.error_before_exec is not None:
            raise RuntimeError(f"cell failed: {result.error_in_exec or result.error_before_exec}")

    log(f"first cells ({starts})")
    first = []
    for _ in range(starts):
        runtime.stop(NAME)
        first.append(timed(lambda: cell(magic + "print(1)")))
    log(f"warm no-op cells ({cells} each, interleaved)")
    remote, local = [], []
    for _ in range(10):  # warm-up
        cell(magic + "pass")
    for _ in range(cells):
        remote.append(timed(lambda: cell(magic + "pass")))
        local.append(timed(lambda: cell("pass")))
    runtime.stop(NAME)
    log(f"naive docker run per cell ({starts})")
    naive = [timed(lambda: client.containers.run(image, ["python", "-c", "pass"], remove=True, network_mode="none"))
             for _ in range(starts)]
    return {"first": first, "remote": remote, "local": local, "naive": naive, "image": image}


def cleanup() -> None:
    from jupyter_yolosnap import runtime
    from jupyter_yolosnap.engine.client import connect
    from jupyter_yolosnap.snapshot import names

    runtime.stop()
    client = connect()
    for found in client.images.list(name=names.image_repository(NAME)):
        for tag in found.tags:
            client.images.remove(tag, force=True)


def section(figures: dict, command: str) -> str:
    med = {k: statistics.median(v) for k, v in figures.items() if isinstance(v, list)}
    extra_ms = (med["remote"] - med["local"]) * 1000
    ms = lambda s: f"{s * 1000:.1f} ms"  # noqa: E731
    rows = [
        ("warm no-op cell", ms(med["local"]) + " (local cell)", ms(med["remote"]),
         f"+{extra_ms:.1f} ms", "<= +10 ms", extra_ms <= 10),
        ("first cell of a snapshot (container start included)", ms(med["naive"]) + " (naive, per cell)",
         ms(med["first"]), f"{med['first'] / med['naive']:.2f}", "<= 1.5 s", med["first"] <= 1.5),
        ("every later cell", ms(med["naive"]) + " (naive, per cell)", ms(med["remote"]),
         f"{med['remote'] / med['naive']:.3f}", "", None),
    ]
    lines = [
        "## Runtime: `%%in_env` cells vs a local cell and vs `docker run` per cell",
        "",
        f"Command: `{command}` (medians; wall time of `shell.run_cell` in a real IPython shell, output captured).",
        "",
        "Snapshot: a venv with `six`, built on the stand-in base `python:3.11.7-slim-bookworm`, ipykernel added "
        "in its own layer. Naive approach: a fresh `docker run --rm IMAGE python -c ...` per cell (docker-py, "
        "`--network none`), which also forgets every variable between cells.",
        "",
        "| figure | baseline | `%%in_env` | difference or ratio | target | met |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, base, ours, diff, target, met in rows:
        lines.append(f"| {label} | {base} | {ours} | {diff} | {target} | "
                     f"{'' if met is None else 'yes' if met else 'NO'} |")
    lines += ["", f"Spread: first cell min {min(figures['first']):.2f} s, max {max(figures['first']):.2f} s; "
              f"warm cell p90 {sorted(figures['remote'])[int(len(figures['remote']) * 0.9)] * 1000:.1f} ms.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--starts", type=int, default=7)
    parser.add_argument("--write", metavar="FILE", help="update this Markdown file's runtime section")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        cwd = os.getcwd()
        try:
            figures = measure(args.cells, args.starts, Path(tmp))
        finally:
            os.chdir(cwd)
            cleanup()
    command = f".venv/bin/python benchmarks/bench_runtime.py --cells {args.cells} --starts {args.starts}" + \
        (f" --write {args.write}" if args.write else "")
    publish(section(figures, command), args.write, REPO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
