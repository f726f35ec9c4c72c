#!/usr/bin/env bash
# Browser tests of the JupyterLab sidebar:  scripts/ui-test.sh [playwright test arguments...]
#
# Assumes scripts/setup.sh ran (Docker engine, stand-in base image, .venv with '.[test]'). Installs Debian's
# Chromium when missing, builds labextension/ and installs ui-tests/ (no browser download), saves and builds
# the snapshot `uitest` (a small venv of this Python plus six) in a temporary project, serves that project
# with JupyterLab (Galata's server config) and runs Playwright against it. Always stops the server and removes
# what it made: the project, /tmp/galata-*, the containers its kernels started and the images it built. Exits with Playwright's
# status. The screenshot docs/panel.png is rewritten by the tests; the screenshots compared with committed references
# are ui-tests/tests/*-snapshots/ (rewrite them with: scripts/ui-test.sh screenshots --update-snapshots).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export PATH="$ROOT/.venv/bin:$PATH"   # jlpm and jupyter-builder come with the jupyterlab Python package
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
PORT=${YOLOSNAP_UI_PORT:-8899}
LABEL=org.jupyter-yolosnap

say() { echo "ui-test: $*" >&2; }
# Run a command quietly, showing its output only when it fails.
quiet() {
    local log
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then cat "$log" >&2; rm -f "$log"; return 1; fi
    rm -f "$log"
}

if [ ! -x .venv/bin/jupyter-lab ]; then
    say ".venv has no JupyterLab: run scripts/setup.sh first (it installs '.[test]')"
    exit 2
fi
if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

say "building labextension/ and running its unit tests (jest)"
(cd labextension && quiet jlpm install && quiet jlpm build && quiet jlpm test)
say "installing ui-tests/"
(cd ui-tests && quiet jlpm install)

WORK=$(mktemp -d /tmp/yolosnap-ui.XXXXXX)
SERVER_PID=
cleanup() {
    local status=$?
    set +e
    local pids=""
    if [ -n "$SERVER_PID" ]; then
        # Every process under the server (kernels, and the snapshot kernels its provisioner starts) may own a container.
        local frontier=$SERVER_PID
        pids=$SERVER_PID
        while [ -n "$frontier" ]; do
            frontier=$(for p in $frontier; do pgrep -P "$p"; done | tr '\n' ' ')
            pids="$pids $frontier"
        done
        kill "$SERVER_PID" 2>/dev/null
        for _ in $(seq 20); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    # Containers of this run's snapshot whose owner was one of the server's processes (or is gone).
    docker ps -a --filter "label=$LABEL.role" --filter "label=$LABEL.snapshot=uitest" \
        --format "{{.ID}} {{.Label \"$LABEL.owner-pid\"}}" 2>/dev/null |
    while read -r id owner; do
        if [[ " $pids " == *" $owner "* ]] || ! kill -0 "$owner" 2>/dev/null; then
            docker rm -f "$id" >/dev/null
        fi
    done
    # The images this run built for its snapshots (uitest, and what the tests saved): nothing is left behind.
    # (a kernel image is a child of its snapshot image, and a parent goes only after its children: three passes)
    local images
    for _ in 1 2 3; do
        images=$(docker images -q --filter "label=$LABEL.snapshot=uitest" 2>/dev/null | sort -u)
        [ -n "$images" ] || break
        docker rmi -f $images >/dev/null 2>&1
    done
    rm -rf "$WORK" /tmp/galata-*
    exit "$status"
}
trap cleanup EXIT

PROJECT=$WORK/project
mkdir -p "$PROJECT" "$WORK/labextensions"
# The snapshot's interpreter: a small venv of .venv's Python (3.11.7, the stand-in base's) plus six, kept
# between runs so the snapshot's digest, and so its image and kernel image, are reused.
SNAPVENV=${XDG_CACHE_HOME:-$HOME/.cache}/jupyter_yolosnap/ui-test-venv
if [ ! -x "$SNAPVENV/bin/python" ] || ! "$SNAPVENV/bin/python" -c 'import six' 2>/dev/null ||
   [ "$("$SNAPVENV/bin/python" -V)" != "$(.venv/bin/python -V)" ]; then
    rm -rf "$SNAPVENV"
    .venv/bin/python -m venv "$SNAPVENV"
    "$SNAPVENV/bin/python" -m pip install -q --disable-pip-version-check six
fi
say "saving and building snapshot uitest in $PROJECT"
.venv/bin/yolosnap save uitest --project "$PROJECT" --python "$SNAPVENV/bin/python" >/dev/null
.venv/bin/yolosnap build uitest --project "$PROJECT" >/dev/null

# The extension just built wins over any installed copy (LabApp.extra_labextensions_path in the config).
ln -s "$ROOT/jupyter_yolosnap/labextension" "$WORK/labextensions/jupyter-yolosnap"
say "starting JupyterLab on port $PORT"
export YOLOSNAP_UI_PORT=$PORT YOLOSNAP_UI_ROOT=$PROJECT YOLOSNAP_UI_LABEXTENSIONS=$WORK/labextensions
# Kernelspecs written by Restore, runtime files, user config and every temporary file of the server and its
# kernels stay in $WORK.
mkdir -p "$WORK/tmp"
export JUPYTER_DATA_DIR=$WORK/data JUPYTER_CONFIG_DIR=$WORK/config JUPYTER_RUNTIME_DIR=$WORK/runtime
TMPDIR=$WORK/tmp .venv/bin/jupyter lab --config "$ROOT/ui-tests/jupyter_server_test_config.py" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 60); do
    curl -sf "http://127.0.0.1:$PORT/api/status" >/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; say "the server exited"; exit 1; }
    sleep 0.5
done

mkdir -p docs
set +e
(cd ui-tests && npx playwright test "$@")
status=$?
set -e
if [ "$status" -ne 0 ]; then
    say "Playwright failed ($status); the server's log:"
    tail -n 60 "$WORK/server.log" >&2
fi
exit "$status"
