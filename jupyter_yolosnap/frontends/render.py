"""Tables for people: plain text for terminals, HTML for notebooks, from the same rows.

Each ``render_*`` returns a :class:`Message`, which prints as text and shows as HTML in a notebook (the
jupysql habit), so magics and CLI share one renderer.
"""
from __future__ import annotations

import html
import shlex
from typing import Sequence

from ..service import Saved, SnapshotSummary
from ..snapshot.manifest import warnings as manifest_warnings
from ..snapshot.diff import INFORMATIONAL, SECTIONS, ManifestDiff


class Message:
    """A titled table: ``str()`` gives aligned text, ``_repr_html_`` an HTML table."""

    def __init__(self, title: str, header: Sequence[str] = (), rows: Sequence[Sequence[object]] = (),
                 footer: str = ""):
        self.title, self.header, self.footer = title, list(header), footer
        self.rows = [["" if cell is None else str(cell) for cell in row] for row in rows]

    def __str__(self) -> str:
        lines = [self.title]
        if self.rows:
            table = [self.header, *self.rows] if self.header else self.rows
            widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
            fmt = "  ".join(f"{{:<{w}}}" for w in widths)
            if any(self.header):  # key-value tables have a blank header: no header lines
                lines += [fmt.format(*self.header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()]
            lines += [fmt.format(*row).rstrip() for row in self.rows]
        if self.footer:
            lines.append(self.footer)
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        esc = html.escape
        parts = [f"<div class='yolosnap'><p><b>{esc(self.title)}</b></p>"]
        if self.rows:
            parts.append("<table><thead><tr>" + "".join(f"<th style='text-align:left'>{esc(h)}</th>"
                                                        for h in self.header) + "</tr></thead><tbody>")
            parts += ["<tr>" + "".join(f"<td style='text-align:left'>{esc(c)}</td>" for c in row) + "</tr>"
                      for row in self.rows]
            parts.append("</tbody></table>")
        if self.footer:
            parts.append(f"<p>{esc(self.footer)}</p>")
        return "".join(parts) + "</div>"


def render_saved(saved: Saved) -> Message:
    m = saved.manifest
    torch = (m.get("cuda") or {}).get("torch") or {}
    note = ("first revision" if saved.previous_digest is None else
            "unchanged since the last save" if saved.previous_digest == m["digest"] else
            "previous revision kept in history/")
    rows = [("python", m["python"]["version"]), ("packages", len(m["packages"])),
            ("torch", torch.get("version") or "-"), ("cuda / cudnn", f"{torch.get('cuda') or '-'} / "
                                                                     f"{torch.get('cudnn') or '-'}"),
            ("gpu", _gpu(m)), ("digest", m["digest"][:19]), ("file", saved.path)]
    rows += [("warning", line) for line in manifest_warnings(m)]
    return Message(f"Saved snapshot {m['name']!r} ({note})", ("", ""), rows)


def _gpu(m: dict) -> str:
    gpu = m.get("gpu") or {}
    names = [g["name"] for g in gpu.get("gpus") or []]
    if not names:
        return "no GPU" if gpu.get("status") != "error" else f"error: {gpu.get('detail')}"
    return f"{names[0]}{' x%d' % len(names) if len(names) > 1 else ''} (driver {gpu.get('driver_version')})"


def render_list(summaries: list[SnapshotSummary], project: object) -> Message:
    rows = [(s.name, s.created, s.python, s.torch or "-", s.cuda or "-", s.gpu or "-", s.packages, s.revisions)
            if s.error is None else (s.name, "unreadable", "-", "-", "-", "-", "-", s.revisions) for s in summaries]
    footer = "" if rows else "No snapshots yet: %snapshot save NAME (or yolosnap save NAME) makes one."
    problems = [f"{s.name}: {s.error}" for s in summaries if s.error is not None]
    if problems:
        footer = "\n".join(problems)
    return Message(f"Snapshots in {project}", ("name", "saved", "python", "torch", "cuda", "gpu", "packages",
                                                "revisions"), rows, footer)


def render_history(summaries: list[SnapshotSummary], name: str) -> Message:
    rows = [(f"{name}@{s.revisions}", s.created, s.python, s.packages, s.digest[:19]) for s in summaries]
    return Message(f"Revisions of {name!r} (the last is current)", ("ref", "saved", "python", "packages",
                                                                    "digest"), rows)


def render_manifest(m: dict) -> Message:
    torch = (m.get("cuda") or {}).get("torch") or {}
    os_info = m.get("os") or {}
    libs = m.get("native_libs") or []
    git = m.get("git") or {}
    rows = [
        ("python", f"{m['python']['version']} ({m['python'].get('implementation')}, "
                   f"{m['python'].get('environment')}, {m['python'].get('machine')})"),
        ("packages", f"{len(m['packages'])} ({_source_counts(m['packages'])})"),
        ("torch", f"{torch.get('version') or '-'} cuda {torch.get('cuda') or '-'} cudnn {torch.get('cudnn') or '-'}"),
        ("gpu", _gpu(m)),
        ("os", f"{os_info.get('pretty_name') or os_info.get('id')}, libc {(os_info.get('libc') or {}).get('version')}"
               f", {len(os_info.get('packages') or [])} system packages"),
        ("native libraries", ", ".join(f"{lib['soname']} ({lib.get('package') or lib['status']})"
                                       for lib in libs if lib["status"] in ("system", "missing")) or "-"),
        ("git", f"{git.get('commit', '')[:12]}{' (dirty)' if git.get('dirty') else ''}" if git else "-"),
        ("saved", m.get("created")), ("digest", m["digest"]),
        ("installers", _installer_counts(m["packages"])),
    ]
    rows += [("warning", line) for line in manifest_warnings(m)]
    pkg_rows = [(p["name"], p["version"], p["source"], p.get("installer") or "-", p.get("url") or "")
                for p in m["packages"]]
    summary = Message(f"Snapshot {m['name']!r}", ("", ""), rows)
    packages = Message("Packages", ("name", "version", "source", "installer", "from"), pkg_rows)
    return _Joined(summary, packages)


def _installer_counts(packages: list[dict]) -> str:
    counts: dict[str, int] = {}
    for pkg in packages:
        counts[pkg.get("installer") or "unknown"] = counts.get(pkg.get("installer") or "unknown", 0) + 1
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items(), key=lambda kv: -kv[1]))


