"""GPU telemetry (``gpu/telemetry.py``) without a GPU: NVML answers replayed from recordings in NVML's own shapes
(``tests/fixtures/nvml/two-h100-training.json``), the engine's ``DeviceRequests`` in the engine's own JSON.
"""
from __future__ import annotations

import copy
import csv
import json
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from jupyter_yolosnap.gpu import telemetry
from jupyter_yolosnap.runtime import metrics

from .nvml_replay import RecordedNvml

FIXTURES = Path(__file__).parent / "fixtures" / "nvml"
TRAINING = json.loads((FIXTURES / "two-h100-training.json").read_text())
UUID1 = TRAINING["devices"][1]["nvmlDeviceGetUUID"]["ok"]


def replay(recording: dict = TRAINING) -> RecordedNvml:
    return RecordedNvml(copy.deepcopy(recording))


# --- which GPUs a container has -------------------------------------------------------------------------------
def gpu_request(**fields) -> dict:
    """One entry of ``HostConfig.DeviceRequests`` as the engine reports it after ``--gpus``."""
    return {"Driver": "", "Count": 0, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}, **fields}


@pytest.mark.parametrize("requests, expected", [
    ([gpu_request(Count=-1)], ["0", "1"]),                              # --gpus all
    ([gpu_request(Count=1)], ["0"]),                                    # --gpus 1
    ([gpu_request(Count=8)], ["0", "1"]),                               # more than the host has
    ([gpu_request(DeviceIDs=["1"])], ["1"]),                            # --gpus device=1
    ([gpu_request(DeviceIDs=[UUID1, "0", "0"])], [UUID1, "0"]),         # by UUID, a repeat once
    ([gpu_request(Count=-1, Capabilities=[["compute", "utility"]])], []),  # not a GPU request
    (None, []), ([], []), ("all", []), ([None, 7, "x"], []),
    ([gpu_request(Count=True)], []), ([gpu_request(DeviceIDs=[None, {"x": 1}, False])], []),
])
def test_selectors_follow_the_engines_device_requests(requests, expected):
    assert telemetry.selectors(requests, host_count=2) == expected


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                              max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(JSON, st.integers(min_value=0, max_value=16))
def test_selectors_never_fail_on_any_engine_answer(requests, count):
    found = telemetry.selectors(requests, count)
    assert isinstance(found, list) and all(isinstance(gpu, str) for gpu in found)


