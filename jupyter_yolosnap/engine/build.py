"""Build an image from a context folder through docker-py's low-level API, streaming progress.

The classic builder (what docker-py drives) reports ``Step N/M : INSTR`` lines; those become step events and
everything else log events. The image is built untagged: the caller tags it only after ``check`` passed, so a
failed build or a drifting image never leaves a tag behind.
"""
from __future__ import annotations

import re
from collections import deque
from typing import Any

from ..events import Event, Listener, ignore
from ..exceptions import BuildFailed
from .client import explain

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_BUILT = re.compile(r"Successfully built ([0-9a-f]{12,64})")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NOISE = ("Removing intermediate container", "---> Running in")
_LAYER = re.compile(r"^---> ([0-9a-f]{12})$")
TAIL_LINES = 15


def build_image(client: Any, context: str, network_mode: str = "none",
                listener: Listener = ignore, nocache: bool = False) -> str:
    """Build ``context``/Dockerfile; return the new image's id, or raise ``BuildFailed`` with the failing step."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    step_text, image_id, layers = None, None, []
    try:
        stream = client.api.build(path=context, dockerfile="Dockerfile", network_mode=network_mode,
                                  rm=True, forcerm=True, pull=False, decode=True, nocache=nocache)
        for chunk in stream:
            if "error" in chunk:
                detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                _remove_partial(client, layers)
                raise BuildFailed(_failure(detail, step_text, tail), step=step_text, log=list(tail))
            text = chunk.get("stream") or chunk.get("status") or ""
            for line in text.splitlines():
                line = _ANSI.sub("", line).strip()
                if not line or line.startswith(_NOISE):
                    continue
                match = _STEP.match(line)
                if match:
                    step_text = match.group(3)
                    listener(Event("step", step_text, int(match.group(1)), int(match.group(2))))
                    continue
                layer = _LAYER.match(line)
                if layer:
                    layers.append(layer.group(1))
                built = _BUILT.search(line)
                if built:
                    image_id = built.group(1)
                tail.append(line)
                listener(Event("log", line))
            if "aux" in chunk and isinstance(chunk["aux"], dict) and chunk["aux"].get("ID"):
                image_id = chunk["aux"]["ID"]
    except BuildFailed:
        raise
    except Exception as err:
        raise explain(err, "building the image") from None
    if image_id is None:
        raise BuildFailed("the build ended without an image; last lines:\n" + "\n".join(tail), step_text, list(tail))
    return client.images.get(image_id).id  # the full sha256 id, not the short one the stream prints


def _remove_partial(client: Any, layers: list[str]) -> None:
    """Remove the untagged image a failed build stopped at (its unshared parents go with it): no strays."""
    if len(layers) < 2:  # only the base so far
        return
    try:
        client.images.remove(layers[-1], noprune=False)
    except Exception:  # shared with another image, or already gone
        pass


def _failure(detail: str, step: str | None, tail: deque) -> str:
    lowered = detail.lower()
    if (step or "").upper().startswith("FROM"):
        return (f"the base image in '{step}' is not on this machine and could not be pulled ({detail.strip()}); "
                "pass --base IMAGE or --registry-mirror PREFIX")
    if "no space left on device" in lowered:
        return "the Docker engine ran out of disk space during the build; free space (docker system prune) and retry"
    last = "\n".join(f"    {line}" for line in list(tail)[-12:])
    return f"build step failed: {step or '?'}\n  {detail.strip()}\n  last log lines:\n{last}"
