"""A namespace's nft ruleset and forwarding sysctls, read without changing anything.

`nft list ruleset` costs a process (several milliseconds); most namespaces have no
table at all, which one netlink dump of nf_tables tells in microseconds, so nft runs
only where there is something to list, all at once. iptables-nft rules are nft tables
too; rules of the legacy xtables backend are not seen.
"""

from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Mapping

from . import netns

_NETLINK_NETFILTER = 12
_NFT_GETTABLE = (10 << 8) | 1  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETTABLE
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_HDR = struct.Struct("=IHHII")
_NFT_TIMEOUT = 10.0

# The sysctls that decide whether and how a host forwards (per interface too).
FORWARDING = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv4/conf/all/rp_filter",
    "net/ipv4/conf/default/rp_filter",
    "net/ipv6/conf/all/forwarding",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/bridge/bridge-nf-call-arptables",
)
PER_INTERFACE = ("net/ipv4/conf/{}/forwarding", "net/ipv4/conf/{}/rp_filter")


def has_tables(ns_fd: int) -> bool:
    """Whether the namespace `ns_fd` has any nf_tables table (False without nf_tables)."""
    with netns.entered(ns_fd):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                             _NETLINK_NETFILTER)
    with sock:
        body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)
        sock.send(_HDR.pack(_HDR.size + len(body), _NFT_GETTABLE, 0x301, 1, 0) + body)
        data = sock.recv(1 << 16)
    if len(data) < _HDR.size:
        return False
    _len, mtype, _flags, _seq, _pid = _HDR.unpack_from(data)
    return mtype not in (_NLMSG_ERROR, _NLMSG_DONE)


def rulesets(paths: Mapping[str, str]) -> dict[str, str]:
    """host → `nft list ruleset` in the namespace at its nsfs path, all run at once."""
    procs = {
        host: subprocess.Popen(
            ["nsenter", f"--net={path}", "--", "nft", "list", "ruleset"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        for host, path in paths.items()
    }
    out = {}
    for host, proc in procs.items():
        try:
            text, _ = proc.communicate(timeout=_NFT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            continue
        if proc.returncode == 0 and text.strip():
            out[host] = _spaces(text)
    return out


def _spaces(text: str) -> str:
    """nft's tab indentation as spaces (YAML keeps such text as a readable block)."""
    lines = []
    for line in text.rstrip().splitlines():
        body = line.lstrip("\t")
        lines.append("    " * (len(line) - len(body)) + body.rstrip())
    return "\n".join(lines) + "\n"


def sysctls(ns_fd: int, ifnames: list[str]) -> dict[str, str]:
    """The forwarding sysctls of the namespace `ns_fd` that exist there ("net.ipv4.…")."""
    keys = [*FORWARDING, *(k.format(i) for i in ifnames for k in PER_INTERFACE)]
    out = {}
    with netns.entered(ns_fd):  # /proc/sys/net shows the reader's namespace
        for key in keys:
            try:
                with open(f"/proc/sys/{key}") as f:
                    value = f.read().strip()
            except OSError:
                continue
            out[_dotted(key)] = value
    return _differing(out)


def _differing(values: dict[str, str]) -> dict[str, str]:
    """Per-interface values only where they differ from `all`'s (the rest say nothing)."""
    out = {}
    for key, value in values.items():
        parts = key.split(".") if "/" not in key else key.split("/")
        general = ".".join([*parts[:3], "all", parts[-1]])
        if len(parts) == 5 and parts[3] not in ("all", "default") and values.get(general) == value:
            continue
        out[key] = value
    return out


def _dotted(key: str) -> str:
    """net/ipv4/conf/eth0/rp_filter → net.ipv4.conf.eth0.rp_filter (slashes kept where an
    interface name holds a dot, as sysctl(8) and the spec read them)."""
    parts = key.split("/")
    return key if any("." in p for p in parts) else ".".join(parts)

