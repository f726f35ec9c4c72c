"""The runtime's option parsing and pre-start checks, without an engine (GPU facts from NVML recordings)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from jupyter_yolosnap.exceptions import RuntimeFailure
from jupyter_yolosnap.gpu import probe_gpus
from tests.nvml_replay import RecordedNvml
from jupyter_yolosnap.runtime import metrics
from jupyter_yolosnap.runtime.containers import (auto_gpus, driver_warning, gpu_plan, gpu_requests, parse_env,
                                                 parse_volumes, workspace)

NVML = Path(__file__).parent / "fixtures" / "nvml"


def host(recording: str) -> dict:
    return probe_gpus(RecordedNvml(json.loads((NVML / recording).read_text())))


def manifest(cuda: str | None) -> dict:
    return {"name": "yolo", "cuda": {"torch": {"version": "2.9.0", "cuda": cuda}} if cuda else {}}


def test_driver_warning_before_start():
    h100 = host("h100-driver-570.json")  # driver 570: CUDA up to 12.8
    warning = driver_warning(manifest("13.0"), "all", h100)
    assert warning.startswith("warning: snapshot 'yolo': GPU fit: needs the forward-compatibility package: ")
    assert "cuda-compat-13-0" in warning and "--gpus none" in warning and "\n" not in warning
    assert driver_warning(manifest("12.4"), "all", h100) is None          # covered by the driver
    assert driver_warning(manifest("12.4"), "auto", host("two-a100-driver-535.json")) is None  # minor compat
    assert driver_warning(manifest("13.0"), None, h100) == warning         # the default is auto
    assert driver_warning(manifest("13.0"), "none", h100) is None         # no GPUs asked for
    assert driver_warning(manifest(None), "all", h100) is None            # CPU-only snapshot
    assert driver_warning(manifest("13.0"), "all", host("no-driver.json")) is None  # the engine says it


class Engine:
    """Just what ``engine_gpu_runtime`` reads of an engine: ``info()["Runtimes"]``."""

    def __init__(self, *runtimes: str):
        self.runtimes = {name: {"path": name} for name in ("runc", *runtimes)}

    def info(self) -> dict:
        return {"Runtimes": self.runtimes}


def test_gpus_auto_with_gpus_the_engine_cannot_give():
    h100 = host("h100-driver-570.json")
    resolved, warning = auto_gpus("auto", Engine(), h100)
    assert resolved == "none" and warning == (
        "warning: this host has 1 GPU(s) but the Docker engine has no NVIDIA runtime: running on the CPU; install the "
        "NVIDIA Container Toolkit and restart the engine, or pass --gpus none to silence this")
    assert auto_gpus(None, Engine(), host("two-a100-driver-535.json"))[1].startswith("warning: this host has 2 GPU(s)")
    assert auto_gpus(None, Engine("nvidia"), h100) == ("all", None)
    assert auto_gpus("auto", Engine(), host("no-driver.json")) == ("none", None)  # no GPUs: nothing to say
    assert auto_gpus("all", Engine(), h100) == ("all", None)  # asked for: the engine's own error, at the start
    assert gpu_requests(None, Engine(), h100) == []
    # one line, not two: the CUDA-driver warning is moot when the container runs on the CPU anyway
    assert gpu_plan(manifest("13.0"), None, Engine(), h100) == ("none", warning)
    assert gpu_plan(manifest("13.0"), None, Engine("nvidia"), h100)[1].startswith("warning: snapshot 'yolo': GPU fit: ")
    assert gpu_plan(manifest("13.0"), "none", None, None) == ("none", None)  # no probe, no engine call


def test_env_and_volume_options(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert parse_env(["A=1", "B=", "WANDB_MODE"]) == {"A": "1", "B": "", "WANDB_MODE": "offline"}
    for bad in ("=1", "1A=2", "A-B=3"):
        with pytest.raises(RuntimeFailure, match="expected KEY=VALUE"):
            parse_env([bad])
    (tmp_path / "data").mkdir()
    assert parse_volumes(["data:/data:ro"], str(tmp_path)) == {str(tmp_path / "data"): {"bind": "/data",
                                                                                        "mode": "ro"}}
    with pytest.raises(RuntimeFailure, match="does not exist on this machine"):
        parse_volumes(["missing:/m"], str(tmp_path))
    with pytest.raises(RuntimeFailure, match="absolute CONTAINER path"):
        parse_volumes(["data:relative"], str(tmp_path))
    with pytest.raises(RuntimeFailure, match="the working directory is /"):
        workspace("/")  # the host root is never mounted


def test_gpu_option_forms():
    assert gpu_requests("none", None) == []
    assert gpu_requests("all", None)[0]["Count"] == -1
    assert gpu_requests("2", None)[0]["Count"] == 2
    assert gpu_requests("device=0,1", None)[0]["DeviceIDs"] == ["0", "1"]
    with pytest.raises(RuntimeFailure, match="--gpus 'many' is not understood"):
        gpu_requests("many", None)


def test_metrics_table_of_yolo_results(tmp_path):
    run = tmp_path / "runs" / "train" / "exp2"
    run.mkdir(parents=True)
    (run / "results.csv").write_text(
        "               epoch,      train/box_loss,   metrics/precision,                lr/pg0\n"
        "                   0,             0.11864,             0.00105,              0.070027\n"
        "                   1,            0.095512,              0.5123,              0.040060\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "results.csv").write_text("epoch,x\n0,1\n")  # skipped
    found = metrics.find_written(tmp_path, since=0)
    assert found == run / "results.csv"
    table = metrics.read(found)
    assert table.x == "epoch" and table.xs == [0, 1] and list(table.series) == [
        "train/box_loss", "metrics/precision", "lr/pg0"]
    assert table.last_row() == "epoch 1: train/box_loss=0.09551, metrics/precision=0.5123, lr/pg0=0.04006"
    assert metrics.plot_png(table).startswith(b"\x89PNG")
    (tmp_path / "metrics.csv").write_text("name,value\nloss,abc\n")
    assert metrics.read(tmp_path / "metrics.csv") is None  # no numeric x column: not a metrics table
    assert metrics.find_written(tmp_path / "runs", since=found.stat().st_mtime + 60) is None  # older than the run


def test_tensorboard_refusals_come_before_anything_is_made(tmp_path):
    from jupyter_yolosnap.runtime import tensorboard
    from jupyter_yolosnap.runtime.containers import ContainerSpec

    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    data.mkdir()
    spec = ContainerSpec(role="run", snapshot="yolo", cwd=str(work),
                         volumes=parse_volumes([f"{data}:/data"], str(work)))
    assert tensorboard.seen_from_container(str(work / "runs"), spec) == str(work / "runs")
    assert tensorboard.seen_from_container(str(data / "tb"), spec) == "/data/tb"
    with_board = {"name": "yolo", "packages": [{"name": "tensorboard", "version": "2.20.0"}]}
    with pytest.raises(RuntimeFailure, match="not inside the working directory or a -v mount"):
        tensorboard.start(None, "image", with_board, str(tmp_path / "elsewhere"), spec)
    assert not (tmp_path / "elsewhere").exists()
    if importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("this environment has tensorboard, so a snapshot without it is still served")
    with pytest.raises(RuntimeFailure, match="needs the tensorboard package in snapshot 'yolo'"):
        tensorboard.start(None, "image", {"name": "yolo", "packages": []}, "runs/tb", spec)
    assert not (work / "runs").exists()


def test_run_command_line_needs_the_command_after_double_dash():
    from jupyter_yolosnap.frontends.commands import parse
    from jupyter_yolosnap.exceptions import UsageFailure

    args = parse(["run", "yolo", "--gpus", "none", "-e", "A=1", "--", "python", "train.py", "--project", "x"],
                 raising=True)
    assert (args.gpus, args.env, args.argv) == ("none", ["A=1"], ["python", "train.py", "--project", "x"])
    for bad, said in ((["run", "yolo", "python", "train.py"], "run needs the command after --"),
                      (["run", "yolo", "--"], "run needs the command after --"),
                      (["run", "yolo", "--network", "bridge", "--", "true"], "invalid choice: 'bridge'"),
                      (["list", "--", "x"], "unrecognized arguments: -- x")):
        with pytest.raises(UsageFailure, match=said):
            parse(bad, raising=True)


def test_pulled_pickles_rebuild_plain_data_only():
    import collections
    import datetime
    import decimal
    import fractions
    import io
    import os
    import pickle

    import numpy as np

    from jupyter_yolosnap.runtime.remote_kernel import NotPlainData, SafeUnpickler

    def load(value):
        return SafeUnpickler(io.BytesIO(pickle.dumps(value, protocol=4))).load()

    plain = {"list": [1, 2.5, "x", b"y", None, True, 1j], "tuple": (1,), "set": {1}, "frozen": frozenset({2}),
             "bytearray": bytearray(b"z"), "slice": slice(1, 2), "range": range(3),
             "ordered": collections.OrderedDict(a=1), "default": collections.defaultdict(list, k=[1]),
             "deque": collections.deque([1]), "counter": collections.Counter("ab"),
             "when": datetime.datetime(2024, 1, 2, 3, tzinfo=datetime.timezone.utc), "day": datetime.date(2024, 1, 2),
             "time": datetime.time(1), "delta": datetime.timedelta(2), "decimal": decimal.Decimal("1.1"),
             "fraction": fractions.Fraction(1, 3), "scalar": np.float64(1.5), "dtype": np.dtype("f4")}
    assert load(plain) == plain
    arrays = {"grid": np.arange(6).reshape(2, 3), "objects": np.array(["a", None], dtype=object),
              "records": np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])}
    assert all((load(arrays)[k] == v).all() for k, v in arrays.items())

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo never",))

    for refused, named in ((Evil(), "posix.system"), (collections.defaultdict(os.getcwd), "posix.getcwd"),
                           (np.array([Evil()], dtype=object), "posix.system")):
        with pytest.raises(NotPlainData) as found:
            load(refused)
        assert found.value.qualname == named
