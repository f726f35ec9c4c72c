"""The GPU-fit verdict: will this snapshot's CUDA code run on this host's GPUs, and how?

Read from facts, not from one static table: the snapshot's CUDA build and the architectures its torch wheel
carries (``cuda.torch.arch_list``, read from the wheel's fat binaries at capture), the host driver's version,
and each GPU's name and compute capability (NVML). The rules are data with their sources:
``data/cuda_driver_compat.json`` (which driver runs which CUDA) and ``data/gpu_fit.json`` (binary and PTX
compatibility, forward compatibility, which GPUs are data-centre GPUs).

One line, one of four verdicts (:data:`NATIVE`, :data:`MINOR`, :data:`FORWARD`, :data:`NO`), naming what limits
it. ``check`` shows it, restore prints it, and every GPU run warns with it when the answer is not "runs".
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .driver import _cuda_tuple, driver_supports_cuda

NATIVE, MINOR, FORWARD, NO, CPU = "runs natively", "runs under minor-version compatibility", \
    "needs the forward-compatibility package", "will not run", "CPU only"
_RULES = Path(__file__).with_name("data") / "gpu_fit.json"
_ARCH = re.compile(r"(sm|compute)_([0-9]{2,3})([a-z]?)")


@lru_cache(maxsize=1)
def rules() -> dict:
    with open(_RULES, encoding="utf-8") as handle:
        return json.load(handle)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_LINE = 600


@dataclass(frozen=True)
class Verdict:
    """``kind`` is one of the four verdicts (or :data:`CPU`); ``line`` says it with its reasons, on one line
    whatever a manifest or NVML put in the facts (control characters shown as ``?``, at most 600 characters)."""

    kind: str
    line: str

    def __post_init__(self) -> None:
        line = _CONTROL.sub("?", self.line)
        object.__setattr__(self, "line", line if len(line) <= MAX_LINE else line[:MAX_LINE - 3] + "...")

    @property
    def runs(self) -> bool:
        return self.kind in (NATIVE, MINOR, CPU)

    def __str__(self) -> str:
        return self.line


def is_datacenter(name: str) -> bool:
    """Whether NVML's device name is a data-centre GPU (where forward compatibility works)."""
    text = (name or "").lower()
    data = rules()
    if any(re.search(p, text) for p in data["not_datacenter_name_patterns"]):
        return False
    return any(re.search(p, text) for p in data["datacenter_name_patterns"])


def _capability(value: Any) -> int | None:
    """``"9.0"`` -> 90, ``"12.1"`` -> 121; None when NVML did not say."""
    match = re.fullmatch(r"([0-9]{1,2})\.([0-9])", str(value or ""))
    return int(match.group(1)) * 10 + int(match.group(2)) if match else None


def arch_fit(arch_list: list[str], capability: int) -> tuple[str | None, str]:
    """How a GPU of ``capability`` (90 for 9.0) runs a wheel built for ``arch_list``: ``("sass", "sm_90")``,
    ``("ptx", "compute_80")`` (the driver compiles PTX at first launch), or ``(None, reason)``."""
    sass, ptx = [], []
    for item in arch_list:
        match = _ARCH.fullmatch(item)
        if not match:
            continue
        kind, number, variant = match.group(1), int(match.group(2)), match.group(3)
        if kind == "sm":
            # SASS runs on the same major at an equal or newer minor; an arch-specific build only on itself.
            if (number == capability) or (not variant and number // 10 == capability // 10 and number <= capability):
                sass.append(item)
        elif number <= capability and not variant:
            ptx.append((number, item))
    if sass:
        return "sass", sass[-1]
    if ptx:
        return "ptx", max(ptx)[1]
    return None, f"its compute capability {capability // 10}.{capability % 10} is not among the wheel's " \
                 f"architectures ({', '.join(arch_list) or 'none'}) and no older PTX covers it"


def verdict(manifest: dict, host_gpu: dict) -> Verdict:
    """The one-line GPU-fit verdict of ``manifest``'s CUDA code on the host NVML described (``probe_gpus()``)."""
    from .readiness import snapshot_cuda

    cuda = snapshot_cuda(manifest)
    if cuda is None:
        return Verdict(CPU, "GPU fit: CPU-only snapshot: no CUDA build recorded, no GPU needed")
    driver = host_gpu.get("driver_version")
    if host_gpu.get("status") != "ok" or not driver:
        return Verdict(NO, f"GPU fit: {NO} on a GPU here: this host has no usable NVIDIA driver "
                           f"({host_gpu.get('detail') or host_gpu.get('status')}); the CUDA {cuda} code runs on the "
                           "CPU only")
    gpus = [g for g in host_gpu.get("gpus") or [] if isinstance(g, dict)]
    if not gpus:
        return Verdict(NO, f"GPU fit: {NO} on a GPU here: driver {driver} is loaded but NVML lists no GPU")
    try:
        ok, reason = driver_supports_cuda(driver, cuda)
        cuda_label = "%d.%d" % _cuda_tuple(cuda)
    except ValueError as err:
        return Verdict(NO, f"GPU fit: cannot tell: {err}")
    kind = NATIVE if ok and "minor-version" not in reason else MINOR if ok else None
    limits: list[str] = []
    if kind is None:
        centre = [g.get("name") or "?" for g in gpus if is_datacenter(g.get("name") or "")]
        major, minor = cuda_label.split(".")
        if centre and len(centre) == len(gpus):
            package = rules()["forward_compat_package"].format(major=major, minor=minor)
            kind = FORWARD
            limits.append(f"{reason}; data-centre GPU ({centre[0]}): install {package} in the image, or update "
                          "the driver")
        else:
            return Verdict(NO, f"GPU fit: {NO}: {reason}; forward compatibility needs a data-centre GPU, this host "
                               f"has {_names(gpus)}: update the NVIDIA driver")
    elif kind == MINOR:
        limits.append(reason)
    arch_list = ((manifest.get("cuda") or {}).get("torch") or {}).get("arch_list")
    used: list[str] = []
    for gpu in gpus:
        capability = _capability(gpu.get("compute_capability"))
        label = f"{gpu.get('name') or 'GPU'} ({gpu.get('compute_capability') or '?'})"
        if not arch_list or capability is None:
            continue
        how, detail = arch_fit(arch_list, capability)
        if how is None:
            return Verdict(NO, f"GPU fit: {NO}: {label}: {detail}; use a wheel built for it (an older CUDA build "
                               "of torch keeps older GPUs)")
        if how == "ptx":
            if kind == MINOR:
                return Verdict(NO, f"GPU fit: {NO}: {label} has only PTX ({detail}) in the wheel, and PTX of a "
                                   f"newer toolkit does not JIT under minor-version compatibility: update the driver")
            limits.append(f"{label} runs PTX {detail}, compiled at first launch")
        used.append(f"{label}: {detail}")
    facts = f"CUDA {cuda_label} build on driver {driver}"
    if used:
        facts += "; " + ", ".join(dict.fromkeys(used))
    elif not arch_list:
        facts += f"; {_names(gpus)} (the wheel's architectures were not recorded: save the snapshot again to check them)"
    return Verdict(kind, f"GPU fit: {kind}: {facts}" + (f" ({'; '.join(limits)})" if limits else ""))


def _names(gpus: list[dict]) -> str:
    names = [f"{g.get('name') or 'GPU'} ({g.get('compute_capability') or '?'})" for g in gpus]
    counted = {n: names.count(n) for n in dict.fromkeys(names)}
    return ", ".join(f"{count}x {name}" if count > 1 else name for name, count in counted.items())
