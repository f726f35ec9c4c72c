"""The host's GPUs and NVIDIA driver, read through NVML (the ``pynvml`` module of nvidia-ml-py).

A rebuilt image only runs if the host driver can run the CUDA inside it, so the snapshot records the driver,
the newest CUDA it supports, and each GPU. NVML is the driver's own library: it answers without torch and
without ``nvidia-smi`` on PATH. A machine with no driver is a normal case (laptops, CI), never an exception.

Everything here must be testable without a GPU, so the probe takes any object with pynvml's function
names; the tests replay recordings made on real machines (``tests/nvml_replay.py``, ``tools/record_nvml.py``).

This module imports only the standard library at import time (pynvml is loaded inside the functions), and
no other module of this package, so ``tools/record_nvml.py`` can load it by file path on a bare GPU host.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

_MIB = 1024 * 1024


# --------------------------------------------------------------------------------------------- probe


def _text(value: Any) -> str:
    """Old pynvml releases return ``bytes`` for names and versions; current ones return ``str``."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).rstrip("\x00").strip()


def cuda_version_from_int(value: Any) -> Optional[str]:
    """NVML encodes the driver's CUDA version as ``1000 * major + 10 * minor`` (12080 -> "12.8")."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


def _describe(err: BaseException) -> str:
    """``NVML Shared Library Not Found (NVMLError_LibraryNotFound)``: the message and the class to grep for."""
    return f"{err} ({type(err).__name__})"


def probe_gpus(nvml: Any = None) -> Dict[str, Any]:
    """Driver version, the CUDA version the driver supports, and each GPU, as plain JSON data.

    ``nvml`` is the real ``pynvml`` module by default, or anything with its function names (a
    :class:`RecordedNvml`). ``status`` is ``"no-driver"`` when NVML cannot start (no library, no kernel
    module, pynvml missing), ``"error"`` when a query failed after a successful start (what could be read
    is kept, the failed fields are None, ``detail`` says which call failed), else ``"ok"``.
    """
    result: Dict[str, Any] = {
        "driver_version": None,
        "cuda_driver_version": None,
        "gpus": [],
        "status": "ok",
        "detail": None,
    }
    if nvml is None:
        try:
            import pynvml as nvml  # noqa: PLC0415 - lazy: keeps `import jupyter_yolosnap.gpu` cheap
        except ImportError as err:
            result.update(status="no-driver", detail=f"pynvml is not importable ({err}); pip install nvidia-ml-py")
            return result
    nvml_error = nvml.NVMLError
    try:
        nvml.nvmlInit()
    except nvml_error as err:
        result.update(status="no-driver", detail=f"nvmlInit failed: {_describe(err)}")
        return result

    problems: List[str] = []
    shutdown_note: Optional[str] = None

    def ask(call: str, *args: Any, where: str = "") -> Any:
        """Run one NVML query; on NVMLError note it and return None so the rest is still read."""
        try:
            return getattr(nvml, call)(*args)
        except nvml_error as err:
            problems.append(f"{where}{call} failed: {_describe(err)}")
            return None

    try:
        driver = ask("nvmlSystemGetDriverVersion")
        result["driver_version"] = None if driver is None else _text(driver)
        result["cuda_driver_version"] = cuda_version_from_int(_cuda_driver_int(nvml, problems))
        count = ask("nvmlDeviceGetCount")
        for index in range(count or 0):
            where = f"GPU {index}: "
            gpu: Dict[str, Any] = {
                "index": index,
                "name": None,
                "uuid": None,
                "memory_total_mib": None,
                "compute_capability": None,
            }
            result["gpus"].append(gpu)
            handle = ask("nvmlDeviceGetHandleByIndex", index, where=where)
            if handle is None:
                continue
            name = ask("nvmlDeviceGetName", handle, where=where)
            gpu["name"] = None if name is None else _text(name)
            uuid = ask("nvmlDeviceGetUUID", handle, where=where)
            gpu["uuid"] = None if uuid is None else _text(uuid)
            memory = ask("nvmlDeviceGetMemoryInfo", handle, where=where)
            gpu["memory_total_mib"] = None if memory is None else int(memory.total) // _MIB
            capability = ask("nvmlDeviceGetCudaComputeCapability", handle, where=where)
            gpu["compute_capability"] = None if capability is None else f"{capability[0]}.{capability[1]}"
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml_error as err:
            # What was read is still right: mention it, but a failed shutdown alone is not an "error".
            shutdown_note = f"nvmlShutdown failed: {_describe(err)}"

    if problems:
        result.update(status="error", detail="; ".join(problems + ([shutdown_note] if shutdown_note else [])))
    elif shutdown_note:
        result["detail"] = shutdown_note
    return result


def _cuda_driver_int(nvml: Any, problems: List[str]) -> Optional[int]:
    """Prefer ``_v2``; fall back to the plain call when this pynvml lacks it or the driver refuses it."""
    failures: List[str] = []
    for call in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
        fn = getattr(nvml, call, None)
        if fn is None:
            continue
        try:
            return fn()
        except nvml.NVMLError as err:
            failures.append(f"{call} failed: {_describe(err)}")
    problems.append("; ".join(failures) if failures else "pynvml has no nvmlSystemGetCudaDriverVersion")
    return None
