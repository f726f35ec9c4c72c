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
