#!/usr/bin/env bash
# Install (once) and run the embedded default: a simulated fleet analysed live, no Prometheus
# needed. Setup runs only when .venv is missing or pyproject.toml changed since the last one
# (the package is installed editable, so code changes need no reinstall): a later start goes
# straight to `aura demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.aura-setup-stamp
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -x .venv/bin/aura ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] \
    && .venv/bin/python -c 'import exporter' 2>/dev/null; then
  :  # installed and up to date
else
  scripts/setup.sh
  echo "$want" > "$stamp"
fi
exec .venv/bin/aura demo "$@"
