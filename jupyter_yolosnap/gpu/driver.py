"""Which CUDA a host's NVIDIA driver can run: NVIDIA's driver/CUDA table, kept as data (``data/``)."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

_COMPAT_PATH = Path(__file__).with_name("data") / "cuda_driver_compat.json"
_DRIVER_RE = re.compile(r"^\d+(?:\.\d+){0,2}$")
_CUDA_RE = re.compile(r"^(\d+)\.(\d+)(?:\.\d+)?$")



@lru_cache(maxsize=1)
def cuda_driver_table() -> Dict[str, Any]:
    """NVIDIA's driver/CUDA table, kept as data (``data/cuda_driver_compat.json``) so updating it is one edit."""
    with open(_COMPAT_PATH, encoding="utf-8") as handle:
        return json.load(handle)


def _driver_tuple(version: Any) -> Tuple[int, int, int]:
    if not isinstance(version, str) or not _DRIVER_RE.match(version.strip()):
        raise ValueError(f"driver version {version!r} is not like '570.124.06'")
    parts = [int(p) for p in version.strip().split(".")]
    return tuple(parts + [0] * (3 - len(parts)))  # type: ignore[return-value]


def _cuda_tuple(version: Any) -> Tuple[int, int]:
    match = _CUDA_RE.match(version.strip()) if isinstance(version, str) else None
    if not match:
        raise ValueError(f"CUDA version {version!r} is not like '12.8'")
    return int(match.group(1)), int(match.group(2))


def newest_cuda_for_driver(driver_version: str) -> Optional[str]:
    """The newest CUDA in the table whose shipped driver this one meets (None when older than all)."""
    driver = _driver_tuple(driver_version)
    native = [
        _cuda_tuple(cuda)
        for cuda, shipped in cuda_driver_table()["toolkit_driver"].items()
        if driver >= _driver_tuple(shipped)
    ]
    return "%d.%d" % max(native) if native else None


def driver_supports_cuda(driver_version: str, cuda_version: str) -> Tuple[bool, str]:
    """Can a host with this driver run code built for this CUDA? Returns (ok, one-line reason).

    A driver runs every CUDA up to the toolkit it shipped with, and any minor of a major whose minimum it
    meets (minor-version compatibility, with a limited feature set: no PTX JIT of newer code). A CUDA the
    table does not list and no minimum covers (e.g. a new major) is unknown: False, and the reason says to
    update the table rather than guess.
    Raises ValueError on versions that are not dotted numbers.
    """
    driver = _driver_tuple(driver_version)
    cuda = _cuda_tuple(cuda_version)
    table = cuda_driver_table()
    shipped = {_cuda_tuple(k): v for k, v in table["toolkit_driver"].items()}
    minimum = table["minor_version_compat_min_driver"].get(str(cuda[0]))
    label = "%d.%d" % cuda
    newest = newest_cuda_for_driver(driver_version)

    if newest is not None and cuda <= _cuda_tuple(newest):
        needed = shipped.get(cuda)
        if needed is not None:
            return True, f"driver {driver_version} >= {needed}, the driver shipped with CUDA {label}"
        return True, f"driver {driver_version} runs CUDA up to {newest}, which includes {label}"
    if minimum is not None and driver >= _driver_tuple(minimum):
        return True, (
            f"driver {driver_version} runs CUDA {label} through minor-version compatibility "
            f"(CUDA {cuda[0]}.x needs >= {minimum}; features needing a newer driver, such as PTX JIT, may fail)"
        )
    if cuda not in shipped and minimum is None:
        return False, (
            f"CUDA {label} is unknown: cuda_driver_compat.json (updated {table.get('updated')}) has no entry "
            f"for it; update the table from NVIDIA's CUDA release notes"
        )
    needed = shipped.get(cuda)
    parts = [f"driver {driver_version} is too old for CUDA {label}"]
    if needed is not None:
        parts.append(f"CUDA {label} shipped with {needed}")
    if minimum is not None:
        parts.append(f"minor-version compatibility needs >= {minimum}")
    if newest is not None:
        parts.append(f"this driver runs CUDA up to {newest}")
    return False, "; ".join(parts)
