#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`.  Idempotent: when an engine
# already answers, this does nothing.
#
# Otherwise (root only): install Debian's docker.io if dockerd is missing, then
# start dockerd in the background WITHOUT the default bridge network (containers
# get network_mode "none" or "host" only), and wait for its socket to answer.
#
# Environment:
#   YOLOSNAP_DOCKERD_LOG   log file of the started dockerd (default /tmp/dockerd.log)
#   YOLOSNAP_ENGINE_WAIT   seconds to wait for the engine to answer (default 60)
set -euo pipefail

case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac

LOG=${YOLOSNAP_DOCKERD_LOG:-/tmp/dockerd.log}
WAIT=${YOLOSNAP_ENGINE_WAIT:-60}

die() { echo "engine-up: $*" >&2; exit 1; }

engine_answers() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

wait_for_engine() {
    local waited=0
    while ! engine_answers; do
        if [ -n "${1:-}" ] && ! kill -0 "$1" 2>/dev/null; then
            die "dockerd (pid $1) exited before answering; see $LOG: $(tail -n 1 "$LOG" 2>/dev/null)"
        fi
        if [ "$waited" -ge "$WAIT" ]; then
            die "the Docker engine did not answer within ${WAIT}s${2:+; see $2}"
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

if engine_answers; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    die "no Docker engine answers 'docker info' and we are not root: start dockerd (or fix DOCKER_HOST / socket permissions) and rerun"
fi

# An engine that is starting already (another invocation, or started by hand):
# wait for it instead of starting a second one.
if pid=$(pgrep -x dockerd 2>/dev/null | head -n 1) && [ -n "$pid" ]; then
    echo "engine-up: dockerd (pid $pid) is running; waiting for it to answer" >&2
    wait_for_engine "$pid" ""
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    echo "engine-up: installing docker.io from Debian" >&2
    # apt-install.sh keeps the package's maintainer scripts from starting a dockerd of their own (with the
    # default bridge) while it installs.
    rc=0
    bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" docker.io || rc=$?
    [ "$rc" -eq 0 ] || die "apt-get install docker.io failed (exit $rc)"
    command -v dockerd >/dev/null 2>&1 || die "docker.io is installed but dockerd is not on PATH"
fi

echo "engine-up: starting dockerd (log: $LOG)" >&2
setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false >>"$LOG" 2>&1 </dev/null &
dockerd_pid=$!
wait_for_engine "$dockerd_pid" "$LOG"
echo "engine-up: dockerd (pid $dockerd_pid) answers" >&2
