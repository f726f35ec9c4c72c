"""One way to reach the engine, with errors that say what to do."""
from __future__ import annotations

import os
from typing import Any

from ..exceptions import EngineError



def explain(err: Exception, doing: str) -> EngineError:
    """Map docker-py's and requests' errors to one line: what failed while ``doing`` and how to fix it."""
    text = str(err)
    lowered = text.lower()
    if "permission denied" in lowered:
        return EngineError(f"permission denied on the Docker socket while {doing}; add your user to the 'docker' "
                           "group (then log in again) or run as root")
    if "no space left on device" in lowered:
        return EngineError(f"the Docker engine ran out of disk space while {doing}; free space "
                           "(docker system prune) and try again")
    if any(s in lowered for s in ("connection refused", "no such file or directory", "error while fetching server",
                                  "connection aborted", "failed to establish")):
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return EngineError(f"cannot reach the Docker engine at {host} while {doing}; start it "
                           "(scripts/engine-up.sh, or: sudo systemctl start docker) and try again")
    explanation = getattr(err, "explanation", None) or text
    return EngineError(f"the Docker engine refused {doing}: {str(explanation).strip().splitlines()[-1][:300]}")


def connect(timeout: int = 120) -> Any:
    """A docker-py client that has answered a ping."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as err:  # DockerException, requests errors, a missing socket
        raise explain(err, "connecting") from None
    return client
