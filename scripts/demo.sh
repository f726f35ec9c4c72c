#!/usr/bin/env bash
# The README's run command:  scripts/demo.sh [--lab]
#
# Sets up (scripts/setup.sh), then a headless demo of the snapshot workflow on a throwaway project:
# save a venv's environment, change one package, see the drift, and run the same capture probe inside a
# container of the stand-in base image (no network). With --lab, then starts JupyterLab on example-notebooks/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
REPO=$PWD
Y="$REPO/.venv/bin/yolosnap"
DEMO=$(mktemp -d /tmp/yolosnap-demo.XXXXXX)
trap 'rm -rf "$DEMO"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "A training venv: six 1.16.0 from the index"
.venv/bin/python -m venv "$DEMO/venv"
"$DEMO/venv/bin/python" -m pip install -q --disable-pip-version-check six==1.16.0 2>/dev/null
mkdir "$DEMO/project"

step "yolosnap save train-env --python \$VENV/bin/python"
"$Y" save train-env --python "$DEMO/venv/bin/python" --project "$DEMO/project"
sed -n '1,12p' "$DEMO/project/.yolosnap/train-env/snapshot.json"; echo "  ..."

step "yolosnap diff (nothing changed yet: exit 0)"
"$Y" diff train-env --python "$DEMO/venv/bin/python" --project "$DEMO/project" && echo "exit 0"

step "Someone upgrades a dependency; yolosnap diff finds it (exit 1)"
"$DEMO/venv/bin/python" -m pip install -q --disable-pip-version-check six==1.17.0 2>/dev/null
"$Y" diff train-env --python "$DEMO/venv/bin/python" --project "$DEMO/project" || echo "exit $?"

step "The same capture probe, inside the stand-in base image (network none)"
BASE="python:$(.venv/bin/python -c 'import platform; print(platform.python_version())')-slim-bookworm"
docker run --rm --network none -v "$REPO/jupyter_yolosnap:/opt/yolosnap:ro" "$BASE" python3 -c \
    'import sys; sys.path.insert(0, "/opt/yolosnap"); from capture import capture_environment as c; e = c();
print("python", e["python"]["version"], "|", e["os"]["pretty_name"], "|", len(e["packages"]), "package(s)")'
echo "snapshot's python: $(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["python"]["version"])' \
    "$DEMO/project/.yolosnap/train-env/snapshot.json")"

if [ "${1:-}" = "--lab" ]; then
    step "JupyterLab on example-notebooks/ (Ctrl-C to stop)"
    .venv/bin/python -m pip install -q --disable-pip-version-check jupyterlab 2>/dev/null
    exec .venv/bin/jupyter lab --allow-root --no-browser --ip 127.0.0.1 --notebook-dir "$REPO/example-notebooks"
fi
step "Done: see example-notebooks/ for %snapshot in a notebook (scripts/demo.sh --lab opens them)"
