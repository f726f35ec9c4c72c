"""Before running a snapshot's image: can this host's driver run its CUDA, and can the engine pass GPUs at all?"""
from __future__ import annotations

from typing import Any



def snapshot_cuda(manifest: dict) -> str | None:
    """The CUDA version the snapshot's packages were built against: torch's, TensorFlow's, or the CUDA runtime
    wheel's. A system ``nvcc`` alone does not make a snapshot need a GPU."""
    cuda = manifest.get("cuda") or {}
    for key in ("torch", "tensorflow"):
        version = (cuda.get(key) or {}).get("cuda")
        if version:
            return str(version)
    for wheel in cuda.get("wheels") or []:
        if wheel["name"].startswith("nvidia-cuda-runtime"):
            return ".".join(wheel["version"].split(".")[:2])
    return None


def engine_gpu_runtime(client: Any) -> bool:
    """Whether the engine knows the NVIDIA runtime (nvidia-container-toolkit); without it ``--gpus`` fails.

    An engine that does not answer is an ``EngineError`` saying so, never "no NVIDIA runtime"."""
    from ..engine.client import ENGINE_ERRORS, explain

    try:
        info = client.info()
    except ENGINE_ERRORS as err:
        raise explain(err, "asking the engine for its runtimes") from None
    return "nvidia" in (info.get("Runtimes") or {})


def gpu_readiness(manifest: dict, host_gpu: dict, has_gpu_runtime: bool) -> list[str]:
    """One line per fact: the GPU-fit verdict (what the snapshot needs against what this host has, see
    :mod:`.fit`), and whether the engine can give containers GPUs at all."""
    from .fit import verdict

    fit = verdict(manifest, host_gpu)
    lines = [fit.line]
    if fit.kind != "CPU only" and not has_gpu_runtime:
        lines.append("the Docker engine has no NVIDIA runtime: containers cannot use GPUs until "
                     "nvidia-container-toolkit is installed and the engine restarted")
    return lines
