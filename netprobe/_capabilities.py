"""What this machine can do: kernel features and tools, found by trying them.

Kernel features are probed by doing the thing inside one scratch network namespace, not by
reading version numbers (configs and backports make versions lie); nothing touches the root
namespace. The one machine-wide effect is mounting tracefs when it is not mounted.
"iptables" is both a kernel feature and a tool: a bare name selects both, "kernel:iptables"
or "tool:iptables" one.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from netprobe._privilege import is_root
from netprobe.errors import SetupError
from netprobe.topology._kernel import netns, owner
from netprobe.topology._kernel.impair import NETEM_REMEDY, NO_QDISC
from netprobe.topology._kernel.tap import open_tap

KERNEL = "kernel"
TOOL = "tool"

KERNEL_FEATURES: tuple[str, ...] = (
    "netns", "veth", "bridge", "802.1Q vlan", "bond", "bridge vlan_filtering", "tap",
    "macvlan", "vxlan", "nftables", "iptables", "tracefs drop reasons", "AF_PACKET",
    "netem", "tbf",
)  # fmt: skip
TOOLS: tuple[str, ...] = (
    "ip", "tcpdump", "nft", "iptables", "nmap", "ethtool", "ovs-vsctl", "dnsmasq", "busybox",
    "tc",
)  # fmt: skip

_TOOL_TIMEOUT = 3.0  # seconds for every version query together
_CMD_TIMEOUT = 5.0  # seconds for one nft/iptables run inside the scratch namespace
_ETH_P_ALL = 0x0003
TRACEFS = "/sys/kernel/tracing"
_TRACEFS_DIRS = (TRACEFS, "/sys/kernel/debug/tracing")
_KFREE_SKB_FORMAT = "events/skb/kfree_skb/format"

# errno values that mean "this kernel does not have it" rather than "you may not" or "bad args".
_MISSING_ERRNOS = frozenset(
    {errno.EOPNOTSUPP, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.ENODEV, errno.ENOENT}
)
# Linux gives 95 two names and errno.errorcode picks ENOTSUP; the kernel calls it EOPNOTSUPP.
_ERRNO_NAMES = {errno.EOPNOTSUPP: "EOPNOTSUPP"}

_NFT_FILTER = "table inet nptest {\n chain c { type filter hook forward priority 0; }\n}\n"
_NFT_NAT = (
    "table ip nptestnat {\n chain p { type nat hook postrouting priority 100; masquerade; }\n}"
)


@dataclass(frozen=True)
class Capability:
    """One probed capability; `remedy` says how to get it when it is absent."""

    name: str
    kind: str  # KERNEL or TOOL
    present: bool
    detail: str
    remedy: str | None


class _ProbeFailed(Exception):
    """A probe failed with a message already fit for `Capability.detail`; `remedy`, where
    the feature's own would not help (the tool that probes it is missing)."""

    def __init__(self, detail: str, remedy: str | None = None) -> None:
        super().__init__(detail)
        self.remedy = remedy


def describe_errno(code: int, what: str) -> str:
    """A one-line reason, e.g. "EOPNOTSUPP: kernel has no 'bond' link type"."""
    name = _ERRNO_NAMES.get(code) or errno.errorcode.get(code, f"errno {code}")
    if code in _MISSING_ERRNOS:
        return f"{name}: kernel has no {what}"
    if code in (errno.EPERM, errno.EACCES):
        return f"{name}: not permitted to create {what}"
    return f"{name}: {os.strerror(code)} (creating {what})"


def _missing_error(missing: Sequence[Capability]) -> SetupError:
    reasons = "; ".join(f"{c.name} ({c.kind}): {c.detail}" for c in missing)
    remedies = list(dict.fromkeys(f"{c.name}: {c.remedy}" for c in missing if c.remedy))
    noun = "capability" if len(missing) == 1 else "capabilities"
    return SetupError(f"missing {noun}: {reasons}", remedy="; ".join(remedies) or None)


