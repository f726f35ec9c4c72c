"""Capture speed: ``yolosnap save`` beside ``pip freeze`` on the same environments, in one run.

Usage (from the repository root, after ``scripts/test.sh`` made ``.venv``)::

    .venv/bin/python benchmarks/bench_capture.py [--runs 7] [--write BENCHMARKS.md]

Environments: this project's development venv (``.venv``) and a 300-distribution venv built once under
``.bench-cache/`` (the dev venv's packages plus generated tiny wheels). Each command is timed end to end as a
user runs it (interpreter start-up included); medians of ``--runs`` runs. The first ``save`` on an empty
native-library cache is timed separately: the target is for a warm cache.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from markdown_section import publish  # noqa: E402  (benchmarks/ is sys.path[0])

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".bench-cache"
TARGET_DISTS = 300


def timed(argv: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def _wheel(folder: Path, name: str, version: str) -> Path:
    """A tiny pure-Python wheel, written directly (building 250 projects would dominate the benchmark set-up)."""
    module, dist_info = name.replace("-", "_"), f"{name.replace('-', '_')}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": b"VALUE = 1\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    target = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return target


def venv_with(count: int, base_python: Path) -> Path:
    """A venv with the dev venv's distributions plus generated ones, ``count`` in all (built once)."""
    root = CACHE / f"venv{count}"
    python = root / "bin" / "python"
    if python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    frozen = subprocess.run([str(base_python), "-m", "pip", "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout.split()
    subprocess.run([str(python), "-m", "pip", "install", "-q", *frozen], check=True)
    have = len(subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True,
                              text=True, check=True).stdout.split())
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    extra = [_wheel(wheels, f"bench-dist-{i:03d}", "1.0.0") for i in range(max(0, count - have))]
    if extra:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", *map(str, extra)],
                       check=True)
    return python


def dist_count(python: Path) -> int:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                         check=True).stdout
    return len(out.split())


def measure(label: str, python: Path, runs: int) -> dict:
    yolosnap = [str(REPO / ".venv" / "bin" / "yolosnap")]
    freeze = [str(python), "-m", "pip", "freeze", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory(prefix="yolosnap-bench-") as tmp:
        env = dict(os.environ, XDG_CACHE_HOME=str(Path(tmp) / "cache"))
        save = yolosnap + ["save", "bench", "--python", str(python), "--project", tmp]
        cold = timed(save, env)  # empty native-library cache
        freeze_times, save_times = [], []
        for _ in range(runs):  # interleaved, so machine noise hits both alike
            freeze_times.append(timed(freeze, env))
            save_times.append(timed(save, env))
    result = {"label": label, "dists": dist_count(python), "freeze": statistics.median(freeze_times),
              "save": statistics.median(save_times), "cold": cold}
    result["ratio"] = result["save"] / result["freeze"]
    return result


def report(results: list[dict], runs: int, command: str) -> str:
    lines = [
        "## Capture: `yolosnap save` vs `pip freeze`",
        "",
        f"Command: `{command}` ({runs} runs each, interleaved; medians; wall time of the whole command, "
        "interpreter start-up included; `save` captures the venv through `--python` and writes the manifest).",
        "",
        "| environment | distributions | `pip freeze` | `yolosnap save` (warm cache) | ratio save/freeze "
        "| `yolosnap save`, empty cache |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['label']} | {r['dists']} | {r['freeze'] * 1000:.0f} ms | {r['save'] * 1000:.0f} ms "
                     f"| {r['ratio']:.2f} | {r['cold'] * 1000:.0f} ms |")
    lines += ["", "Targets (issue: snapshot a live environment): save no slower than pip freeze (ratio <= 1.00), "
              "and under 1 s for 300 distributions with a warm native-library cache."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", metavar="FILE", help="update this Markdown file's capture section")
    args = parser.parse_args()
    dev = REPO / ".venv" / "bin" / "python"
    if not dev.exists():
        sys.exit("benchmarks: run scripts/test.sh once first (it makes .venv)")
    results = [measure("dev venv (.venv)", dev, args.runs),
               measure("300-distribution venv", venv_with(TARGET_DISTS, dev), args.runs)]
    command = "python benchmarks/bench_capture.py" + (f" --runs {args.runs}" if args.runs != 7 else "") + \
        (f" --write {args.write}" if args.write else "")
    section = report(results, args.runs, command)
    publish(section, args.write, REPO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
