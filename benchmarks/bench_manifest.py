"""Manifest-reading commands: ``yolosnap list/show/history/diff`` end to end, and validation beside jsonschema.

Usage (from the repository root, after ``scripts/test.sh`` made ``.venv``)::

    .venv/bin/python benchmarks/bench_manifest.py [--runs 9] [--write BENCHMARKS.md]

A temporary project holds three snapshots of this project's development venv (``.venv``, saved under three
names). Every command is timed as a user runs it, a new
process each time (interpreter start-up and imports included); medians of ``--runs`` runs, interleaved. The naive
approach, what every manifest-reading command did before: validate with jsonschema (``Draft7Validator`` of the same schema), whose
import here pulls in an optional format checker that compiles a grammar at import time. It is timed the same way:
a process that reads the manifest and validates it with jsonschema, beside one that loads it through
``jupyter_yolosnap.snapshot.manifest``.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from markdown_section import publish  # noqa: E402  (benchmarks/ is sys.path[0])

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"
TARGET_S = 0.3

NAIVE = ("import json, sys, jsonschema\n"
         "from jupyter_yolosnap.snapshot.grammar import SCHEMA_PATH\n"
         "schema = json.loads(SCHEMA_PATH.read_text())\n"
         "data = json.loads(open(sys.argv[1]).read())\n"
         "jsonschema.Draft7Validator(schema).validate(data)\n")
OURS = ("import sys\n"
        "from jupyter_yolosnap.snapshot import manifest\n"
        "manifest.loads(open(sys.argv[1]).read())\n")


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=cwd)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--write", metavar="FILE", help="rewrite this benchmark's section of FILE (BENCHMARKS.md)")
    args = parser.parse_args()
    cli = [str(PYTHON), "-m", "jupyter_yolosnap"]
    with tempfile.TemporaryDirectory(prefix="yolosnap-bench-") as tmp:
        project = Path(tmp)
        names = ["base", "train", "eval"]
        for name in names:
            subprocess.run([*cli, "save", name, "--python", str(PYTHON)], check=True, cwd=project,
                           stdout=subprocess.DEVNULL)
        manifest_path = project / ".yolosnap" / "base" / "snapshot.json"
        packages = manifest_path.read_text().count('"source": ')
        size_kb = manifest_path.stat().st_size / 1024
        commands = {
            "yolosnap list (3 snapshots)": [*cli, "list"],
            "yolosnap show base": [*cli, "show", "base"],
            "yolosnap history base": [*cli, "history", "base"],
            "yolosnap diff base train": [*cli, "diff", "base", "train"],
            "naive: read + jsonschema validate": [str(PYTHON), "-c", NAIVE, str(manifest_path)],
            "ours: read + manifest.loads": [str(PYTHON), "-c", OURS, str(manifest_path)],
            "python -c pass (interpreter floor)": [str(PYTHON), "-c", "pass"],
        }
        times: dict[str, list[float]] = {label: [] for label in commands}
        for label, argv in commands.items():  # one warm-up each (page cache, .pyc files)
            timed(argv, project)
        for _ in range(args.runs):
            for label, argv in commands.items():
                times[label].append(timed(argv, project))
    med = {label: statistics.median(values) for label, values in times.items()}
    naive, ours = med["naive: read + jsonschema validate"], med["ours: read + manifest.loads"]
    rows = []
    for label in commands:
        target = f"<= {TARGET_S:.1f} s" if label.startswith("yolosnap") else ""
        met = ("yes" if med[label] <= TARGET_S else "no") if target else ""
        ratio = f"{med[label] / naive:.2f}" if not label.startswith("python") else ""
        rows.append(f"| {label} | {med[label] * 1000:.0f} ms | {ratio} | {target} | {met} |")
    manifest_reading = [label for label in commands if label.startswith("yolosnap")]
    all_met = all(med[label] <= TARGET_S for label in manifest_reading)
    section = "\n".join([
        "## Manifest-reading commands: the compiled grammar vs jsonschema",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_manifest.py --runs {args.runs} --write BENCHMARKS.md` "
        f"({args.runs} runs each, interleaved; medians; wall time of a new process, interpreter start-up and "
        "imports included).",
        "",
        f"Manifest: a capture of this project's development venv ({packages} distributions, {size_kb:.0f} KB). "
        "Naive approach: what every manifest-reading command did before, validation with jsonschema (its import "
        "here pulls in an optional format checker that compiles a grammar at import time). Ours: "
        "`jupyter_yolosnap.snapshot.grammar`, the schema compiled into closures once per process, plus the checks no schema "
        "states (control characters, nesting depth, PEP 440 pins, plain file paths).",
        "",
        "| command | median | ratio to the naive validation | target | met |",
        "|---|---:|---:|---:|---|",
        *rows,
        "",
        f"Validation alone, ours/naive: {ours / naive:.2f} ({ours * 1000:.0f} ms vs {naive * 1000:.0f} ms per process). "
        f"Target (issue: trust): every manifest-reading command under {TARGET_S:.1f} s on the CI machine: "
        f"{'met' if all_met else 'NOT met'} in this run.",
        "",
    ])
    publish(section, args.write, REPO)
    if not all_met:
        sys.exit(1)


if __name__ == "__main__":
    main()
