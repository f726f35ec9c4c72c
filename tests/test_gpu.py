"""The GPU/driver probe, replayed from recorded NVML answers so it runs on machines without a GPU."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is a dependency of jupyter_yolosnap")

from jupyter_yolosnap import gpu  # noqa: E402
from jupyter_yolosnap.gpu import driver, driver_supports_cuda, probe_gpus  # noqa: E402
from tests.nvml_replay import RecordedNvml, load_recording, record_nvml  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "nvml"
H100_UUID = "GPU-5a1c3e8f-2b7d-4c96-a0e4-9f3d61b27c58"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------- replayed probes


def test_h100_driver_570():
    nvml = load_recording(FIXTURES / "h100-driver-570.json")
    assert probe_gpus(nvml) == {
        "driver_version": "570.124.06",
        "cuda_driver_version": "12.8",
        "gpus": [
            {
                "index": 0,
                "name": "NVIDIA H100 80GB HBM3",
                "uuid": H100_UUID,
                "memory_total_mib": 81559,
                "compute_capability": "9.0",
            }
        ],
        "status": "ok",
        "detail": None,
    }
    assert nvml.calls[0] == "nvmlInit" and nvml.calls[-1] == "nvmlShutdown"


def test_two_a100_driver_535():
    result = probe_gpus(load_recording(FIXTURES / "two-a100-driver-535.json"))
    assert result == {
        "driver_version": "535.161.08",
        "cuda_driver_version": "12.2",
        "gpus": [
            {
                "index": 0,
                "name": "NVIDIA A100-SXM4-40GB",
                "uuid": "GPU-0e6f2a4b-7c31-58d2-9b1a-3c4d5e6f7a80",
                "memory_total_mib": 40960,
                "compute_capability": "8.0",
            },
            {
                "index": 1,
                "name": "NVIDIA A100-SXM4-40GB",
                "uuid": "GPU-b3d8c1e2-4f5a-6b7c-8d9e-0f1a2b3c4d5e",
                "memory_total_mib": 40960,
                "compute_capability": "8.0",
            },
        ],
        "status": "ok",
        "detail": None,
    }


def test_no_driver_is_a_normal_result():
    nvml = load_recording(FIXTURES / "no-driver.json")
    assert probe_gpus(nvml) == {
        "driver_version": None,
        "cuda_driver_version": None,
        "gpus": [],
        "status": "no-driver",
        "detail": "nvmlInit failed: NVML Shared Library Not Found (NVMLError_LibraryNotFound)",
    }
    assert nvml.calls == ["nvmlInit"]  # no shutdown after a failed init


def test_device_error_keeps_what_was_read():
    nvml = load_recording(FIXTURES / "device-error.json")
    assert probe_gpus(nvml) == {
        "driver_version": "570.124.06",
        "cuda_driver_version": "12.8",
        "gpus": [
            {
                "index": 0,
                "name": "NVIDIA H100 80GB HBM3",
                "uuid": H100_UUID,
                "memory_total_mib": None,
                "compute_capability": "9.0",
            }
        ],
        "status": "error",
        "detail": "GPU 0: nvmlDeviceGetMemoryInfo failed: GPU is lost (NVMLError_GpuIsLost)",
    }
    assert nvml.calls[-1] == "nvmlShutdown"


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_every_fixture_says_where_it_came_from(name):
    data = fixture(name)
    assert data["provenance"]
    if "probe" in data:  # written by tools/record_nvml.py: the replay must match the live probe it saw
        assert probe_gpus(load_recording(FIXTURES / name)) == data["probe"]


def test_driver_not_loaded_at_init_is_no_driver():
    nvml = RecordedNvml({"calls": {"nvmlInit": {"error": "NVML_ERROR_DRIVER_NOT_LOADED"}}})
    result = probe_gpus(nvml)
    assert result["status"] == "no-driver" and result["gpus"] == []
    assert "NVMLError_DriverNotLoaded" in result["detail"]


def test_the_real_pynvml_without_a_driver_does_not_raise():
    result = probe_gpus()
    if result["status"] == "ok":  # pragma: no cover - only on a machine with an NVIDIA driver
        pytest.skip("this machine has an NVIDIA driver")
    assert result["status"] == "no-driver"
    assert result["gpus"] == [] and result["driver_version"] is None
    assert result["detail"]


def test_pynvml_not_importable_is_no_driver(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    result = probe_gpus()
    assert result["status"] == "no-driver"
    assert "nvidia-ml-py" in result["detail"]


# ------------------------------------------------------------------------------- replay fidelity


def test_recorded_errors_are_real_pynvml_subclasses():
    nvml = load_recording(FIXTURES / "no-driver.json")
    with pytest.raises(pynvml.NVMLError_LibraryNotFound):
        nvml.nvmlInit()
    lost = load_recording(FIXTURES / "device-error.json")
    lost.nvmlInit()
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        lost.nvmlDeviceGetMemoryInfo(lost.nvmlDeviceGetHandleByIndex(0))


def test_error_by_name_only_and_by_code_only():
    by_name = RecordedNvml({"calls": {"nvmlInit": {"error": "NVML_ERROR_UNKNOWN"}}})
    with pytest.raises(pynvml.NVMLError_Unknown):
        by_name.nvmlInit()
    by_code = RecordedNvml({"calls": {"nvmlInit": {"code": pynvml.NVML_ERROR_NO_PERMISSION}}})
    with pytest.raises(pynvml.NVMLError_NoPermission):
        by_code.nvmlInit()


def test_calls_before_init_raise_uninitialized():
    nvml = load_recording(FIXTURES / "h100-driver-570.json")
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()


def test_bad_recordings_fail_at_load():
    with pytest.raises(ValueError, match="unknown error"):
        RecordedNvml({"calls": {"nvmlInit": {"error": "NVML_ERROR_NOPE"}}})
    with pytest.raises(ValueError, match="'calls'"):
        RecordedNvml({"devices": []})
    with pytest.raises(ValueError, match="format"):
        RecordedNvml({"format": 99, "calls": {}})


def test_incomplete_recording_still_shuts_down():
    data = fixture("h100-driver-570.json")
    del data["devices"][0]["nvmlDeviceGetName"]
    nvml = RecordedNvml(data)
    with pytest.raises(LookupError, match="nvmlDeviceGetName"):
        probe_gpus(nvml)
    assert nvml.calls[-1] == "nvmlShutdown"


def test_missing_v2_falls_back_to_plain_cuda_version():
    data = fixture("two-a100-driver-535.json")
    data["calls"]["nvmlSystemGetCudaDriverVersion_v2"] = {"missing": True}
    nvml = RecordedNvml(data)
    assert not hasattr(nvml, "nvmlSystemGetCudaDriverVersion_v2")
    assert probe_gpus(nvml)["cuda_driver_version"] == "12.2"
    assert "nvmlSystemGetCudaDriverVersion" in nvml.calls


def test_v2_function_not_found_falls_back():
    data = fixture("two-a100-driver-535.json")
    data["calls"]["nvmlSystemGetCudaDriverVersion_v2"] = {"error": "NVML_ERROR_FUNCTION_NOT_FOUND"}
    result = probe_gpus(RecordedNvml(data))
    assert result["status"] == "ok" and result["cuda_driver_version"] == "12.2"


def test_both_cuda_version_calls_failing_is_an_error():
    data = fixture("two-a100-driver-535.json")
    data["calls"]["nvmlSystemGetCudaDriverVersion_v2"] = {"error": "NVML_ERROR_NOT_SUPPORTED"}
    data["calls"]["nvmlSystemGetCudaDriverVersion"] = {"error": "NVML_ERROR_NOT_SUPPORTED"}
    result = probe_gpus(RecordedNvml(data))
    assert result["status"] == "error" and result["cuda_driver_version"] is None
    assert len(result["gpus"]) == 2
    assert "nvmlSystemGetCudaDriverVersion_v2 failed" in result["detail"]


def test_old_pynvml_bytes_are_decoded():
    class BytesNvml(RecordedNvml):
        """pynvml < 11.5 returned bytes from the string getters."""

        def nvmlSystemGetDriverVersion(self):
            return super().nvmlSystemGetDriverVersion().encode()

        def nvmlDeviceGetName(self, handle):
            return super().nvmlDeviceGetName(handle).encode()

        def nvmlDeviceGetUUID(self, handle):
            return super().nvmlDeviceGetUUID(handle).encode()

    data = fixture("h100-driver-570.json")
    expected = probe_gpus(RecordedNvml(data))
    assert probe_gpus(BytesNvml(data)) == expected
    assert isinstance(expected["gpus"][0]["name"], str)


def test_failed_shutdown_is_noted_not_an_error():
    data = fixture("h100-driver-570.json")
    data["calls"]["nvmlShutdown"] = {"error": "NVML_ERROR_UNKNOWN"}
    result = probe_gpus(RecordedNvml(data))
    assert result["status"] == "ok"
    assert result["detail"] == "nvmlShutdown failed: Unknown Error (NVMLError_Unknown)"


def test_record_then_replay_round_trips():
    for name in ("h100-driver-570.json", "two-a100-driver-535.json", "device-error.json", "no-driver.json"):
        data = fixture(name)
        recorded = record_nvml(RecordedNvml(data))
        assert recorded["calls"] == data["calls"], name
        assert recorded["devices"] == data["devices"], name
        assert probe_gpus(RecordedNvml(recorded)) == probe_gpus(RecordedNvml(data)), name


def test_cuda_version_from_int():
    assert gpu.cuda_version_from_int(12080) == "12.8"
    assert gpu.cuda_version_from_int(11080) == "11.8"
    assert gpu.cuda_version_from_int(13000) == "13.0"
    assert gpu.cuda_version_from_int(0) is None


def test_importing_gpu_does_not_import_pynvml():
    code = "import sys, jupyter_yolosnap.gpu; print('pynvml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_record_tool_runs_standalone(tmp_path):
    out = tmp_path / "rec.json"
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "record_nvml.py"), "--no-torch", "-o", str(out)],
        cwd=tmp_path,  # not the repo: the tool must find gpu.py on its own
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.read_text())
    assert data["provenance"].startswith("recorded by tools/record_nvml.py")
    assert data["torch"] is None
    assert probe_gpus(RecordedNvml(data)) == data["probe"]


# ------------------------------------------------------------------------------- driver vs CUDA


@pytest.mark.parametrize("cuda", ["12.8", "12.1", "11.8"])
def test_570_runs_older_or_equal_cuda(cuda):
    ok, reason = driver_supports_cuda("570.124.06", cuda)
    assert ok, reason


def test_535_runs_12_4_through_minor_version_compatibility():
    ok, reason = driver_supports_cuda("535.54.03", "12.4")
    assert ok
    assert "minor-version compatibility" in reason


def test_470_does_not_run_12_1():
    ok, reason = driver_supports_cuda("470.256.02", "12.1")
    assert not ok
    assert "530.30.02" in reason and ">= 525" in reason


def test_525_does_not_run_13_0():
    ok, reason = driver_supports_cuda("525.60.13", "13.0")
    assert not ok
    assert ">= 580" in reason


def test_unknown_cuda_asks_for_a_table_update():
    ok, reason = driver_supports_cuda("570.124.06", "99.0")
    assert not ok
    assert "unknown" in reason and "update" in reason


def test_patch_level_cuda_is_accepted():
    assert driver_supports_cuda("550.54.14", "12.4.1")[0]


def test_newest_cuda_for_driver():
    assert gpu.newest_cuda_for_driver("570.124.06") == "12.8"
    assert gpu.newest_cuda_for_driver("535.161.08") == "12.2"
    assert gpu.newest_cuda_for_driver("470.256.02") is None


@pytest.mark.parametrize(
    "driver, cuda, message",
    [
        ("abc", "12.1", "driver version 'abc'"),
        ("", "12.1", "driver version ''"),
        (570, "12.1", "driver version 570"),
        ("570.124.06", "twelve", "CUDA version 'twelve'"),
        ("570.124.06", "12", "CUDA version '12'"),
        ("570.124.06", 12080, "CUDA version 12080"),
    ],
)
def test_bad_versions_raise_value_error(driver, cuda, message):
    with pytest.raises(ValueError, match=message):
        driver_supports_cuda(driver, cuda)


def test_compat_table_is_data_with_its_source():
    table = gpu.cuda_driver_table()
    assert table["source"].startswith("NVIDIA") and table["updated"]
    assert table["toolkit_driver"]["12.8"] == "570.26"
    assert table["toolkit_driver"]["13.1"] == "590.44.01"
    assert table["minor_version_compat_min_driver"] == {"11": "450.80.02", "12": "525", "13": "580"}
    # Each newer toolkit shipped with a newer driver; a typo would break "runs every older CUDA".
    rows = sorted((driver._cuda_tuple(c), driver._driver_tuple(d)) for c, d in table["toolkit_driver"].items())
    assert [d for _, d in rows] == sorted(d for _, d in rows)
