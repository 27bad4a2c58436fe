#!/usr/bin/env bash
# Install everything AURA needs into ./.venv (and, with --stack, the Prometheus binaries).
# Debian/Ubuntu; uses apt-get when running as root or with sudo. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="" stack=0
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[dev]" ;;
    --stack) stack=1 ;;
    *) echo "usage: scripts/setup.sh [--dev] [--stack]" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
can_apt() { [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; }
apt_updated=0
apt_install() {
  can_apt || { echo "setup: need root or sudo to install: $*" >&2; return 1; }
  if [ "$apt_updated" = 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

PY=${PYTHON:-python3}
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3-venv python3-pip
fi
if [ "$stack" = 1 ]; then
  missing=()
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v chromium >/dev/null || missing+=(chromium)  # console browser tests (Playwright)
  if [ "${#missing[@]}" -gt 0 ]; then
    # Loud failure, never a silent skip: the tests need the real binaries.
    apt_install $(printf '%s\n' "${missing[@]}" | sort -u) || {
      echo "setup: cannot install ${missing[*]}; the test suite needs them" >&2; exit 1; }
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch first, CPU build (ncps does not declare torch). Elsewhere set TORCH_INDEX_URL to
# PyTorch's CPU wheel index to avoid the multi-GB CUDA build.
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  .venv/bin/python -m pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0
fi
.venv/bin/python -m pip install -q -e ".$extras"
echo "setup: ready (.venv)"
