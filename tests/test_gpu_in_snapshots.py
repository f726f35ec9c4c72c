"""GPU facts flow from NVML (replayed from recordings) into saved snapshots, their tables and diffs."""
from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_yolosnap import service
from jupyter_yolosnap.gpu import probe_gpus
from tests.nvml_replay import load_recording
from jupyter_yolosnap.frontends.render import render_diff, render_list, render_manifest

NVML = Path(__file__).parent / "fixtures" / "nvml"


def on_host(monkeypatch, recording: str) -> None:
    """Make this host's NVML answer as the recorded machine did."""
    replay = load_recording(NVML / recording)
    monkeypatch.setattr(service, "probe_gpus", lambda: probe_gpus(replay))


def test_gpu_host_snapshot_and_driver_update_drift(monkeypatch, project):
    on_host(monkeypatch, "two-a100-driver-535.json")
    saved = service.save("a100-box", project=project)
    gpu = saved.manifest["gpu"]
    assert gpu["status"] == "ok" and gpu["driver_version"] == "535.161.08" and gpu["cuda_driver_version"] == "12.2"
    assert [g["name"] for g in gpu["gpus"]] == ["NVIDIA A100-SXM4-40GB"] * 2
    assert "NVIDIA A100-SXM4-40GB x2 (driver 535.161.08)" in str(render_manifest(service.load("a100-box", project)))
    assert "NVIDIA A100-SXM4-40GB x2" in str(render_list(service.list_snapshots(project), project))

    on_host(monkeypatch, "h100-driver-570.json")  # the machine's driver and GPUs changed
    result = service.diff("a100-box", project=project)
    rows = {(c.section, c.item): (c.old, c.new) for c in result.changes if c.section == "gpu"}
    assert rows == {("gpu", "driver_version"): ("535.161.08", "570.124.06"),
                    ("gpu", "cuda_driver_version"): ("12.2", "12.8"),
                    ("gpu", "devices"): ("NVIDIA A100-SXM4-40GB x2", "NVIDIA H100 80GB HBM3")}
    assert not result.identical and "570.124.06" in str(render_diff(result))


@pytest.mark.parametrize("recording, status", [("no-driver.json", "no-driver"), ("device-error.json", "error")])
def test_no_driver_and_broken_gpu_still_save(monkeypatch, project, recording, status):
    on_host(monkeypatch, recording)
    saved = service.save("box", project=project)
    assert saved.manifest["gpu"]["status"] == status
    assert service.load("box", project)["gpu"]["status"] == status  # validates against the schema


def test_the_wheels_gpu_architectures_are_captured_and_judged(monkeypatch, project, tmp_path):
    """A venv whose torch is torch 2.14.1+cu130's real ``version.py`` and a ``libtorch_cuda.so`` with real fat-
    binary headers (libcurand's, rebuilt sparse): the capture reads its architectures without importing it, the
    manifest keeps them, and the GPU-fit verdict uses them."""
    import shutil
    import sysconfig

    from jupyter_yolosnap.gpu import fit

    from .conftest import make_venv
    from .test_fatbin import CURAND, curand_like

    python = make_venv(tmp_path / "venv")
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(tmp_path / "venv"),
                                                       "platbase": str(tmp_path / "venv")}))
    torch = purelib / "torch"
    (torch / "lib").mkdir(parents=True)
    shutil.copy(Path(__file__).parent / "fixtures" / "torch" / "version-2.14.1-cu130.py", torch / "version.py")
    (torch / "__init__.py").write_text("raise SystemExit('the capture must not import torch')\n")
    curand_like(torch / "lib" / "libtorch_cuda.so")
    info = purelib / "torch-2.14.1+cu130.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.14.1+cu130\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")
    on_host(monkeypatch, "two-a100-driver-535.json")
    service.save("cu130", str(python), project)
    loaded = service.load("cu130", project)  # validated against the schema on the way in
    expected = CURAND["architectures"]["sm"] + CURAND["architectures"]["ptx"]
    assert loaded["cuda"]["torch"]["cuda"] == "13.0" and loaded["cuda"]["torch"]["arch_list"] == expected
    found = fit.verdict(loaded, probe_gpus(load_recording(NVML / "two-a100-driver-535.json")))
    assert found.kind == fit.FORWARD and "cuda-compat-13-0" in found.line
