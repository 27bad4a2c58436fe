#!/usr/bin/env bash
# Install and run the embedded default: a simulated fleet analysed live, no Prometheus needed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/aura demo "$@"
