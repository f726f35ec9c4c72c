#!/usr/bin/env bash
# The project's test command:  scripts/test.sh [pytest arguments...]
#
# Sets up what the tests need (scripts/setup.sh: Docker engine, stand-in base image, .venv),
# runs pytest (configuration in pyproject.toml; arguments go to pytest), then the browser tests of the
# JupyterLab sidebar (scripts/ui-test.sh). Fails when either fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
status=0
.venv/bin/python -m pytest "$@" || status=$?
# The JupyterLab sidebar in a real headless Chromium (Galata); installs chromium when missing.
bash scripts/ui-test.sh || status=$?
exit "$status"
