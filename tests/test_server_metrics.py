"""``GET /yolosnap/metrics``: Prometheus text for running snapshot containers and their GPUs.

The collector is fed containers in docker-py's shape (``labels``, ``short_id``, ``attrs`` with the engine's
``HostConfig.DeviceRequests``) and NVML replayed from a recording, since no GPU is here; the endpoint itself runs
in a real Jupyter Server against a real container on the real engine (no GPUs: its count, no GPU series).
"""
from __future__ import annotations

import copy
import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (jp_fetch, jp_serverapp and what they need)

from jupyter_yolosnap.engine import labels
from jupyter_yolosnap.server import metrics

from .nvml_replay import RecordedNvml
from .server_support import jp_server_config  # noqa: F401  (fixture)

RECORDING = json.loads((Path(__file__).parent / "fixtures" / "nvml" / "two-h100-training.json").read_text())
UUIDS = [d["nvmlDeviceGetUUID"]["ok"] for d in RECORDING["devices"]]


@dataclass
class Container:
    """What the collector reads of a docker-py container."""
    short_id: str
    labels: dict
    device_requests: list | None = None
    status: str = "running"
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        self.attrs = {"HostConfig": {"DeviceRequests": self.device_requests}}


def gpus(**fields) -> list:
    return [{"Driver": "", "Count": 0, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}, **fields}]


def role(snapshot: str, name: str) -> dict:
    return {labels.SNAPSHOT: snapshot, labels.ROLE: name}


def samples(text: bytes) -> dict:
    """``{(metric, frozenset(labels)): value}`` as Prometheus' own parser reads the exposition."""
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def test_each_containers_gpus_are_exposed_with_its_labels():
    containers = [Container("aaa111", role("yolo-v5", "run"), gpus(Count=-1)),
                  Container("bbb222", role("yolo-v5", "kernel"), gpus(DeviceIDs=[UUIDS[1]])),
                  Container("ccc333", role("yolo-v5", "tensorboard")),
                  Container("ddd444", role("old", "run"), gpus(Count=1), status="exited")]
    nvml = RecordedNvml(copy.deepcopy(RECORDING))
    text, note = metrics.scrape(lambda: containers, lambda: nvml)
    assert note is None
    found = samples(text)
    assert found[("yolosnap_containers", frozenset({"snapshot": "yolo-v5", "role": "run"}.items()))] == 1
    assert found[("yolosnap_containers", frozenset({"snapshot": "yolo-v5", "role": "kernel"}.items()))] == 1
    assert not any(key[0] == "yolosnap_containers" and ("snapshot", "old") in key[1] for key in found)  # exited
    run_gpu1 = frozenset({"snapshot": "yolo-v5", "role": "run", "container": "aaa111", "gpu": "1",
                          "uuid": UUIDS[1]}.items())
    kernel_gpu = frozenset({"snapshot": "yolo-v5", "role": "kernel", "container": "bbb222", "gpu": UUIDS[1],
                            "uuid": UUIDS[1]}.items())
    first = RECORDING["devices"][1]["telemetry"][0]
    assert found[("yolosnap_gpu_memory_used_bytes", run_gpu1)] == first["nvmlDeviceGetMemoryInfo"]["ok"]["used"]
    assert found[("yolosnap_gpu_memory_total_bytes", run_gpu1)] == first["nvmlDeviceGetMemoryInfo"]["ok"]["total"]
    assert found[("yolosnap_gpu_power_watts", run_gpu1)] == first["nvmlDeviceGetPowerUsage"]["ok"] / 1000
    assert found[("yolosnap_gpu_temperature_celsius", run_gpu1)] == 33
    assert ("yolosnap_gpu_utilization_percent", kernel_gpu) in found
    assert sum(1 for key in found if key[0] == "yolosnap_gpu_utilization_percent") == 3  # run: 2 GPUs, kernel: 1
    assert found[("yolosnap_gpu_telemetry_up", frozenset())] == 1
    assert nvml.calls.count("nvmlInit") == 1 and nvml.calls[-1] == "nvmlShutdown"


def test_without_nvml_the_containers_are_still_counted_and_telemetry_is_down():
    containers = [Container("aaa111", role("x", "run"), gpus(Count=1))]
    text, note = metrics.scrape(lambda: containers, lambda: None)
    found = samples(text)
    assert note == "nvidia-ml-py is not installed"
    assert found[("yolosnap_containers", frozenset({"snapshot": "x", "role": "run"}.items()))] == 1
    assert found[("yolosnap_gpu_telemetry_up", frozenset())] == 0
    assert not any(key[0].startswith("yolosnap_gpu_memory") for key in found)
    # CPU containers only: NVML is not even asked
    asked = []
    text, note = metrics.scrape(lambda: [Container("c", role("x", "kernel"))], lambda: asked.append(1))
    assert note is None and not asked and samples(text)[("yolosnap_gpu_telemetry_up", frozenset())] == 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=40))
def test_hostile_label_values_stay_label_values(snapshot, role_name):
    """A container's labels are anyone's: newlines, quotes, braces and '#' in them must not add a metric line."""
    containers = [Container("aaa111", role(snapshot, role_name))]
    text, _ = metrics.scrape(lambda: containers, lambda: None)
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    assert set(families) == {"yolosnap_containers", "yolosnap_gpu_utilization_percent",
                             "yolosnap_gpu_memory_used_bytes", "yolosnap_gpu_memory_total_bytes",
                             "yolosnap_gpu_temperature_celsius", "yolosnap_gpu_power_watts",
                             "yolosnap_gpu_telemetry_up"}
    [only] = families["yolosnap_containers"].samples
    assert only.labels == {"snapshot": snapshot, "role": role_name} and only.value == 1


# --- the endpoint, in a real server, over a real container -----------------------------------------------------
@pytest.fixture
def jp_root_dir(tmp_path):
    return tmp_path


@pytest.mark.engine
def test_the_endpoint_needs_a_login_and_counts_a_real_container(jp_fetch, jp_asyncio_loop, engine, base_image):
    name = f"metrics-{uuid.uuid4().hex[:6]}"
    container = engine.containers.run(base_image.id, ["sleep", "60"], detach=True, network_mode="none",
                                      labels={**role(name, "run"), labels.OWNER_PID: str(os.getpid()),
                                              labels.OWNER_HOST: socket.gethostname()})
    try:
        async def get(**kwargs):
            return await jp_fetch("yolosnap", "metrics", raise_error=False, **kwargs)

        refused = jp_asyncio_loop.run_until_complete(get(headers={"Authorization": ""}))
        assert refused.code == 403
        assert "\n" not in json.loads(refused.body)["message"]
        response = jp_asyncio_loop.run_until_complete(get())
        assert response.code == 200 and response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        found = samples(response.body)
        assert found[("yolosnap_containers", frozenset({"snapshot": name, "role": "run"}.items()))] == 1
        assert found[("yolosnap_gpu_telemetry_up", frozenset())] == 1  # no GPU container: nothing to miss
    finally:
        container.remove(force=True)
    after = samples(jp_asyncio_loop.run_until_complete(get()).body)
    assert not any(("snapshot", name) in key[1] for key in after)
