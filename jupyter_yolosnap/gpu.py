"""The host's GPUs and NVIDIA driver, read through NVML (the ``pynvml`` module of nvidia-ml-py).

A rebuilt image only runs if the host driver can run the CUDA inside it, so the snapshot records the driver,
the newest CUDA it supports, and each GPU. NVML is the driver's own library: it answers without torch and
without ``nvidia-smi`` on PATH. A machine with no driver is a normal case (laptops, CI), never an exception.

Everything here must be testable without a GPU, so the probe takes any object with pynvml's function
names: :class:`RecordedNvml` replays a JSON recording made by :func:`record_nvml` on a real machine
(``tools/record_nvml.py``), raising the same ``pynvml.NVMLError`` subclasses the real library would.

This module imports only the standard library at import time (pynvml is loaded inside the functions), and
no other module of this package, so ``tools/record_nvml.py`` can load it by file path on a bare GPU host.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple

RECORDING_FORMAT = 1
_MIB = 1024 * 1024

_COMPAT_PATH = Path(__file__).with_name("data") / "cuda_driver_compat.json"
_DRIVER_RE = re.compile(r"^\d+(?:\.\d+){0,2}$")
_CUDA_RE = re.compile(r"^(\d+)\.(\d+)(?:\.\d+)?$")


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


# ----------------------------------------------------------------------------------- record / replay


def _error_entry(err: BaseException, pynvml: ModuleType) -> Dict[str, Any]:
    """A failed call as JSON: the NVML error code and its constant name (for people reading fixtures)."""
    code = getattr(err, "value", None)
    names = sorted(n for n in dir(pynvml) if n.startswith("NVML_ERROR_") and getattr(pynvml, n) == code)
    return {"error": names[0] if names else None, "code": code, "message": str(err)}


def record_nvml(nvml: Any = None) -> Dict[str, Any]:
    """Call every NVML function the probe uses and return the raw answers, in the form RecordedNvml reads.

    Run on a GPU machine (``tools/record_nvml.py``) to make a test fixture. Each call is stored as
    ``{"ok": value}``, ``{"error": "NVML_ERROR_...", "code": N, "message": ...}`` or ``{"missing": true}``
    (this pynvml has no such function). Memory keeps only ``total``: free/used change from run to run.
    """
    import pynvml  # noqa: PLC0415 - needed for the error names even when replaying another source

    if nvml is None:
        nvml = pynvml
    version = getattr(pynvml, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version  # noqa: PLC0415

            version = dist_version("nvidia-ml-py")
        except Exception:  # noqa: BLE001 - only a label in the recording
            version = None
    recording: Dict[str, Any] = {
        "format": RECORDING_FORMAT,
        "recorded_with": {"nvidia-ml-py": version},
        "calls": {},
        "devices": [],
    }
    calls = recording["calls"]

    def call(name: str, *args: Any, convert: Any = None) -> Tuple[Dict[str, Any], Any]:
        """(the JSON entry, the raw value or None) for one call."""
        fn = getattr(nvml, name, None)
        if fn is None:
            return {"missing": True}, None
        try:
            value = fn(*args)
        except nvml.NVMLError as err:
            return _error_entry(err, pynvml), None
        return {"ok": convert(value) if convert else value}, value

    calls["nvmlInit"], _ = call("nvmlInit", convert=lambda _: None)
    if "ok" not in calls["nvmlInit"]:
        return recording
    try:
        calls["nvmlSystemGetDriverVersion"], _ = call("nvmlSystemGetDriverVersion", convert=_text)
        calls["nvmlSystemGetCudaDriverVersion_v2"], _ = call("nvmlSystemGetCudaDriverVersion_v2", convert=int)
        calls["nvmlSystemGetCudaDriverVersion"], _ = call("nvmlSystemGetCudaDriverVersion", convert=int)
        calls["nvmlDeviceGetCount"], count = call("nvmlDeviceGetCount", convert=int)
        for index in range(count or 0):
            device: Dict[str, Any] = {}
            recording["devices"].append(device)
            device["nvmlDeviceGetHandleByIndex"], handle = call(
                "nvmlDeviceGetHandleByIndex", index, convert=lambda _: None
            )
            if "ok" not in device["nvmlDeviceGetHandleByIndex"]:
                continue
            device["nvmlDeviceGetName"], _ = call("nvmlDeviceGetName", handle, convert=_text)
            device["nvmlDeviceGetUUID"], _ = call("nvmlDeviceGetUUID", handle, convert=_text)
            device["nvmlDeviceGetMemoryInfo"], _ = call(
                "nvmlDeviceGetMemoryInfo", handle, convert=lambda m: {"total": int(m.total)}
            )
            device["nvmlDeviceGetCudaComputeCapability"], _ = call(
                "nvmlDeviceGetCudaComputeCapability", handle, convert=lambda c: [int(c[0]), int(c[1])]
            )
    finally:
        calls["nvmlShutdown"], _ = call("nvmlShutdown", convert=lambda _: None)
    return recording


class _RecordedHandle:
    """Stands for an NVML device handle (an opaque pointer on a real machine)."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<recorded NVML device {self.index}>"


