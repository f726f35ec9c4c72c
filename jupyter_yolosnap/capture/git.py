"""The project's source revision, so a snapshot says which code it was taken beside."""
from __future__ import annotations

import subprocess

from .sources import GIT_SAFE


def _git(project_dir: str, *args: str) -> str | None:
    try:
        # Never the folder's own configured programs (core.fsmonitor runs one on every status).
        done = subprocess.run(["git", *GIT_SAFE, "-C", project_dir, *args], capture_output=True, text=True, timeout=20,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def probe_git(project_dir: str) -> dict | None:
    """Commit, branch and whether tracked files differ from it; None outside a git work tree."""
    commit = _git(project_dir, "rev-parse", "HEAD")
    if commit is None:
        return None
    status = _git(project_dir, "status", "--porcelain", "--untracked-files=no") or ""
    branch = _git(project_dir, "rev-parse", "--abbrev-ref", "HEAD")
    return {"commit": commit, "branch": None if branch == "HEAD" else branch, "dirty": bool(status)}
