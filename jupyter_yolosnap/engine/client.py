"""One way to reach the engine, the errors a call to it can raise, and one line for each that says what to do."""
from __future__ import annotations

import os
from typing import Any

import docker
import requests
import urllib3

from ..exceptions import EngineError

#: What a docker-py call raises when the engine refuses (``APIError``, ``NotFound``), docker-py itself gives up
#: (``DockerException``), or the engine is gone or silent (requests' ``ConnectionError``, ``ReadTimeout``).
#: ``APIError`` is both a ``DockerException`` and a requests ``HTTPError``; catching this tuple catches all three.
ENGINE_ERRORS: tuple[type[BaseException], ...] = (docker.errors.DockerException,
                                                  requests.exceptions.RequestException)
#: Reading a streamed response (build output, logs, attach) can also fail below requests: urllib3's protocol
#: errors and the socket's own ``OSError`` when dockerd goes away mid-stream.
STREAM_ERRORS: tuple[type[BaseException], ...] = (*ENGINE_ERRORS, urllib3.exceptions.HTTPError, OSError)

_UNREACHABLE = ("connection refused", "no such file or directory", "error while fetching server",
                "connection aborted", "failed to establish")


def explain(err: BaseException, doing: str) -> EngineError:
    """Map docker-py's and requests' errors to one line: what failed while ``doing`` and how to fix it.

    The type says most (an unreachable engine, a timeout, the engine's own 5xx failure, a refusal); the text is
    read only for what no type tells apart (permission on the socket, a full disk).
    """
    text = str(err)
    lowered = text.lower()
    if "permission denied" in lowered:
        return EngineError(f"permission denied on the Docker socket while {doing}; add your user to the 'docker' "
                           "group (then log in again) or run as root")
    if "no space left on device" in lowered:
        return EngineError(f"the Docker engine ran out of disk space while {doing}; free space "
                           "(docker system prune) and try again")
    if timed_out(err):
        return EngineError(f"the Docker engine did not answer in time while {doing}; it may be overloaded or "
                           "hung: check it (docker info) and try again")
    answered = isinstance(err, docker.errors.APIError)  # the engine itself replied: what it could not reach
    if isinstance(err, (requests.exceptions.ConnectionError, ConnectionError)) or (  # is a registry, not itself
            not answered and any(s in lowered for s in _UNREACHABLE)):
        return unreachable(doing)
    explanation = str(getattr(err, "explanation", None) or text).strip().splitlines() or [type(err).__name__]
    if isinstance(err, docker.errors.APIError) and err.is_server_error():
        return EngineError(f"the Docker engine failed while {doing} ({err.status_code}: {explanation[-1][:300]}); "
                           "try again, and if it repeats read the engine's log (journalctl -u docker)")
    return EngineError(f"the Docker engine refused {doing}: {explanation[-1][:300]}")


def unreachable(doing: str) -> EngineError:
    """The line for an engine that does not answer at all."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return EngineError(f"cannot reach the Docker engine at {host} while {doing}; start it "
                       "(scripts/engine-up.sh, or: sudo systemctl start docker) and try again")


def timed_out(err: BaseException) -> bool:
    """A read that waited past the client's timeout. A connect timeout is an unreachable engine instead; and
    requests reports a timeout inside a streamed body as a ``ConnectionError`` that only its text tells apart."""
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return False
    return isinstance(err, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError)) or \
        "read timed out" in str(err).lower()


def connect(timeout: int = 120) -> Any:
    """A docker-py client that has answered a ping."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (*ENGINE_ERRORS, OSError) as err:  # OSError: a socket path docker-py could not even open
        raise explain(err, "connecting") from None
    return client