class _MemoryInfo:
    """Mimics ``c_nvmlMemory_t``: the probe reads ``.total`` in bytes."""

    def __init__(self, total: int, free: Optional[int] = None, used: Optional[int] = None) -> None:
        self.total, self.free, self.used = total, free, used


class RecordedNvml:
    """Replays a recording of a real machine's NVML answers, with pynvml's function names.

    Failures are raised as real ``pynvml.NVMLError`` subclasses built from the recorded code, so code
    under test catches exactly what it would catch on the real host. Calls before ``nvmlInit`` or after
    ``nvmlShutdown`` raise ``NVMLError_Uninitialized`` like the real library; ``calls`` logs every call.
    """

    def __init__(self, recording: Dict[str, Any]) -> None:
        if not isinstance(recording, dict) or not isinstance(recording.get("calls"), dict):
            raise ValueError("an NVML recording is a JSON object with a 'calls' object (see record_nvml)")
        if recording.get("format", RECORDING_FORMAT) != RECORDING_FORMAT:
            raise ValueError(f"NVML recording format {recording.get('format')!r} is not {RECORDING_FORMAT}")
        self.recording = recording
        self.calls: List[str] = []
        self._initialized = False
        self._missing = {name for name, entry in recording["calls"].items() if _is_missing(entry)}
        for entry in _all_entries(recording):
            _check_entry(entry)

    def __getattribute__(self, name: str) -> Any:
        # A function recorded as missing must look absent (hasattr False), as on an old pynvml.
        if name.startswith("nvml") and name in object.__getattribute__(self, "_missing"):
            raise AttributeError(f"recorded pynvml has no {name}")
        return object.__getattribute__(self, name)

    @property
    def NVMLError(self) -> type:  # noqa: N802 - mirrors pynvml.NVMLError
        import pynvml  # noqa: PLC0415

        return pynvml.NVMLError

    # ---- plumbing

    def _answer(self, name: str, entry: Optional[Dict[str, Any]], *, needs_init: bool = True) -> Any:
        self.calls.append(name)
        if needs_init and not self._initialized:
            self._raise({"error": "NVML_ERROR_UNINITIALIZED"})
        if entry is None:
            raise LookupError(f"the NVML recording has no result for {name}; re-record it with tools/record_nvml.py")
        if "ok" in entry:
            return entry["ok"]
        self._raise(entry)

    @staticmethod
    def _raise(entry: Dict[str, Any]) -> None:
        import pynvml  # noqa: PLC0415

        code = entry.get("code")
        if code is None:
            code = getattr(pynvml, entry["error"])
        raise pynvml.NVMLError(code)  # pynvml maps the code to its NVMLError_* subclass

    def _device(self, handle: Any) -> Dict[str, Any]:
        if not isinstance(handle, _RecordedHandle):
            self._raise({"error": "NVML_ERROR_INVALID_ARGUMENT"})
        return self.recording.get("devices", [])[handle.index]

    # ---- pynvml's names

    def nvmlInit(self) -> None:  # noqa: N802
        self._answer("nvmlInit", self.recording["calls"].get("nvmlInit"), needs_init=False)
        self._initialized = True

    def nvmlShutdown(self) -> None:  # noqa: N802
        self._answer("nvmlShutdown", self.recording["calls"].get("nvmlShutdown", {"ok": None}))
        self._initialized = False

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return self._answer("nvmlSystemGetDriverVersion", self.recording["calls"].get("nvmlSystemGetDriverVersion"))

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:  # noqa: N802
        name = "nvmlSystemGetCudaDriverVersion_v2"
        return self._answer(name, self.recording["calls"].get(name))

    def nvmlSystemGetCudaDriverVersion(self) -> int:  # noqa: N802
        name = "nvmlSystemGetCudaDriverVersion"
        return self._answer(name, self.recording["calls"].get(name))

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return self._answer("nvmlDeviceGetCount", self.recording["calls"].get("nvmlDeviceGetCount"))

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _RecordedHandle:  # noqa: N802
        devices = self.recording.get("devices", [])
        if not isinstance(index, int) or not 0 <= index < len(devices):
            self.calls.append("nvmlDeviceGetHandleByIndex")
            self._raise({"error": "NVML_ERROR_INVALID_ARGUMENT"})
        self._answer("nvmlDeviceGetHandleByIndex", devices[index].get("nvmlDeviceGetHandleByIndex", {"ok": None}))
        return _RecordedHandle(index)

    def nvmlDeviceGetName(self, handle: Any) -> str:  # noqa: N802
        return self._answer("nvmlDeviceGetName", self._device(handle).get("nvmlDeviceGetName"))

    def nvmlDeviceGetUUID(self, handle: Any) -> str:  # noqa: N802
        return self._answer("nvmlDeviceGetUUID", self._device(handle).get("nvmlDeviceGetUUID"))

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> _MemoryInfo:  # noqa: N802
        value = self._answer("nvmlDeviceGetMemoryInfo", self._device(handle).get("nvmlDeviceGetMemoryInfo"))
        return _MemoryInfo(int(value["total"]), value.get("free"), value.get("used"))

    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> Tuple[int, int]:  # noqa: N802
        value = self._answer(
            "nvmlDeviceGetCudaComputeCapability", self._device(handle).get("nvmlDeviceGetCudaComputeCapability")
        )
        return (int(value[0]), int(value[1]))


