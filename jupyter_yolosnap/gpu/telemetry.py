"""GPU telemetry of a running container: utilisation, memory used, temperature and power, read through NVML.

Which GPUs a container has is read from the engine's own record of it (``HostConfig.DeviceRequests``, what
``--gpus`` became), so the figures are those of the container's GPUs, not of the whole host. A run samples
them about once a second into ``gpu.csv`` beside its log (:class:`Sampler`); the Jupyter server reads the same
figures at scrape time for Prometheus (``server/metrics.py``).

NVML can go away mid-run (a GPU that falls off the bus, a driver reload): the sampler then stops with one note
and the run goes on. Standard library only at import time; pynvml is loaded when sampling starts, and any
object with pynvml's function names can stand in for it (the tests replay recordings).
"""
from __future__ import annotations

import csv
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .nvml import _text

#: The columns of ``gpu.csv``, one row per GPU per sample.
COLUMNS = ("time_s", "gpu", "uuid", "utilization_pct", "memory_used_mib", "memory_total_mib", "temperature_c",
           "power_w")
#: What ``gpu.csv`` plots: column, title.
PLOTTED = (("utilization_pct", "GPU utilisation %"), ("memory_used_mib", "GPU memory used (MiB)"),
           ("temperature_c", "GPU temperature (°C)"), ("power_w", "GPU power (W)"))
INTERVAL_S = 1.0
_MIB = 1024 * 1024
_TEMPERATURE_GPU = 0  # pynvml.NVML_TEMPERATURE_GPU


def open_nvml() -> Any:
    """The real pynvml module, or None when nvidia-ml-py is not installed (then there is nothing to sample)."""
    try:
        import pynvml  # noqa: PLC0415 - lazy: keeps the run's import cheap on machines without GPUs
    except ImportError:
        return None
    return pynvml


# --------------------------------------------------------------------------------------------- which GPUs


def selectors(device_requests: Any, host_count: int) -> list[str]:
    """The GPUs a container was given, as NVML can look them up: indices (``"0"``) or UUIDs (``"GPU-..."``).

    ``device_requests`` is the engine's ``HostConfig.DeviceRequests`` (a list of ``{"Driver", "Count",
    "DeviceIDs", "Capabilities"}``); only requests with the ``gpu`` capability count. ``Count: -1`` is every
    GPU of the host, ``Count: N`` the first N (what the NVIDIA runtime gives), ``DeviceIDs`` those named.
    Anything else in it (not a list, odd values) gives no GPUs rather than an error: it is the engine's
    record, read only to label figures.
    """
    found: list[str] = []
    for request in device_requests if isinstance(device_requests, list) else []:
        if not isinstance(request, dict):
            continue
        capabilities = request.get("Capabilities") or []
        if not any(isinstance(c, list) and "gpu" in c for c in capabilities):
            continue
        ids, count = request.get("DeviceIDs"), request.get("Count")
        if isinstance(ids, list) and ids:
            found += [str(i) for i in ids if isinstance(i, (str, int)) and not isinstance(i, bool)]
        elif isinstance(count, int) and not isinstance(count, bool):
            found += [str(i) for i in range(host_count if count < 0 else min(count, host_count))]
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------------------------- one sample


@dataclass
class GpuSample:
    """One GPU's figures at one moment; a figure this GPU does not report (power on some boards) is None."""

    gpu: str
    uuid: str | None
    utilization_pct: float | None
    memory_used_mib: float | None
    memory_total_mib: float | None
    temperature_c: float | None
    power_w: float | None

    def row(self, seconds: float) -> list[Any]:
        return [f"{seconds:.1f}", self.gpu, self.uuid or "", *("" if v is None else _round(v) for v in (
            self.utilization_pct, self.memory_used_mib, self.memory_total_mib, self.temperature_c, self.power_w))]


