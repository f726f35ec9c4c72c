"""Shared by the benchmarks: each owns one ``## ...`` section of BENCHMARKS.md and rewrites only that one."""
from __future__ import annotations

from pathlib import Path


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section in BENCHMARKS.md, keeping the others."""
    title = section.splitlines()[0]
    text = path.read_text() if path.exists() else "# Benchmarks\n\nFigures measured on this project's CI-like " \
        "machine (2 cores, shared and noisy): medians and ratios from one run.\n\n"
    start = text.find(title)
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def publish(section: str, target: str | None, repo: Path) -> None:
    """Print the section; with ``--write FILE``, also put it into FILE (relative to the repository)."""
    print(section)
    if target:
        write_section(repo / target, section)