def _is_missing(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get("missing") is True


def _all_entries(recording: Dict[str, Any]) -> List[Any]:
    entries = list(recording["calls"].values())
    for device in recording.get("devices", []):
        if not isinstance(device, dict):
            raise ValueError("each entry of an NVML recording's 'devices' is an object of call results")
        entries.extend(device.values())
    return entries


def _check_entry(entry: Any) -> None:
    """Fail at load time, not mid-test, when a hand-edited recording names an error pynvml doesn't know."""
    if not isinstance(entry, dict) or not ({"ok", "error", "code", "missing"} & entry.keys()):
        raise ValueError(f"NVML recording entry {entry!r} is not {{'ok': ...}}, {{'error': ...}} or {{'missing': true}}")
    if "ok" in entry or _is_missing(entry):
        return
    if entry.get("code") is None:
        import pynvml  # noqa: PLC0415

        name = entry.get("error")
        if not (isinstance(name, str) and name.startswith("NVML_ERROR_") and hasattr(pynvml, name)):
            raise ValueError(f"NVML recording names an unknown error {name!r} (expected e.g. NVML_ERROR_UNKNOWN)")


def load_recording(path: "str | Path") -> RecordedNvml:
    """Read a JSON recording (``tests/fixtures/nvml/*.json``) into a replayable NVML."""
    with open(path, encoding="utf-8") as handle:
        return RecordedNvml(json.load(handle))


# ------------------------------------------------------------------------------ driver vs CUDA toolkit


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