class _Scratch:
    """The scratch namespace's netlink socket and the links probes share (veth, bridge)."""

    def __init__(self, ipr: Any) -> None:
        self.ipr = ipr
        self.made: dict[str, int] = {}

    def link(self, ifname: str, **kwargs: Any) -> int:
        if ifname not in self.made:
            self.ipr.link("add", ifname=ifname, **kwargs)
            self.made[ifname] = int(self.ipr.link_lookup(ifname=ifname)[0])
        return self.made[ifname]

    def veth(self) -> int:
        return self.link("npdv0", kind="veth", peer="npdv1")

    def bridge(self) -> int:
        return self.link("npdbr0", kind="bridge")


def _link(ifname: str, on_veth: bool = False, **kwargs: Any) -> Callable[[_Scratch], str]:
    """A probe that creates one link (vlan and macvlan need a veth parent)."""

    def run(s: _Scratch) -> str:
        s.link(ifname, **({"link": s.veth()} if on_veth else {}), **kwargs)
        return f"created a {kwargs['kind']} link" + (" on a veth" if on_veth else "")

    return run


def _run(argv: list[str], stdin: str = "") -> None:
    """Run a command in this thread's namespace: fork copies the calling thread's netns."""
    if shutil.which(argv[0]) is None:
        raise _ProbeFailed(f"not probed: {argv[0]} is not installed")
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=_CMD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise _ProbeFailed(f"`{' '.join(argv)}` timed out after {_CMD_TIMEOUT:g} s") from exc
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
        raise _ProbeFailed(f"`{' '.join(argv)}` failed: {lines[0]}")


def _vlan_filtering(s: _Scratch) -> str:
    # Setting it on an existing bridge runs the same kernel code as creating the bridge
    # with it, and a failed create costs ~40 ms of unregistering where this costs 0.5 ms.
    index = s.bridge()
    s.ipr.link("set", index=index, kind="bridge", br_vlan_filtering=1)
    info = s.ipr.get_links(index)[0].get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    if info.get_attr("IFLA_BR_VLAN_FILTERING") != 1:
        raise _ProbeFailed("kernel accepted vlan_filtering=1 but the bridge reports it off")
    return "turned vlan_filtering on for a bridge"


def _tap(s: _Scratch) -> str:
    # netprobe's own TAP opener (this thread is inside the scratch namespace already), not
    # pyroute2's kind="tuntap", which makes a persistent device in the caller's namespace.
    fd = open_tap(None, "npdtap0")
    try:
        if not s.ipr.link_lookup(ifname="npdtap0"):
            raise _ProbeFailed("TUNSETIFF succeeded but no tap appeared in the scratch namespace")
    finally:
        os.close(fd)  # not persistent: the tap goes with its descriptor
    return "created a tap through /dev/net/tun"


def _nftables(s: _Scratch) -> str:
    try:
        _run(["nft", "-f", "-"], _NFT_FILTER + _NFT_NAT)
    except _ProbeFailed:
        _run(["nft", "-f", "-"], _NFT_FILTER)  # raises if even a filter table fails
        raise _ProbeFailed("filter tables load but a nat chain with masquerade does not") from None
    return "loaded a filter chain and a nat chain with masquerade"


def _iptables(s: _Scratch) -> str:
    _run(["iptables", "-t", "filter", "-L", "-n"])
    _run(["iptables", "-t", "nat", "-A", "POSTROUTING", "-j", "MASQUERADE"])
    return "listed the filter table and added a nat MASQUERADE rule"


def _qdisc(kind: str, *args: str) -> Callable[[_Scratch], str]:
    """A probe that makes a `kind` qdisc the root of the scratch veth, with `tc` (what an
    interface's `impair:` does)."""

    def run(s: _Scratch) -> str:
        if shutil.which("tc") is None:
            raise _ProbeFailed("not probed: tc is not installed", "apt-get install iproute2")
        s.veth()
        try:
            _run(["tc", "qdisc", "replace", "dev", "npdv0", "root", kind, *args])
        except _ProbeFailed as exc:
            if any(s in str(exc) for s in NO_QDISC):  # tc's words for a kernel without it
                said = str(exc).split("failed: ", 1)[-1].removeprefix("Error: ").rstrip(".")
                raise _ProbeFailed(f"this kernel has no {kind} qdisc (tc: {said})") from None
            raise
        return f"made a {kind} qdisc a veth's root"

    return run


