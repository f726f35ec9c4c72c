"""Rebuild after an editable package's code changed: ours (only the sources layer) vs rebuilding the image.

Usage (from the repository root, after ``scripts/test.sh`` made ``.venv`` and the engine runs)::

    .venv/bin/python benchmarks/bench_sources.py [--runs 3] [--write BENCHMARKS.md]

Environment: a venv with numpy (a heavy layer), six and one editable setuptools project, in a temporary folder.
Each run edits the project's code (not its version), saves the snapshot again and times ``bake.build``; the
naive approach, what a user does when the tool cannot see code changes, rebuilds the image without Docker's layer
cache (``nocache=True``: every layer again). Both include our check. Medians of ``--runs`` runs, interleaved.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from markdown_section import publish  # noqa: E402  (benchmarks/ is sys.path[0])

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jupyter_yolosnap import service, bake  # noqa: E402
from jupyter_yolosnap.snapshot import names
from tests.conftest import make_project, make_venv, run  # noqa: E402


def layers(engine, image: str) -> list[str]:
    return engine.images.get(image).attrs["RootFS"]["Layers"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", metavar="FILE", help="rewrite this benchmark's section of FILE (BENCHMARKS.md)")
    args = parser.parse_args()
    import docker

    engine = docker.from_env(timeout=300)
    name = f"bench-sources-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="yolosnap-bench-") as tmp:
        root = Path(tmp)
        src = make_project(root / "src" / "bench-lib", "bench-lib", module_body="VALUE = 0\n")
        python = make_venv(root / "venv")
        pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        run(*pip, "setuptools>=64", "wheel", "six==1.16.0", "numpy==2.1.3")
        run(*pip, "--no-build-isolation", "-e", src)
        project = root / "project"
        project.mkdir()
        ours, naive, rebuilt_layers, total_layers = [], [], [], 0
        try:
            service.save(name, str(python), project)
            bake.build(name, project)
            for i in range(1, args.runs + 1):
                for kind in (("ours", "naive") if i % 2 else ("naive", "ours")):
                    (src / "bench_lib.py").write_text(f"VALUE = {i}{1 if kind == 'ours' else 2}\n")
                    service.save(name, str(python), project)
                    before = layers(engine, f"{names.image_repository(name)}:latest")
                    start = time.perf_counter()
                    result = bake.build(name, project, nocache=(kind == "naive"), incremental=False)
                    seconds = time.perf_counter() - start
                    after = layers(engine, result.image)
                    (ours if kind == "ours" else naive).append(seconds)
                    if kind == "ours":
                        rebuilt_layers.append(sum(1 for a, b in zip(before, after) if a != b))
                        total_layers = len(after)
        finally:
            for image in engine.images.list(name=names.image_repository(name)):
                for tag in image.tags:
                    engine.images.remove(tag, force=True)
            subprocess.run(["docker", "image", "prune", "-f", "--filter",
                            f"label=org.jupyter-yolosnap.snapshot={name}"], capture_output=True)
    med_ours, med_naive = statistics.median(ours), statistics.median(naive)
    section = "\n".join([
        "## Rebuild after an editable package's code changed",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_sources.py --runs {args.runs} --write BENCHMARKS.md` "
        f"({args.runs} runs each, interleaved; medians; wall time of `bake.build`, our check included).",
        "",
        "Environment: numpy 2.1.3 (heavy layer), six and one editable setuptools project; each run edits the "
        "project's code (not its version) and saves again, so the snapshot's digest moves with the code's "
        "fingerprint. Naive approach: rebuild the image without the layer cache, what one does when a tool "
        "cannot see code changes.",
        "",
        "| figure | naive: rebuild without cache | ours: rebuild the sources layer | ratio ours/naive |",
        "|---|---:|---:|---:|",
        f"| rebuild after a code change | {med_naive:.1f} s | {med_ours:.1f} s | {med_ours / med_naive:.2f} |",
        f"| image layers that changed (of {total_layers}) | {total_layers} | {max(rebuilt_layers)} | |",
        "",
        "Target (issue: fidelity): rebuilding one changed editable source touches only the sources layer (its "
        "`COPY sources/` and the `RUN` that installs it): "
        f"{'met' if max(rebuilt_layers) <= 2 else 'NOT met'} in this run.",
        "",
    ])
    publish(section, args.write, REPO)


if __name__ == "__main__":
    main()