def _round(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def handle_of(nvml: Any, selector: str) -> Any:
    """NVML's handle for ``"0"`` (an index) or ``"GPU-..."`` (a UUID); raises pynvml's NVMLError when unknown."""
    if selector.isdigit():
        return nvml.nvmlDeviceGetHandleByIndex(int(selector))
    return nvml.nvmlDeviceGetHandleByUUID(selector)


def read_sample(nvml: Any, handle: Any, selector: str) -> GpuSample:
    """The figures of one GPU. "Not supported" for one figure leaves it None; any other NVML error is raised
    (the GPU is lost, the driver went away): the caller decides to stop."""
    not_supported = getattr(nvml, "NVMLError_NotSupported", ())

    def ask(call: str, *args: Any) -> Any:
        try:
            return getattr(nvml, call)(handle, *args)
        except not_supported:
            return None

    utilization = ask("nvmlDeviceGetUtilizationRates")
    memory = ask("nvmlDeviceGetMemoryInfo")
    temperature = ask("nvmlDeviceGetTemperature", _TEMPERATURE_GPU)
    power = ask("nvmlDeviceGetPowerUsage")  # milliwatts
    uuid = ask("nvmlDeviceGetUUID")
    return GpuSample(
        gpu=selector, uuid=None if uuid is None else _text(uuid),
        utilization_pct=None if utilization is None else float(utilization.gpu),
        memory_used_mib=None if memory is None else int(memory.used) / _MIB,
        memory_total_mib=None if memory is None else int(memory.total) / _MIB,
        temperature_c=None if temperature is None else float(temperature),
        power_w=None if power is None else int(power) / 1000)


def read_containers(nvml: Any, device_requests: Sequence[Any]) -> tuple[list[list[GpuSample]], str | None]:
    """One sample of each container's GPUs (``device_requests``: each container's ``HostConfig.DeviceRequests``),
    NVML started once and shut down around it (a Prometheus scrape): per container the samples of its GPUs,
    and a note when NVML could not be read (then every list is empty). A GPU NVML cannot read is left out."""
    empty: list[list[GpuSample]] = [[] for _ in device_requests]
    wanted = [r for r in device_requests if r]
    if not wanted:
        return empty, None
    if nvml is None:
        return empty, "nvidia-ml-py is not installed"
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        return empty, f"NVML did not start ({err})"
    try:
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as err:
            return empty, f"NVML cannot count the GPUs ({err})"
        read: dict[str, GpuSample | None] = {}
        found = []
        for requests in device_requests:
            samples = []
            for gpu in selectors(requests, count):
                if gpu not in read:
                    try:
                        read[gpu] = read_sample(nvml, handle_of(nvml, gpu), gpu)
                    except nvml.NVMLError:
                        read[gpu] = None
                if read[gpu] is not None:
                    samples.append(read[gpu])
            found.append(samples)
        return found, None
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass


# --------------------------------------------------------------------------------------------- a run's sampler


@dataclass
class Sampler:
    """Samples ``gpus`` every ``interval`` seconds into the CSV at ``path`` while a run lasts (a thread).

    ``with Sampler(...) as sampler:`` around the run. Without NVML (no driver, no nvidia-ml-py) nothing is
    written and ``note`` says so; NVML failing mid-run ends the sampling with ``note`` set, never the run.
    """

    gpus: Sequence[str]
    path: Path
    nvml: Any = None
    interval: float = INTERVAL_S
    clock: Callable[[], float] = time.monotonic
    samples: int = 0
    peak_memory_mib: float | None = None
    memory_total_mib: float | None = None
    note: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> "Sampler":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        nvml = self.nvml if self.nvml is not None else open_nvml()
        if nvml is None:
            self.note = "GPU telemetry off: nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            return
        self.nvml = nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as err:
            self.note = f"GPU telemetry off: NVML did not start ({err})"
            return
        try:
            handles = [(gpu, handle_of(nvml, gpu)) for gpu in self.gpus]
        except nvml.NVMLError as err:
            self.note = f"GPU telemetry off: NVML does not know the container's GPUs {list(self.gpus)} ({err})"
            self._shutdown()
            return
        self._thread = threading.Thread(target=self._loop, args=(handles,), daemon=True, name="yolosnap-gpu")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 3 * self.interval))
            self._thread = None
            self._shutdown()

    def _shutdown(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError:
            pass

    def _loop(self, handles: list[tuple[str, Any]]) -> None:
        began = self.clock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            while True:
                seconds = self.clock() - began
                try:
                    rows = [read_sample(self.nvml, h, gpu) for gpu, h in handles]
                except self.nvml.NVMLError as err:
                    self.note = f"GPU telemetry stopped after {self.samples} sample(s): {err}; the run goes on"
                    return
                for sample in rows:
                    writer.writerow(sample.row(seconds))
                    self._track(sample)
                handle.flush()
                self.samples += 1
                if self._stop.wait(self.interval):
                    return

    def _track(self, sample: GpuSample) -> None:
        if sample.memory_used_mib is not None and (self.peak_memory_mib is None
                                                   or sample.memory_used_mib > self.peak_memory_mib):
            self.peak_memory_mib = sample.memory_used_mib
            self.memory_total_mib = sample.memory_total_mib

    def summary(self) -> str | None:
        """``peak 61,344 MiB of 81,559 MiB GPU memory, 42 samples`` (None before any sample), then the note."""
        parts = []
        if self.samples:
            peak = "no memory figure" if self.peak_memory_mib is None else \
                f"peak {self.peak_memory_mib:,.0f} MiB" + (f" of {self.memory_total_mib:,.0f} MiB"
                                                           if self.memory_total_mib else "") + " GPU memory"
            parts.append(f"{peak}, {self.samples} sample(s)")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts) or None


def for_container(container: Any, path: Path) -> "Sampler | None":
    """A sampler of the GPUs the engine gave ``container`` (its ``HostConfig.DeviceRequests``), writing ``path``;
    None for a CPU container. Used around a run and around an ``%%in_env`` cell."""
    from . import probe_gpus

    requests = ((getattr(container, "attrs", None) or {}).get("HostConfig") or {}).get("DeviceRequests")
    if not requests:
        return None
    gpus = selectors(requests, len(probe_gpus().get("gpus") or []))
    return Sampler(gpus, Path(path), interval=INTERVAL_S) if gpus else None


# --------------------------------------------------------------------------------------------- reading gpu.csv


def read_csv(path: str | Path) -> dict[str, dict[str, list[float]]]:
    """``gpu.csv`` as ``{gpu: {"time_s": [...], column: [...]}}`` for plotting; an unreadable row is skipped."""
    series: dict[str, dict[str, list[float]]] = {}
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        for row in csv.DictReader(handle):
            gpu = (row.get("gpu") or "").strip()
            if not gpu:
                continue
            columns = series.setdefault(gpu, {name: [] for name in ("time_s", *(c for c, _ in PLOTTED))})
            for name in columns:
                columns[name].append(_number(row.get(name)))
    return series


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan
