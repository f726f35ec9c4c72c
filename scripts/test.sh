#!/usr/bin/env bash
# The project's test command:  scripts/test.sh [pytest arguments...]
#
# Sets up what the tests need (scripts/setup.sh: Docker engine, stand-in base image, .venv)
# and runs pytest (configuration in pyproject.toml).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
