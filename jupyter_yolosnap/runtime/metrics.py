"""The metrics table a training script leaves behind (YOLO's ``results.csv``), found after a run and plotted.

YOLOv5/v8 write ``runs/train/exp*/results.csv``: one row per epoch, a header padded with spaces
(``      epoch,   train/box_loss, ...``). Any CSV named ``results.csv`` (or ``metrics.csv``) that the run wrote
under the working directory is read the same way: the first column is the x axis, every other numeric column
gets a small panel. The plot is a PNG made with matplotlib (a dependency, so it is drawn wherever the run is),
written beside the run's log; a run with GPUs adds a row of GPU telemetry panels from its ``gpu.csv``.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

NAMES = ("results.csv", "metrics.csv")
SKIP_DIRS = {".git", ".yolosnap", ".yolosnap-runs", "node_modules", "__pycache__", ".venv", "venv"}
MAX_DEPTH = 6
MAX_PANELS = 12


@dataclass(frozen=True)
class MetricsTable:
    """Columns of a metrics CSV: ``x`` names the first column; ``series`` the numeric others."""

    path: Path
    x: str
    xs: list[float]
    series: dict[str, list[float]]

    @property
    def rows(self) -> int:
        return len(self.xs)

    def last_row(self) -> str:
        """``epoch 99: metrics/mAP_0.5=0.61, ...`` (the first few columns), for terminals."""
        if not self.xs:
            return "no rows"
        shown = ", ".join(f"{k}={_fmt(v[-1])}" for k, v in list(self.series.items())[:6])
        return f"{self.x} {_fmt(self.xs[-1])}: {shown}"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def find_written(folder: str | os.PathLike, since: float) -> Path | None:
    """The newest metrics CSV modified at or after ``since`` (epoch seconds) under ``folder``; None if none."""
    found: list[tuple[float, Path]] = []
    root = Path(folder)
    for current, dirs, files in os.walk(root):
        depth = len(Path(current).relative_to(root).parts)
        dirs[:] = [] if depth >= MAX_DEPTH else [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            if name in NAMES:
                path = Path(current, name)
                try:
                    mtime = path.stat().st_mtime
                except OSError:
                    continue
                if mtime >= since - 1:  # coarse file-system clocks
                    found.append((mtime, path))
    return max(found)[1] if found else None


def read(path: str | os.PathLike) -> MetricsTable | None:
    """Parse a metrics CSV; None when it has no header or no numeric column besides the first."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        rows = [[cell.strip() for cell in row] for row in csv.reader(handle) if any(c.strip() for c in row)]
    if len(rows) < 2:
        return None
    header, body = rows[0], rows[1:]
    columns: dict[str, list[float]] = {}
    for index, name in enumerate(header):
        values = [_number(row[index]) if index < len(row) else math.nan for row in body]
        if name and not all(math.isnan(v) for v in values):
            columns[name] = values
    if header[0] not in columns or len(columns) < 2:
        return None
    xs = columns.pop(header[0])
    return MetricsTable(Path(path), header[0], xs, columns)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def plot_png(table: MetricsTable | None, gpu: dict[str, dict[str, list[float]]] | None = None) -> bytes | None:
    """A grid of small line plots, one per metric, and under them one row of GPU telemetry panels (``gpu``:
    :func:`..gpu.telemetry.read_csv`, one line per GPU), as PNG bytes; None when there is nothing to draw."""
    from ..gpu.telemetry import PLOTTED

    names = list(table.series)[:MAX_PANELS] if table is not None else []
    telemetry = [(column, title) for column, title in PLOTTED
                 if gpu and any(not all(math.isnan(v) for v in one[column]) for one in gpu.values())]
    if not names and not telemetry:
        return None  # before matplotlib's import: a run with nothing to plot does not pay for it
    from matplotlib.figure import Figure  # a dependency: the plot is drawn wherever the run is

    columns = max(min(5, len(names)), len(telemetry), 1)
    lines = math.ceil(len(names) / columns) + (1 if telemetry else 0)
    figure = Figure(figsize=(2.6 * columns, 2.1 * lines), dpi=80, layout="constrained")
    for position, name in enumerate(names, start=1):
        axes = figure.add_subplot(lines, columns, position)
        axes.plot(table.xs, table.series[name], marker="." if table.rows < 30 else None, linewidth=1.2)
        axes.set_title(name, fontsize=9)
        axes.tick_params(labelsize=7)
    first = (lines - 1) * columns + 1  # the GPU row is the last one
    for offset, (column, title) in enumerate(telemetry):
        axes = figure.add_subplot(lines, columns, first + offset)
        for label, one in sorted(gpu.items()):
            axes.plot(one["time_s"], one[column], linewidth=1.2, label=f"GPU {label}")
        axes.set_title(title, fontsize=9)
        axes.set_xlabel("seconds", fontsize=7)
        axes.tick_params(labelsize=7)
        if len(gpu) > 1:
            axes.legend(fontsize=6)
    parts = [f"{table.path.name}: {table.rows} rows"] if table is not None else []
    if telemetry:
        parts.append(f"GPU telemetry: {len(gpu)} GPU(s)")
    figure.suptitle("; ".join(parts), fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