def _source_counts(packages: list[dict]) -> str:
    counts: dict[str, int] = {}
    for p in packages:
        counts[p["source"]] = counts.get(p["source"], 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def render_diff(result: ManifestDiff) -> Message:
    order = {s: i for i, s in enumerate(SECTIONS)}
    rows = [(c.section + (" (info)" if c.section in INFORMATIONAL else ""), c.item, c.kind, c.old or "-",
             c.new or "-") for c in sorted(result.changes, key=lambda c: order.get(c.section, 99))]
    title = f"{result.old_label} -> {result.new_label}: " + (
        "identical" if result.identical else f"{len(result.drift)} difference(s)")
    return Message(title, ("section", "item", "change", result.old_label, result.new_label), rows)


class _Joined(Message):
    """Several messages shown one after another."""

    def __init__(self, *parts: Message):
        super().__init__(parts[0].title)
        self.parts = parts

    def __str__(self) -> str:
        return "\n\n".join(str(p) for p in self.parts)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return "".join(p._repr_html_() for p in self.parts)


def render_built(result, readiness: list[str]) -> Message:  # result: bake.BuildResult
    how = ("already built and verified" if result.reused else
           "delta on the previous verified image" if result.delta else "full build")
    rows = [("image", result.image), ("id", result.image_id.split(":")[-1][:12]), ("how", how),
            ("time", f"{result.seconds:.1f} s"), ("Dockerfile", result.dockerfile)]
    if result.check is not None:
        rows.append(("check", f"no drift ({len(result.check.shown)} host-only difference(s) shown by check)"))
    rows += [("gpu", line) for line in readiness]
    return Message(f"Built {result.image}", ("", ""), rows)


def render_check(result, readiness: list[str], notes: list[str] = ()) -> Message:  # result: check.CheckResult
    rows = [("DRIFT", c.section, c.item, c.old or "-", c.new or "-") for c in result.drift]
    rows += [("warning", "packages", "", line, "") for line in notes]
    rows += [("host only", c.section, c.item, c.old or "-", c.new or "-") for c in result.shown
             if c.section not in ("system packages",)]
    hidden = sum(1 for c in result.shown if c.section == "system packages")
    footer = "; ".join(readiness)
    if hidden:
        footer = f"{hidden} system package difference(s) between host and image not listed. " + footer
    verdict = "no drift: the image holds the snapshot's environment" if result.clean else \
        f"{len(result.drift)} difference(s) the image should not have"
    return Message(f"Check of {result.image}: {verdict}", ("", "section", "item", "snapshot", "image"), rows, footer)


def render_run(done, table=None, png: bytes | None = None, png_path: object = None) -> Message:
    """A finished ``run`` (``runtime.ScriptRun``), with its metrics table plotted when there is one."""
    command = shlex.join(done.argv) or "the command"  # quoted as typed: it can be copied and run again
    verdict = "succeeded" if done.exit_code == 0 else f"exited with code {done.exit_code}"
    rows: list[tuple[str, object]] = [("exit code", done.exit_code), ("time", f"{done.seconds:.1f} s"),
                                      ("log", done.log), ("image", done.image)]
    rows += [("code", line[len("code "):]) for line in done.provenance if line.startswith("code ")]
    if done.metrics is not None:
        rows.append(("metrics", f"{done.metrics} ({table.rows} rows; {table.last_row()})" if table else
                     f"{done.metrics} (not a table of numbers)"))
    if done.gpu_summary:
        rows.append(("GPU", done.gpu_summary + (f" ({done.gpu_csv})" if done.gpu_csv else "")))
    if png_path is not None:
        rows.append(("plot", png_path))
    if done.tensorboard:
        rows.append(("tensorboard", f"{done.tensorboard} (stopped with the run)"))
    return _Plotted(f"{command}: {verdict}", ("", ""), rows, png=png)


class _Plotted(Message):
    """A message followed by a PNG image in notebooks (the terminal gets the file's path in the rows)."""

    def __init__(self, *args, png: bytes | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.png = png

    def _repr_html_(self) -> str:
        html_text = super()._repr_html_()
        if self.png:
            import base64

            html_text += f"<img alt='metrics plot' src='data:image/png;base64,{base64.b64encode(self.png).decode()}'/>"
        return html_text


def render_ps(rows) -> Message:  # rows: list[runtime.registry.RuntimeContainer]
    table = [(r.id, r.snapshot, r.role, r.status,
              f"{r.owner_pid}{' (this kernel)' if r.mine else '' if r.owner_alive else ' (gone)'}", r.image)
             for r in rows]
    return Message("Snapshot containers" if rows else "No snapshot containers are running",
                   ("container", "snapshot", "role", "status", "owner", "image"), table)


def render_stopped(removed, name: str | None, remaining) -> Message:
    """What ``stop`` ended, and what it left running (other notebooks' containers without ``--all``)."""
    left = [r for r in remaining if name is None or r.snapshot == name]
    footer = (f"{len(left)} container(s) of other running notebooks or runs were left alone; add --all to end "
              "them too" if left else "")
    what = f"snapshot {name!r}" if name else "any snapshot"
    title = f"Stopped {len(removed)} container(s) of {what}" if removed else f"Nothing of {what} to stop"
    return Message(title, ("container", "snapshot", "role"), [(r.id, r.snapshot, r.role) for r in removed], footer)


def render_deleted(deleted) -> Message:  # deleted: service.Deleted
    from ..snapshot.names import image_repository

    kernel = "; its kernel was removed" if deleted.kernelspec else ""
    return Message(f"Deleted snapshot {deleted.name!r} ({deleted.revisions} revision(s)){kernel}", ("", ""),
                   [("images", f"left on the engine: docker image ls {image_repository(deleted.name)}")])


def render_restored(name: str, restored) -> Message:  # restored: service.Restored
    return Message(f"Snapshot {name!r} is a kernel now: pick '{restored.display_name}' in the kernel picker",
                   ("", ""), [("kernel", restored.kernel_name), ("shown as", restored.display_name),
                              ("image", restored.image)] + ([("GPU", restored.gpu_fit)] if restored.gpu_fit else []))


def render_unrestored(name: str, removed: bool) -> Message:
    from ..snapshot.names import kernel_name

    return Message(f"Removed kernel {kernel_name(name)}" if removed else
                   f"No kernel {kernel_name(name)} of this project to remove")


def render_submitted(submitted) -> Message:  # submitted: share.k8s.Submitted
    return Message(f"Submitted {submitted.kind} {submitted.name} in namespace {submitted.namespace}", ("", ""),
                   [("uid", submitted.uid), ("follow", "yolosnap k8s SNAPSHOT --status (or --logs)")])


def render_exported(exported) -> Message:  # exported: share.archive.Exported
    return Message(f"Exported snapshot {exported.name!r} to {exported.path}", ("", ""),
                   [("archive", f"{exported.bytes / 1e6:.1f} MB (image {exported.image_bytes / 1e6:.1f} MB unpacked)"),
                    ("manifest", exported.digest), ("image", exported.image_id),
                    ("elsewhere", f"yolosnap import {exported.path.name}")])


def render_adopted(adopted, title: str) -> Message:  # adopted: share.archive.Imported or share.registry.Pulled
    rows = [("image", adopted.image), ("manifest", adopted.digest),
            ("checked", "a capture inside the image matches the manifest" if adopted.checked else "not run"),
            ("took", f"{adopted.seconds:.1f} s")]
    if adopted.previous:
        rows.append(("replaced", f"{adopted.previous} (kept in history)"))
    return Message(title, ("", ""), rows)


def render_pushed(pushed) -> Message:  # pushed: share.registry.Pushed
    return Message(f"Pushed snapshot {pushed.name!r} to {pushed.reference}", ("", ""),
                   [("by digest", pushed.by_digest), ("teammates", f"yolosnap pull {pushed.reference}"),
                    ("cluster", f"yolosnap k8s {pushed.name} --gpus 1 -- python train.py")])
