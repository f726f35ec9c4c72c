"""The host's GPUs: the NVML probe (:mod:`.nvml`), which CUDA a driver runs (:mod:`.driver`), and whether a
snapshot's CUDA work can use this host's GPUs through this engine (:mod:`.readiness`).

``nvml`` and ``driver`` import only the standard library (``tools/record_nvml.py`` runs them on bare GPU hosts).
"""
from __future__ import annotations

from .driver import cuda_driver_table, driver_supports_cuda, newest_cuda_for_driver
from .nvml import cuda_version_from_int, probe_gpus

__all__ = ["cuda_driver_table", "cuda_version_from_int", "driver_supports_cuda", "newest_cuda_for_driver",
           "probe_gpus"]
