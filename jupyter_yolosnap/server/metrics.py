"""``GET <base_url>/yolosnap/metrics``: the running snapshot containers and their GPUs in Prometheus text format.

What a scrape returns (``prometheus_client``'s exposition; one sample per container and GPU, labels
``snapshot``, ``role`` (kernel, run, tensorboard), ``container`` (short id), ``gpu`` and ``uuid``):

``yolosnap_containers``                  running snapshot containers, by snapshot and role
``yolosnap_gpu_utilization_percent``     the share of time the GPU was busy
``yolosnap_gpu_memory_used_bytes``, ``yolosnap_gpu_memory_total_bytes``
``yolosnap_gpu_temperature_celsius``, ``yolosnap_gpu_power_watts``
``yolosnap_gpu_telemetry_up``            1 when NVML could be read for the containers' GPUs (0: see the log)

The GPUs of a container are those the engine gave it (``HostConfig.DeviceRequests``); everything is read at
scrape time, so nothing samples while nobody scrapes. Authentication follows the server's own ``/metrics``:
required unless the server runs with ``--ServerApp.authenticate_prometheus=False``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from tornado import web

from ..gpu import telemetry
from .handlers import YolosnapHandler

_MIB = 1024 * 1024
LABELS = ["snapshot", "role", "container", "gpu", "uuid"]


class SnapshotCollector:
    """A ``prometheus_client`` collector over the engine's running snapshot containers and NVML, read per scrape.

    ``containers`` lists the running containers (docker-py objects, or anything with ``labels``, ``short_id``
    and ``attrs``); ``nvml`` gives the pynvml module (or a stand-in) or None."""

    def __init__(self, containers: Callable[[], list], nvml: Callable[[], Any] = telemetry.open_nvml):
        self.containers, self.nvml = containers, nvml
        self.note: str | None = None

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from ..engine import labels

        running = [c for c in self.containers() if getattr(c, "status", "running") == "running"]
        requests = [(c.attrs.get("HostConfig") or {}).get("DeviceRequests") for c in running]
        found, self.note = telemetry.read_containers(self.nvml() if any(requests) else None, requests)
        count = GaugeMetricFamily("yolosnap_containers", "Running snapshot containers", labels=["snapshot", "role"])
        tally: dict[tuple[str, str], int] = {}
        for container in running:
            key = (container.labels.get(labels.SNAPSHOT, ""), container.labels.get(labels.ROLE, ""))
            tally[key] = tally.get(key, 0) + 1
        for key, value in sorted(tally.items()):
            count.add_metric(list(key), value)
        yield count
        families = {
            "utilization_pct": GaugeMetricFamily("yolosnap_gpu_utilization_percent",
                                                 "Share of time the container's GPU was busy", labels=LABELS),
            "memory_used_mib": GaugeMetricFamily("yolosnap_gpu_memory_used_bytes", "GPU memory in use",
                                                 labels=LABELS),
            "memory_total_mib": GaugeMetricFamily("yolosnap_gpu_memory_total_bytes", "GPU memory", labels=LABELS),
            "temperature_c": GaugeMetricFamily("yolosnap_gpu_temperature_celsius", "GPU temperature", labels=LABELS),
            "power_w": GaugeMetricFamily("yolosnap_gpu_power_watts", "GPU power draw", labels=LABELS),
        }
        for container, samples in zip(running, found):
            for sample in samples:
                values = [container.labels.get(labels.SNAPSHOT, ""), container.labels.get(labels.ROLE, ""),
                          container.short_id, sample.gpu, sample.uuid or ""]
                for field, family in families.items():
                    value = getattr(sample, field)
                    if value is not None:
                        family.add_metric(values, value * _MIB if field.endswith("_mib") else value)
        yield from families.values()
        up = GaugeMetricFamily("yolosnap_gpu_telemetry_up", "1 when NVML was read for the containers' GPUs")
        up.add_metric([], 0 if self.note else 1)
        yield up


def scrape(containers: Callable[[], list], nvml: Callable[[], Any] = telemetry.open_nvml) -> tuple[bytes, str | None]:
    """One scrape: the exposition text, and why GPU figures are missing (None when NVML answered or no
    container has GPUs)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    collector = SnapshotCollector(containers, nvml)
    registry.register(collector)
    return generate_latest(registry), collector.note


def snapshot_containers() -> list:
    """The engine's snapshot containers, running or not: the collector counts the running ones (an engine
    error is an ``EngineError``: 503)."""
    from ..runtime import registry

    return registry.labelled()


class MetricsHandler(YolosnapHandler):
    """``GET /yolosnap/metrics``: Prometheus text (``prometheus_client.CONTENT_TYPE_LATEST``), read at scrape time."""

    async def get(self) -> None:
        if self.settings.get("authenticate_prometheus", True) and not self.current_user:
            raise web.HTTPError(403)
        from prometheus_client import CONTENT_TYPE_LATEST

        body, note = await self.blocking(scrape, snapshot_containers)
        if note:
            self.log.warning("yolosnap: GPU telemetry for /yolosnap/metrics: %s", note)
        self.finish(body, set_content_type=CONTENT_TYPE_LATEST)  # APIHandler's finish would say JSON