# --- the run's sampler ----------------------------------------------------------------------------------------
def rows_of(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def sample_until(sampler: telemetry.Sampler, samples: int) -> None:
    """Run the sampler until it took ``samples`` samples (or stopped by itself), then stop it."""
    sampler.start()
    done = threading.Event()
    for _ in range(2000):
        if sampler.samples >= samples or sampler._thread is None or not sampler._thread.is_alive():
            break
        done.wait(0.005)
    sampler.stop()


def test_a_run_samples_its_gpus_into_gpu_csv(tmp_path):
    path = tmp_path / "run.gpu.csv"
    sampler = telemetry.Sampler(["0", UUID1], path, nvml=replay(), interval=0.001)
    sample_until(sampler, 4)
    rows = rows_of(path)
    assert list(rows[0]) == list(telemetry.COLUMNS)
    assert len(rows) == 2 * sampler.samples and sampler.samples >= 4
    assert [r["gpu"] for r in rows[:2]] == ["0", UUID1] and rows[1]["uuid"] == UUID1
    third = rows[4]  # the third sample of GPU 0, as recorded
    assert (third["utilization_pct"], third["memory_used_mib"], third["temperature_c"], third["power_w"]) == \
        ("97", "61344", "63", "689.1")
    assert third["memory_total_mib"] == "81559"
    assert sampler.peak_memory_mib == 61344 and sampler.note is None
    assert sampler.summary() == f"peak 61,344 MiB of 81,559 MiB GPU memory, {sampler.samples} sample(s)"
    assert [float(r["time_s"]) for r in rows] == sorted(float(r["time_s"]) for r in rows)


def test_nvml_lost_mid_run_stops_sampling_with_one_note(tmp_path):
    lost = copy.deepcopy(TRAINING)
    lost["devices"][1]["telemetry"][2]["nvmlDeviceGetUtilizationRates"] = {"error": "NVML_ERROR_GPU_IS_LOST"}
    path = tmp_path / "run.gpu.csv"
    sampler = telemetry.Sampler(["0", "1"], path, nvml=replay(lost), interval=0.001)
    sample_until(sampler, 10)
    assert sampler.samples == 2 and len(rows_of(path)) == 4  # the two whole samples before the loss are kept
    assert sampler.note.startswith("GPU telemetry stopped after 2 sample(s): ") and "the run goes on" in sampler.note
    assert "\n" not in sampler.note and sampler.summary().endswith(sampler.note)


def test_no_driver_or_unknown_gpus_write_nothing_and_say_so(tmp_path):
    no_driver = json.loads((FIXTURES / "no-driver.json").read_text())
    for gpus, nvml, says in ((["0"], replay(no_driver), "NVML did not start"),
                             (["GPU-nope"], replay(), "does not know the container's GPUs ['GPU-nope']"),
                             (["7"], replay(), "does not know the container's GPUs ['7']")):
        path = tmp_path / "x.gpu.csv"
        sampler = telemetry.Sampler(gpus, path, nvml=nvml, interval=0.001)
        sample_until(sampler, 1)
        assert not path.exists() and sampler.samples == 0
        assert sampler.note.startswith("GPU telemetry off: ") and says in sampler.note, sampler.note
        assert sampler.summary() == sampler.note


def test_a_figure_the_board_does_not_report_is_left_empty(tmp_path):
    no_power = copy.deepcopy(TRAINING)
    for sample in no_power["devices"][0]["telemetry"]:
        sample["nvmlDeviceGetPowerUsage"] = {"error": "NVML_ERROR_NOT_SUPPORTED"}
    path = tmp_path / "run.gpu.csv"
    sample_until(telemetry.Sampler(["0"], path, nvml=replay(no_power), interval=0.001), 2)
    rows = rows_of(path)
    assert rows and all(r["power_w"] == "" and r["utilization_pct"] for r in rows)


def test_a_scrape_reads_each_containers_gpus_once_and_shuts_nvml_down():
    nvml = replay()
    found, note = telemetry.read_containers(nvml, [[gpu_request(DeviceIDs=["1"])], None, [gpu_request(Count=-1)]])
    assert note is None
    assert [[(s.gpu, s.uuid, s.utilization_pct) for s in one] for one in found] == \
        [[("1", UUID1, 0.0)], [], [("0", TRAINING["devices"][0]["nvmlDeviceGetUUID"]["ok"], 0.0), ("1", UUID1, 0.0)]]
    assert nvml.calls[0] == "nvmlInit" and nvml.calls[-1] == "nvmlShutdown"
    assert nvml.calls.count("nvmlDeviceGetUtilizationRates") == 2  # GPU 1 is read once for both containers
    assert telemetry.read_containers(replay(), [None, []]) == ([[], []], None)  # no GPU container: NVML untouched
    assert telemetry.read_containers(None, [[gpu_request(Count=1)]]) == ([[]], "nvidia-ml-py is not installed")
    no_driver = json.loads((FIXTURES / "no-driver.json").read_text())
    found, note = telemetry.read_containers(replay(no_driver), [[gpu_request(Count=1)]])
    assert found == [[]] and note.startswith("NVML did not start")


# --- plotted under the losses ---------------------------------------------------------------------------------
def test_gpu_csv_is_plotted_under_the_loss_curves(tmp_path):
    path = tmp_path / "run.gpu.csv"
    sample_until(telemetry.Sampler(["0", "1"], path, nvml=replay(), interval=0.001), 4)
    gpu = telemetry.read_csv(path)
    assert set(gpu) == {"0", "1"} and len(gpu["0"]["memory_used_mib"]) >= 4
    results = tmp_path / "results.csv"
    results.write_text("  epoch,  train/box_loss,  metrics/mAP_0.5\n0, 0.9, 0.1\n1, 0.7, 0.3\n")
    table = metrics.read(results)
    both, losses_only, gpu_only = metrics.plot_png(table, gpu), metrics.plot_png(table), metrics.plot_png(None, gpu)
    for png in (both, losses_only, gpu_only):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert height(both) > height(losses_only)  # one more row: the GPU panels
    assert metrics.plot_png(None, None) is None and metrics.plot_png(None, {}) is None


def height(png: bytes) -> int:
    return int.from_bytes(png[20:24], "big")  # the IHDR chunk's height


# --- wired into a run -----------------------------------------------------------------------------------------
class _Created:
    """What ``script._sampler`` reads of the created container: the engine's inspect data."""

    def __init__(self, requests):
        self.attrs = {"HostConfig": {"DeviceRequests": requests}}


def test_a_gpu_run_samples_the_containers_gpus_beside_its_log(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from jupyter_yolosnap import gpu
    from jupyter_yolosnap.frontends import render
    from jupyter_yolosnap.gpu.nvml import probe_gpus

    monkeypatch.setattr(gpu, "probe_gpus", lambda: probe_gpus(replay()))
    monkeypatch.setattr(telemetry, "open_nvml", replay)
    monkeypatch.setattr(telemetry, "INTERVAL_S", 0.001)
    log = tmp_path / ".yolosnap-runs" / "yolo-20261204-120000-001.log"
    csv_path = log.with_suffix(".gpu.csv")
    assert telemetry.for_container(_Created(None), csv_path) is None
    assert telemetry.for_container(_Created([]), csv_path) is None and telemetry.for_container(object(), csv_path) is None
    assert telemetry.for_container(_Created([gpu_request(Count=-1, Capabilities=[["utility"]])]), csv_path) is None
    sampler = telemetry.for_container(_Created([gpu_request(Count=-1)]), csv_path)
    assert list(sampler.gpus) == ["0", "1"] and sampler.path == log.with_suffix(".gpu.csv")
    sampler.interval = 0.001
    sample_until(sampler, 3)
    assert sampler.path.exists() and sampler.samples >= 3
    done = SimpleNamespace(argv=("python", "train.py"), exit_code=0, seconds=1.0, log=log, image="img",
                           metrics=None, tensorboard=None, gpu_csv=sampler.path, gpu_summary=sampler.summary(),
                           provenance=())
    text = str(render.render_run(done))
    assert f"peak 61,344 MiB of 81,559 MiB GPU memory, {sampler.samples} sample(s) ({sampler.path})" in text