def _af_packet(s: _Scratch) -> str:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL)) as sock:
        sock.bind(("lo", 0))
    return "opened a raw AF_PACKET socket and bound it to lo"


@dataclass(frozen=True)
class _Feature:
    what: str  # completes "kernel has no ..."
    remedy: str
    run: Callable[[_Scratch], str]


_NETNS_REMEDY = "needs CONFIG_NET_NS and CAP_SYS_ADMIN to mount under /run/netns (run as root)"
_VM = (
    "or run the check in a full-kernel VM: netprobe check NAME --kernel auto (with "
    "qemu-system-x86, busybox-static, linux-image-amd64 and netprobe[vm] installed)"
)
# fmt: off
_FEATURES: dict[str, _Feature] = {
    "netns": _Feature("network namespaces", _NETNS_REMEDY,
                      lambda s: "created a scratch namespace and entered it"),
    "veth": _Feature("'veth' link type", "modprobe veth (CONFIG_VETH)",
                     _link("npdv0", kind="veth", peer="npdv1")),
    "bridge": _Feature("'bridge' link type", "modprobe bridge (CONFIG_BRIDGE)",
                       _link("npdbr0", kind="bridge")),
    "802.1Q vlan": _Feature("'vlan' link type", f"load the 8021q module (modprobe 8021q) {_VM}",
                            _link("npdv0.10", on_veth=True, kind="vlan", vlan_id=10)),
    "bond": _Feature("'bond' link type", f"modprobe bonding (CONFIG_BONDING) {_VM}",
                     _link("npdbo0", kind="bond")),
    "bridge vlan_filtering": _Feature(
        "bridge vlan_filtering", f"needs CONFIG_BRIDGE_VLAN_FILTERING: use OVS netdev {_VM}",
        _vlan_filtering),
    "tap": _Feature("tun/tap driver or /dev/net/tun",
                    "modprobe tun; if /dev/net/tun is missing: mknod /dev/net/tun c 10 200; "
                    "a user other than root needs it mode 0666 (chmod 0666 /dev/net/tun, as "
                    "udev makes it)", _tap),
    "macvlan": _Feature("'macvlan' link type", "modprobe macvlan (CONFIG_MACVLAN)",
                        _link("npdmv0", on_veth=True, kind="macvlan", macvlan_mode="bridge")),
    "vxlan": _Feature("'vxlan' link type", "modprobe vxlan (CONFIG_VXLAN)",
                      _link("npdvx0", kind="vxlan", vxlan_id=42, vxlan_port=4789)),
    "nftables": _Feature("nftables",
                         "apt-get install nftables; modprobe nf_tables nft_chain_nat nft_masq",
                         _nftables),
    "iptables": _Feature("iptables",
                         "apt-get install iptables; modprobe iptable_nat (or nft_compat)",
                         _iptables),
    "AF_PACKET": _Feature("AF_PACKET sockets", "modprobe af_packet (CONFIG_PACKET)", _af_packet),
    "netem": _Feature("netem qdisc (delay, loss, duplication, reordering)", NETEM_REMEDY,
                      _qdisc("netem", "delay", "1ms")),
    "tbf": _Feature("tbf qdisc (rate limits)", "modprobe sch_tbf (CONFIG_NET_SCH_TBF)",
                    _qdisc("tbf", "rate", "1mbit", "burst", "32kbit", "latency", "50ms")),
}
# fmt: on
_TRACEFS_REMEDY = (
    "mount -t tracefs nodev /sys/kernel/tracing; the reason field needs a kernel with "
    "skb drop reasons (CONFIG_TRACEPOINTS, Linux 5.17 or later)"
)


def _kernel(name: str, present: bool, detail: str, remedy: str | None) -> Capability:
    return Capability(name, KERNEL, present, detail, None if present else remedy)


def _try_feature(name: str, scratch: _Scratch) -> Capability:
    from pyroute2.netlink.exceptions import NetlinkError

    feature = _FEATURES[name]
    try:
        return _kernel(name, True, feature.run(scratch), None)
    except NetlinkError as exc:
        return _kernel(name, False, describe_errno(int(exc.code), feature.what), feature.remedy)
    except OSError as exc:
        detail = describe_errno(exc.errno, feature.what) if exc.errno else str(exc)
        return _kernel(name, False, detail, feature.remedy)
    except _ProbeFailed as exc:
        return _kernel(name, False, str(exc), exc.remedy or feature.remedy)


