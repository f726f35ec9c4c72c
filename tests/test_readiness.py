"""GPU readiness: the snapshot's CUDA against this host's driver (recorded NVML) and the engine's runtimes."""
from __future__ import annotations

from pathlib import Path

from jupyter_yolosnap.gpu import probe_gpus
from tests.nvml_replay import load_recording
from jupyter_yolosnap.gpu.readiness import gpu_readiness, snapshot_cuda

from .test_manifest import sample

NVML = Path(__file__).parent / "fixtures" / "nvml"


def host(recording: str) -> dict:
    return probe_gpus(load_recording(NVML / recording))


def test_cuda_of_a_snapshot():
    assert snapshot_cuda(sample()) == "13.0"
    cpu = sample(cuda={"torch": {"version": "2.13.0+cpu", "cuda": None}, "nvcc": None, "tensorflow": None})
    assert snapshot_cuda(cpu) is None
    assert gpu_readiness(cpu, host("no-driver.json"), False) == [
        "GPU fit: CPU-only snapshot: no CUDA build recorded, no GPU needed"]


def test_driver_too_old_for_the_snapshots_cuda():
    lines = gpu_readiness(sample(), host("h100-driver-570.json"), True)  # CUDA 13.0 on driver 570 (12.8)
    assert len(lines) == 1 and lines[0].startswith("GPU fit: needs the forward-compatibility package: ")


def test_driver_new_enough_but_engine_without_gpu_runtime():
    cu121 = sample(cuda={"torch": {"version": "2.1.2+cu121", "cuda": "12.1"}, "nvcc": None, "tensorflow": None})
    lines = gpu_readiness(cu121, host("h100-driver-570.json"), False)
    assert lines[0].startswith("GPU fit: runs natively: CUDA 12.1 build on driver 570.124.06")
    assert "no NVIDIA runtime" in lines[1] and "nvidia-container-toolkit" in lines[1]


def test_no_driver_means_cpu_only():
    lines = gpu_readiness(sample(), host("no-driver.json"), False)
    assert "no usable NVIDIA driver" in lines[0] and "CPU only" in lines[0]
