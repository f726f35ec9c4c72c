"""Kernel records read back as untrusted files: only the tool's own shape counts; nothing else is followed or kept.

No engine: the records folder is a real folder under a temporary JUPYTER_RUNTIME_DIR."""
from __future__ import annotations

import json
import os
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_yolosnap.runtime import kernel_records
from jupyter_yolosnap.runtime.containers import KERNEL_ID, OWNER_HOST, OWNER_PID, owner_alive


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    return tmp_path / "runtime" / kernel_records.FOLDER


def _body(kernel_id: str) -> dict:
    return {"kernel_id": kernel_id, "kernel_name": "yolosnap-x", "container_id": "c" * 64, "snapshot": "x",
            "project": "/p", "digest": "", "gpus": "auto", "cwd": "/p", "scratch": None,
            "connection_info": {"key": "secret", "shell_port": 1}}


def test_a_record_round_trips_with_its_owner_and_mode_0600(runtime):
    kernel_id = str(uuid.uuid4())
    written = kernel_records.write(kernel_id, _body(kernel_id))
    assert written == runtime / f"{kernel_id}.json" and (written.stat().st_mode & 0o777) == 0o600
    assert (runtime.stat().st_mode & 0o777) == 0o700
    ((entry, body),) = kernel_records.records()
    assert entry == written and body["owner"]["pid"] == str(os.getpid()) and kernel_records.owner_alive(body)
    kernel_records.remove(kernel_id)
    assert kernel_records.records() == [] and not list(runtime.iterdir())  # no temp file left either


@pytest.mark.parametrize("kernel_id", ["../../etc/passwd", "--x", "a;rm -rf ~", "x\ny", "", "ABCDEF", "..",
                                       str(uuid.uuid4()).upper(), str(uuid.uuid4()) + "/x"])
def test_a_kernel_id_that_is_not_one_names_no_path(runtime, kernel_id):
    assert kernel_records.path(kernel_id) is None
    assert kernel_records.write(kernel_id, _body(kernel_id)) is None and not kernel_records.exists(kernel_id)
    kernel_records.remove(kernel_id)  # nothing to remove, nothing raised
    assert not runtime.exists()


@pytest.mark.parametrize("content", [b"", b"{", b"[" * 200_000, b"{}" + b" " * kernel_records.MAX_BYTES,
                                     json.dumps({"kernel_id": "other"}).encode(), b"\xff\xfe", b"[]", b"null"])
def test_junk_bodies_are_not_records(runtime, content):
    runtime.mkdir(parents=True)
    entry = runtime / f"{uuid.uuid4()}.json"
    entry.write_bytes(content)
    assert kernel_records.records() == [(entry, None)]


def test_links_and_odd_names_are_not_records(runtime, tmp_path):
    runtime.mkdir(parents=True)
    kernel_id = str(uuid.uuid4())
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({**_body(kernel_id), "owner": {"pid": "1", "host": "h"}}))
    (runtime / f"{kernel_id}.json").symlink_to(outside)
    (runtime / "not-an-id.json").write_text(outside.read_text())
    assert all(body is None for _, body in kernel_records.records())
    assert not kernel_records.exists(kernel_id)  # a link does not keep a container alive


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["kernel_name", "container_id", "snapshot", "cwd", "connection_info", "owner"]),
       value=st.one_of(st.none(), st.integers(), st.lists(st.text(max_size=5), max_size=3),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))
def test_a_field_of_the_wrong_type_makes_no_record(runtime, field, value):
    runtime.mkdir(parents=True, exist_ok=True)
    kernel_id = str(uuid.uuid4())
    body = {**_body(kernel_id), "owner": {"pid": "1", "host": "h", "start": ""}, field: value}
    entry = runtime / f"{kernel_id}.json"
    entry.write_text(json.dumps(body))
    try:
        assert kernel_records.read(entry) is None
    finally:
        entry.unlink()


def test_a_recorded_kernel_container_outlives_its_dead_owner(runtime):
    kernel_id = str(uuid.uuid4())
    dead = {OWNER_PID: str(2 ** 22 + 1), OWNER_HOST: os.uname().nodename, KERNEL_ID: kernel_id}
    assert not owner_alive(dead)  # no record: the sweep removes it
    kernel_records.write(kernel_id, _body(kernel_id))
    assert owner_alive(dead)  # a record: the next server adopts it
    assert not owner_alive({**dead, KERNEL_ID: "../" + kernel_id})
