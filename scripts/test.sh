#!/usr/bin/env bash
# Install everything (Python deps, prometheus, promtool, alertmanager) and run every check.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev --stack
echo "== lint"
.venv/bin/ruff check exporter tests benchmarks grafana
.venv/bin/mypy exporter
echo "== generated files up to date"
.venv/bin/aura generate rules --check
.venv/bin/aura generate dashboards --check
.venv/bin/aura generate kubernetes --check
echo "== tests"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
