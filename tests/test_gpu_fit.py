"""The GPU-fit verdict (``gpu/fit.py``): the snapshot's CUDA and wheel architectures against the host's driver
and GPUs, as NVML reports them (recordings in NVML's shapes; no GPU is here)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from jupyter_yolosnap.gpu import fit, probe_gpus
from jupyter_yolosnap.gpu.readiness import gpu_readiness

from .nvml_replay import RecordedNvml

NVML = Path(__file__).parent / "fixtures" / "nvml"
CU128 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]  # torch's cu128 wheels
CU126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "compute_90"]


def host(recording: str = "two-a100-driver-535.json", **changes) -> dict:
    found = probe_gpus(RecordedNvml(json.loads((NVML / recording).read_text())))
    return {**found, **changes}


def gpus(*pairs: tuple[str, str]) -> list[dict]:
    return [{"index": i, "name": name, "compute_capability": cc} for i, (name, cc) in enumerate(pairs)]


def snapshot(cuda: str | None, arch_list: list[str] | None = None) -> dict:
    torch = {"version": "2.9.0", "cuda": cuda, **({"arch_list": arch_list} if arch_list is not None else {})}
    return {"name": "yolo", "cuda": {"torch": torch} if cuda else {}}


def test_runs_natively_names_the_architecture_each_gpu_uses():
    found = fit.verdict(snapshot("12.1", CU126), host())  # driver 535 shipped with 12.2
    assert found.kind == fit.NATIVE and found.runs
    assert found.line == "GPU fit: runs natively: CUDA 12.1 build on driver 535.161.08; NVIDIA A100-SXM4-40GB (8.0): sm_80"


def test_minor_version_compatibility_says_what_is_limited():
    found = fit.verdict(snapshot("12.8", CU128), host())  # 535 < 570.26, >= 525
    assert found.kind == fit.MINOR and found.runs
    assert "minor-version compatibility" in found.line and "PTX JIT" in found.line and "sm_80" in found.line


def test_a_newer_major_on_a_data_centre_gpu_needs_the_forward_compatibility_package():
    found = fit.verdict(snapshot("13.0", CU128), host())
    assert found.kind == fit.FORWARD and not found.runs
    assert "install cuda-compat-13-0 in the image, or update the driver" in found.line
    assert "data-centre GPU (NVIDIA A100-SXM4-40GB)" in found.line


def test_a_newer_major_on_a_consumer_gpu_will_not_run():
    rtx = host(gpus=gpus(("NVIDIA GeForce RTX 4090", "8.9")))
    found = fit.verdict(snapshot("13.0", CU128), rtx)
    assert found.kind == fit.NO and not found.runs
    assert "driver 535.161.08 is too old for CUDA 13.0" in found.line
    assert "forward compatibility needs a data-centre GPU, this host has NVIDIA GeForce RTX 4090 (8.9)" in found.line


def test_a_gpu_the_wheel_has_no_code_for_will_not_run_however_new_the_driver():
    pascal = host(gpus=gpus(("Tesla P100-PCIE-16GB", "6.0")))
    found = fit.verdict(snapshot("12.1", CU128), pascal)
    assert found.kind == fit.NO
    assert "Tesla P100-PCIE-16GB (6.0): its compute capability 6.0 is not among the wheel's architectures" in found.line
    assert fit.verdict(snapshot("12.1", CU126), pascal).kind == fit.NATIVE  # the cu126 wheel still has sm_60


def test_ptx_covers_a_newer_gpu_but_not_under_minor_version_compatibility():
    future = host(gpus=gpus(("NVIDIA H200", "9.0")))
    ptx_only = ["sm_75", "sm_80", "compute_80"]
    found = fit.verdict(snapshot("12.1", ptx_only), future)
    assert found.kind == fit.NATIVE and "runs PTX compute_80, compiled at first launch" in found.line
    minor = fit.verdict(snapshot("12.8", ptx_only), future)
    assert minor.kind == fit.NO and "PTX of a newer toolkit does not JIT" in minor.line


@pytest.mark.parametrize("arch_list, capability, expected", [
    (["sm_80"], 86, ("sass", "sm_80")),            # same major, newer minor
    (["sm_86"], 80, (None, None)),                 # never backwards
    (["sm_90a"], 90, ("sass", "sm_90a")),          # arch-specific: only itself
    (["sm_90a"], 100, (None, None)),
    (["sm_80", "compute_80"], 90, ("ptx", "compute_80")),
    (["sm_100"], 120, (None, None)),               # another major
    (["junk", "sm_x", ""], 80, (None, None)),
])
def test_binary_and_ptx_compatibility(arch_list, capability, expected):
    how, detail = fit.arch_fit(arch_list, capability)
    assert how == expected[0] and (expected[1] is None or detail == expected[1])


def test_no_driver_cpu_snapshot_and_unrecorded_architectures():
    assert fit.verdict(snapshot(None), host("no-driver.json")).kind == fit.CPU
    none = fit.verdict(snapshot("12.1"), host("no-driver.json"))
    assert none.kind == fit.NO and "no usable NVIDIA driver" in none.line and "CPU only" in none.line
    old = fit.verdict(snapshot("12.1"), host())  # a manifest saved before arch_list was recorded
    assert old.kind == fit.NATIVE and "the wheel's architectures were not recorded" in old.line
    assert "2x NVIDIA A100-SXM4-40GB (8.0)" in old.line
    assert fit.verdict(snapshot("12.1"), host(gpus=[])).kind == fit.NO


def test_readiness_puts_the_verdict_first():
    lines = gpu_readiness(snapshot("12.1", CU126), host(), False)
    assert lines[0].startswith("GPU fit: runs natively") and "nvidia-container-toolkit" in lines[1]
    assert gpu_readiness(snapshot(None), host(), False) == [
        "GPU fit: CPU-only snapshot: no CUDA build recorded, no GPU needed"]


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA A100-SXM4-40GB", True), ("NVIDIA H100 80GB HBM3", True), ("NVIDIA H200", True), ("Tesla T4", True),
    ("NVIDIA L4", True), ("NVIDIA L40S", True), ("NVIDIA B200", True), ("NVIDIA GH200 480GB", True),
    ("Tesla V100-SXM2-16GB", True), ("NVIDIA GeForce RTX 4090", False), ("NVIDIA GeForce GTX 1080", False),
    ("NVIDIA RTX A6000", False), ("Quadro RTX 8000", False), ("NVIDIA TITAN V", False), ("", False),
])
def test_which_gpus_are_data_centre_gpus(name, expected):
    assert fit.is_datacenter(name) is expected


TEXT = st.text(max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), TEXT, st.sampled_from(["11.8", "12.1", "12.8", "13.0", "14.2", "1.2.3"])),
       st.one_of(st.none(), st.lists(st.one_of(TEXT, st.sampled_from(CU128 + CU126)), max_size=8)),
       st.one_of(TEXT, st.sampled_from(["535.161.08", "570.124.06", "590.1"])),
       st.lists(st.fixed_dictionaries({"name": st.one_of(st.none(), TEXT),
                                       "compute_capability": st.one_of(st.none(), TEXT,
                                                                       st.sampled_from(["8.0", "9.0", "12.1"]))}),
                max_size=3))
def test_any_facts_give_one_line_never_an_error(cuda, arch_list, driver, devices):
    data = snapshot(cuda, arch_list) if cuda else snapshot(None)
    found = fit.verdict(copy.deepcopy(data), {"status": "ok", "driver_version": driver, "gpus": devices})
    assert found.kind in (fit.NATIVE, fit.MINOR, fit.FORWARD, fit.NO, fit.CPU)
    assert found.line.startswith("GPU fit: ") and "\n" not in found.line
