#!/usr/bin/env bash
# The README's run command:  scripts/demo.sh [--lab]
#
# Sets up (scripts/setup.sh), then a headless demo of the snapshot workflow on a throwaway project:
# save a venv's environment, change one package, see the drift, save again, build the snapshot into a verified
# image, check it, and run a command in it (no network). With --lab, then starts JupyterLab on example-notebooks/.
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

step "Accept the upgrade: save again (the previous revision stays in history/)"
"$Y" save train-env --python "$DEMO/venv/bin/python" --project "$DEMO/project" | head -1
"$Y" history train-env --project "$DEMO/project"

step "yolosnap build train-env: a Docker image, proven by a capture inside it"
IMAGE=$("$Y" build train-env --project "$DEMO/project" | tail -n 1)
sed -n '1,12p' "$DEMO/project/.yolosnap/train-env/Dockerfile"

step "yolosnap check train-env (exit 0: no drift)"
"$Y" check train-env --project "$DEMO/project" && echo "exit 0"

step "Run in the restored environment: yolosnap run train-env -- python ... (exit code is the command's)"
(cd "$DEMO/project" && "$Y" run train-env -- python -c 'import six, sys; print("six", six.__version__, "on Python", sys.version.split()[0]); sys.exit(3)') || echo "exit $?"
docker image rm -f "$IMAGE" "${IMAGE%%:*}:latest" >/dev/null

if [ "${1:-}" = "--lab" ]; then
    step "JupyterLab on example-notebooks/ (Ctrl-C to stop)"
    exec .venv/bin/jupyter lab --allow-root --no-browser --ip 127.0.0.1 --notebook-dir "$REPO/example-notebooks"
fi
step "Done: see example-notebooks/ for %snapshot in a notebook (scripts/demo.sh --lab opens them)"
