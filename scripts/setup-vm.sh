#!/usr/bin/env bash
# Idempotent set-up for the VM tier (a full kernel on demand), run as root after setup.sh:
# qemu, busybox and a stock Debian kernel (not the cloud one: it lacks 9p), and
# virtme-ng in the virtual environment. A second run finds everything in place.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(qemu-system-x86 busybox-static linux-image-amd64)
VENV=${VENV:-.venv}

source scripts/packages.sh
ensure_packages "${PACKAGES[@]}"
"$VENV/bin/python" -c "import virtme_ng" 2>/dev/null || "$VENV/bin/pip" install -q -e ".[vm]"
