"""Record and replay NVML: test support for :mod:`jupyter_yolosnap.gpu.nvml` on machines without a GPU.

:class:`RecordedNvml` replays a JSON recording made by :func:`record_nvml` on a real machine
(``tools/record_nvml.py``, which loads this file by path), raising the same ``pynvml.NVMLError`` subclasses the
real library would. Standard library only at import time.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple

from jupyter_yolosnap.gpu.nvml import _text

RECORDING_FORMAT = 1





def _error_entry(err: BaseException, pynvml: ModuleType) -> Dict[str, Any]:
    """A failed call as JSON: the NVML error code and its constant name (for people reading fixtures)."""
    code = getattr(err, "value", None)
    names = sorted(n for n in dir(pynvml) if n.startswith("NVML_ERROR_") and getattr(pynvml, n) == code)
    return {"error": names[0] if names else None, "code": code, "message": str(err)}


def record_nvml(nvml: Any = None, samples: int = 0, interval: float = 1.0) -> Dict[str, Any]:
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
            if samples:
                device["_handle"] = handle
        for _ in range(samples):  # telemetry (``samples``): what the run sampler reads, ``interval`` s apart
            for device in recording["devices"]:
                if "_handle" not in device:
                    continue
                handle = device["_handle"]
                device.setdefault("telemetry", []).append({
                    "nvmlDeviceGetUtilizationRates": call("nvmlDeviceGetUtilizationRates", handle,
                                                          convert=lambda u: {"gpu": int(u.gpu), "memory": int(u.memory)})[0],
                    "nvmlDeviceGetMemoryInfo": call("nvmlDeviceGetMemoryInfo", handle,
                                                    convert=lambda m: {"total": int(m.total), "used": int(m.used)})[0],
                    "nvmlDeviceGetTemperature": call("nvmlDeviceGetTemperature", handle, 0, convert=int)[0],
                    "nvmlDeviceGetPowerUsage": call("nvmlDeviceGetPowerUsage", handle, convert=int)[0],
                })
            time.sleep(interval)
        for device in recording["devices"]:
            device.pop("_handle", None)
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


class _Utilization:
    """Mimics ``c_nvmlUtilization_t``: percentages of time the GPU and its memory were busy."""

    def __init__(self, gpu: int, memory: int) -> None:
        self.gpu, self.memory = gpu, memory


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
        self._cursors: Dict[int, int] = {}  # device index -> its telemetry sample now
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
        device = self._device(handle)
        if device.get("telemetry") and handle.index in self._cursors:  # during sampling: that sample's memory
            value = self._sample(handle, "nvmlDeviceGetMemoryInfo")
        else:
            value = self._answer("nvmlDeviceGetMemoryInfo", device.get("nvmlDeviceGetMemoryInfo"))
        return _MemoryInfo(int(value["total"]), value.get("free"), value.get("used"))

    # ---- telemetry: a device's "telemetry" list holds one object of call results per sample; the sample
    # moves on at each nvmlDeviceGetUtilizationRates (the first call of a sample) and stays on the last one.

    @property
    def NVMLError_NotSupported(self) -> type:  # noqa: N802 - mirrors pynvml's subclass
        import pynvml  # noqa: PLC0415

        return pynvml.NVMLError_NotSupported

    def _sample(self, handle: Any, name: str, advance: bool = False) -> Any:
        device = self._device(handle)
        samples = device.get("telemetry") or []
        if not samples:
            return self._answer(name, None)
        cursor = self._cursors.get(handle.index, -1)
        if advance:
            cursor = self._cursors[handle.index] = min(cursor + 1, len(samples) - 1)
        return self._answer(name, samples[max(cursor, 0)].get(name))

    def nvmlDeviceGetHandleByUUID(self, uuid: Any) -> _RecordedHandle:  # noqa: N802
        self.calls.append("nvmlDeviceGetHandleByUUID")
        for index, device in enumerate(self.recording.get("devices", [])):
            if device.get("nvmlDeviceGetUUID", {}).get("ok") == _text(uuid):
                return _RecordedHandle(index)
        self._raise({"error": "NVML_ERROR_NOT_FOUND"})

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:  # noqa: N802
        value = self._sample(handle, "nvmlDeviceGetUtilizationRates", advance=True)
        return _Utilization(int(value["gpu"]), int(value["memory"]))

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:  # noqa: N802
        return int(self._sample(handle, "nvmlDeviceGetTemperature"))

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:  # noqa: N802
        return int(self._sample(handle, "nvmlDeviceGetPowerUsage"))

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
        entries.extend(v for k, v in device.items() if k != "telemetry")
        for sample in device.get("telemetry") or []:
            entries.extend(sample.values())
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
