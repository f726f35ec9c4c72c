#!/usr/bin/env bash
# Shared set-up of the README's two commands (scripts/demo.sh, scripts/test.sh):
#
# starts the Docker engine if needed, builds the stand-in python:X.Y.Z-slim-bookworm
# base image for this machine's python3 (once), makes .venv (once, with that same
# interpreter) and installs the package with its test extras into it (again only
# when pyproject.toml changed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# One interpreter for everything: the real executable behind python3 (a pyenv
# shim or an activated venv resolve to it), so the base image's Python and the
# venv's Python are the same version to the micro.
PY=$(python3 -c 'import os, sys; print(os.path.realpath(os.path.join(sys.base_prefix, "bin", "python%d.%d" % sys.version_info[:2])))')
[ -x "$PY" ] || PY=$(python3 -c 'import sys; print(sys.executable)')
VERSION=$("$PY" -c 'import platform; print(platform.python_version())')

# What the tests build with besides Python: a C compiler and binutils (ELF fixtures), libyaml's headers (a
# package whose extension needs a system library the base image lacks), git (VCS installs), util-linux.
need=()
for pkg in gcc binutils libyaml-dev git util-linux; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# node builds the JupyterLab extension during the editable install (jlpm itself comes with jupyterlab).
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
if [ "${#need[@]}" -gt 0 ] && [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${need[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bash scripts/engine-up.sh
bash scripts/registry-up.sh  # Debian's docker-registry and htpasswd: the registry tests start their own
bash scripts/standin-base.sh "$PY" >/dev/null

VENV=.venv
if [ -x "$VENV/bin/python" ] &&
   [ "$("$VENV/bin/python" -c 'import platform; print(platform.python_version())' 2>/dev/null)" != "$VERSION" ]; then
    echo "test.sh: $VENV is not Python $VERSION; making it again" >&2
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi

# Install again only when the project's metadata changed (the install is editable).
stamp="$VENV/.yolosnap-installed"
want=$(sha256sum <pyproject.toml | cut -d" " -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
    echo "$want" >"$stamp"
fi
