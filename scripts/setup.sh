#!/usr/bin/env bash
# Idempotent set-up for a Debian machine, run as root: the system tools netprobe drives,
# and a virtual environment (.venv) with netprobe and its test dependencies.
# A second run finds everything in place and returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(iproute2 iputils-ping tcpdump nftables iptables nmap ethtool procps util-linux python3-scapy
          openvswitch-switch socat conntrack dnsmasq-base busybox-static
          slirp4netns passt podman runc uidmap graphviz)
# Debian's own python3 needs python3-venv for `python3 -m venv`; other builds carry ensurepip.
python3 -c "import ensurepip" 2>/dev/null || PACKAGES+=(python3-venv)
VENV=${VENV:-.venv}

source scripts/packages.sh
ensure_packages "${PACKAGES[@]}"

stamp="$VENV/.netprobe-installed"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating $VENV"
    python3 -m venv "$VENV"
fi
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
    echo "setup: installing netprobe and its test dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[test]'
    touch "$stamp"
fi