def _probe_scratch(names: Sequence[str]) -> dict[str, Capability]:
    """Create one scratch namespace, try every feature in it, delete it whatever happens."""
    from pyroute2 import IPRoute

    with owner.scratch_run("doctor") as runid:
        ns = owner.ns_name(runid, "doctor")
        try:
            try:
                netns.create(ns)
            except OSError as exc:
                why = "not probed: no scratch namespace"
                found = {n: _kernel(n, False, why, _FEATURES[n].remedy) for n in names}
                detail = describe_errno(exc.errno or 0, "network namespaces")
                found["netns"] = _kernel("netns", False, detail, _NETNS_REMEDY)
                return found
            fd = netns.open_fd(ns)
            try:
                # One switch for everything: netlink and packet sockets, the tun descriptor and
                # forked nft/iptables all bind to the namespace of the thread that makes them.
                with netns.entered(fd), IPRoute() as ipr:
                    scratch = _Scratch(ipr)
                    found = {n: _try_feature(n, scratch) for n in names}
            finally:
                os.close(fd)
            return found
        finally:
            # Always safe: the name holds this run's unique id, so nothing else owns it.
            netns.delete(ns)


def _kfree_skb_format() -> str | None:
    for root in _TRACEFS_DIRS:
        path = os.path.join(root, _KFREE_SKB_FORMAT)
        if os.path.exists(path):
            return path
    return None


def mount_tracefs(root: str = TRACEFS) -> str | None:
    """Make sure tracefs is at `root`: the probe of drop reasons and explain's trace
    instances both need it. Returns what was done ("mounted tracefs at …") or None when it
    was there already; raises SetupError when it cannot be mounted."""
    if os.path.exists(os.path.join(root, "instances")):
        return None
    argv = ["mount", "-t", "tracefs", "nodev", root]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_CMD_TIMEOUT, check=False
        )
        why = done.stderr.strip() if done.returncode != 0 else ""
    except (OSError, subprocess.TimeoutExpired) as exc:  # no mount(8), or it hangs
        why = str(exc)
    if why or not os.path.exists(os.path.join(root, "instances")):
        raise SetupError(
            f"tracefs is not available at {root}: {why or 'mount failed'}",
            remedy=f"run as root, or mount it: mount -t tracefs nodev {root}",
        )
    return f"mounted tracefs at {root}"


def _probe_tracefs() -> Capability:
    name = "tracefs drop reasons"
    path = _kfree_skb_format()
    mounted = ""
    if path is None and os.path.isdir(TRACEFS) and not os.path.ismount(TRACEFS):
        try:
            done = mount_tracefs(TRACEFS)
        except SetupError as exc:
            return _kernel(name, False, str(exc).partition("\n")[0], _TRACEFS_REMEDY)
        mounted = f" ({done} by this probe)" if done else ""
        path = _kfree_skb_format()
    if path is None:
        return _kernel(name, False, f"no skb:kfree_skb tracepoint{mounted}", _TRACEFS_REMEDY)
    with open(path) as src:
        if "reason" not in src.read():
            return _kernel(name, False, f"{path} has no reason field{mounted}", _TRACEFS_REMEDY)
    return _kernel(name, True, f"skb:kfree_skb has a reason field{mounted}", None)


def _probe_kernel(names: Sequence[str]) -> dict[str, Capability]:
    if not names:
        return {}
    if not is_root():
        return {n: _kernel(n, False, "not probed: needs root", "run as root") for n in names}
    found: dict[str, Capability] = {}
    if "tracefs drop reasons" in names:
        found["tracefs drop reasons"] = _probe_tracefs()
    in_ns = [n for n in names if n != "tracefs drop reasons"]
    if in_ns:
        found.update({n: c for n, c in _probe_scratch(in_ns).items() if n in in_ns})
    return found


