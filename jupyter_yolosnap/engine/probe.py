"""Run the capture probe inside an image: how ``check`` sees what an image really holds.

The probe package is bind-mounted read-only, the container has no network, and it is removed afterwards
whatever happens (a failed ``run`` would otherwise leave it behind).
"""
from __future__ import annotations

import json
from typing import Any

import requests

from ..snapshot import grammar
from ..exceptions import EngineError
from ..capture.runner import _BOOT, PACKAGE_DIR
from . import labels
from .client import ENGINE_ERRORS, STREAM_ERRORS, explain, timed_out

PROBE_MOUNT = "/opt/yolosnap-probe"


def capture_in_image(client: Any, image: str, python: str = "python3", timeout: int = 300) -> dict:
    """The probe's capture of ``image``'s default interpreter."""
    container = None
    try:
        container = client.containers.create(
            image, [python, "-c", _BOOT, PROBE_MOUNT], network_mode="none", entrypoint=[],
            volumes={PACKAGE_DIR: {"bind": PROBE_MOUNT, "mode": "ro"}},
            labels={labels.ROLE: "probe"}, environment={"HOME": "/tmp"})
        container.start()
        status = _wait(container, image, timeout)
        out = _bounded(container.logs(stdout=True, stderr=False, stream=True), image)
        err = container.logs(stdout=False, stderr=True, tail=20).decode("utf-8", "replace")
    except STREAM_ERRORS as exc:  # the engine refused, went away, or broke the log stream
        raise explain(exc, f"running the capture probe in {image}") from None
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except ENGINE_ERRORS:  # already gone, or the engine with it: the error above says more
                pass
    if status.get("StatusCode") != 0:
        last = (err.strip().splitlines() or ["no output"])[-1][:300]
        raise EngineError(f"the capture probe failed inside {image} ({last}); the image needs a Python >= 3.9 "
                          f"as '{python}'")
    try:
        data = json.loads(out)
    except (ValueError, RecursionError):
        raise EngineError(f"the capture probe inside {image} printed no capture; is '{python}' a Python?") from None
    problem = grammar.shape_problem(data) if isinstance(data, dict) else "not a JSON object"
    if problem:  # bytes from a container are untrusted: an image cannot feed a diff anything odd either
        raise EngineError(f"the capture probe inside {image} printed something that is not a capture ({problem})")
    return data


def _wait(container: Any, image: str, timeout: int) -> dict:
    """The probe's exit status; a probe still running after ``timeout`` seconds is the image's fault, not the
    engine's, so it gets its own line (the container is removed by the caller)."""
    try:
        return container.wait(timeout=timeout)
    except requests.exceptions.RequestException as err:  # a timeout inside the body comes as a ConnectionError
        if not timed_out(err):
            raise
        raise EngineError(f"the capture probe inside {image} did not finish within {timeout} s; does its Python "
                          "start (try: docker run --rm IMAGE python3 -c pass)?") from None


def _bounded(chunks: Any, image: str) -> str:
    """A container's output, refused past the size of the largest manifest (a hostile image could print GBs)."""
    out, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > grammar.MAX_BYTES:
            raise EngineError(f"the capture probe inside {image} printed more than {grammar.MAX_BYTES // 1048576} "
                              "MiB; that is not a capture")
        out.append(chunk)
    return b"".join(out).decode("utf-8", "replace")
