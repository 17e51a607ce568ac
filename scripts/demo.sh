#!/usr/bin/env bash
# Sets up the environment and runs the built-in demo (gpu-engine run, no arguments).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
gpu-engine run "$@"