_TOOL_PACKAGE = {
    "ip": "iproute2", "tcpdump": "tcpdump", "nft": "nftables", "iptables": "iptables",
    "nmap": "nmap", "ethtool": "ethtool", "ovs-vsctl": "openvswitch-switch",
    "dnsmasq": "dnsmasq-base", "busybox": "busybox-static",  # DHCP servers, clients (udhcpc)
    "tc": "iproute2",  # impairments
}  # fmt: skip
_VERSION_ARGS = {"ip": ["-V"], "tc": ["-V"], "busybox": []}  # busybox prints it first
_Pending = dict[str, "subprocess.Popen[str] | Capability"]


def _tool(name: str, present: bool, detail: str) -> Capability:
    remedy = None if present else f"apt-get install {_TOOL_PACKAGE[name]}"
    return Capability(name, TOOL, present, detail, remedy)


def _start_tools(names: Sequence[str]) -> _Pending:
    """Start every version query at once; they finish while the kernel probe runs."""
    pending: _Pending = {}
    for name in names:
        path = shutil.which(name)
        if path is None:
            pending[name] = _tool(name, False, "not found on PATH")
            continue
        try:
            pending[name] = subprocess.Popen(
                [path, *_VERSION_ARGS.get(name, ["--version"])], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        except OSError as exc:
            pending[name] = _tool(name, False, f"{path}: {exc.strerror}")
    return pending


def _finish_tools(pending: _Pending, deadline: float) -> dict[str, Capability]:
    found: dict[str, Capability] = {}
    for name, proc in pending.items():
        if isinstance(proc, Capability):
            found[name] = proc
            continue
        try:
            out, _ = proc.communicate(timeout=max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            found[name] = _tool(name, False, "version query timed out")
            continue
        lines = out.strip().splitlines()
        found[name] = _tool(name, True, lines[0] if lines else f"{name} (no version output)")
    return found


_Key = tuple[str, str]  # (kind, name)
_cache: dict[_Key, Capability] = {}
_lock = threading.Lock()


def _resolve(names: Iterable[str] | None) -> list[_Key]:
    known = {KERNEL: KERNEL_FEATURES, TOOL: TOOLS}
    if names is None:
        return [(kind, n) for kind, table in known.items() for n in table]
    keys: list[_Key] = []
    for raw in [names] if isinstance(names, str) else names:
        kind, sep, bare = raw.partition(":")
        if sep and kind in known:
            matches = [(kind, bare)] if bare in known[kind] else []
        else:
            matches = [(k, raw) for k, table in known.items() if raw in table]
        if not matches:
            every = ", ".join(KERNEL_FEATURES + TOOLS)
            raise ValueError(f"unknown capability {raw!r}; known: {every}")
        keys.extend(k for k in matches if k not in keys)
    return keys


def unknown(names: Iterable[object]) -> list[object]:
    """The names among `names` that are no kernel feature's or tool's."""
    bad: list[object] = []
    for name in names:
        try:
            if not isinstance(name, str):
                raise ValueError(name)
            _resolve([name])
        except ValueError:
            bad.append(name)
    return bad


def probe(names: Iterable[str] | None = None) -> list[Capability]:
    """Probe the named capabilities (all by default), in order; cached per process."""
    keys = _resolve(names)
    with _lock:
        todo = [k for k in keys if k not in _cache]
        pending = _start_tools([n for kind, n in todo if kind == TOOL])
        try:
            deadline = time.monotonic() + _TOOL_TIMEOUT
            kernel = _probe_kernel([n for kind, n in todo if kind == KERNEL])
            tools = _finish_tools(pending, deadline)
        finally:  # a Ctrl-C or a failed kernel probe must not leave version queries running
            for proc in pending.values():
                if isinstance(proc, subprocess.Popen) and proc.poll() is None:
                    proc.kill()
                    proc.wait()
        _cache.update({(KERNEL, n): c for n, c in kernel.items()})
        _cache.update({(TOOL, n): c for n, c in tools.items()})
        return [_cache[k] for k in keys]


def clear_cache() -> None:
    """Forget every probe result, so the next probe asks the machine again."""
    with _lock:
        _cache.clear()


def require(*names: str) -> None:
    """Raise SetupError naming every absent capability among `names`, with its remedy."""
    missing = [c for c in probe(names) if not c.present]
    if missing:
        raise _missing_error(missing)
