"""Topology build + teardown: netprobe against the ways people script it with `ip`.

Contenders, each building the same topology and removing it again:

  netprobe     `netprobe.build(spec)` then `topo.teardown()`, in this process;
  ip_per_op    a generated bash script with one `ip` process per operation (the kernel
               selftests' style), torn down with one `ip netns del` per namespace;
  ip_batch     a generated bash script with as few `ip` processes as iproute2 allows:
               one root `ip -batch` (all `netns add` and all veths), then one
               `ip -n NS -batch` per namespace (batch lines cannot switch namespace),
               one `ip -batch` of `netns del` to tear down;
  ip_batch_1q  the same, its veths asking for one queue each way as netprobe's do
               (`numtxqueues 1 numrxqueues 1`); scripts as people write them leave the
               kernel to make one per possible CPU and cut each end back to one.

The scripts are generated from the very Spec netprobe builds, so they do the same work:
same namespaces, lo up in each, same bridges, veths, MACs, masters and addresses (IPv6
without DAD, as netprobe adds them). netprobe additionally writes two or three IPv6
sysctls per namespace and self-checks the result; the scripts do neither.

Each contender is verified once (which also warms caches), then timed, all of them
taking turns in every repetition, so a noisy neighbour hurts all of them alike. The last
line of output is one line of JSON.
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import json
import os
import shlex
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so `python3 bench/topology_build.py` runs from a checkout

import netprobe  # noqa: E402
from netprobe import Bridge, Host, Interface, Route, Spec, Veth  # noqa: E402

BENCH_PREFIX = "npbench-"
CONTENDERS = ("netprobe", "ip_per_op", "ip_batch", "ip_batch_1q")

# host, argv -> (returncode, stdout)
Runner = Callable[[str, Sequence[str]], tuple[int, str]]


def star_spec(hosts: int) -> Spec:
    """Host "switch" with bridge br0 and ports p0..pN-1; host hI's eth0 is pI's peer,
    with an IPv4 and an IPv6 address and a default route through the switch's br0."""
    ports = tuple(Interface(f"p{i}", master="br0") for i in range(hosts))
    switch = Host("switch", interfaces=(Interface("br0", Bridge()), *ports))
    return Spec("star", hosts=(switch, *(_leaf(i) for i in range(hosts))))


GATEWAY = "10.0.255.254"


def _leaf(i: int) -> Host:
    v4 = ipaddress.ip_interface(f"10.0.{i // 250}.{i % 250 + 1}/16")
    v6 = ipaddress.ip_interface(f"fd00::{i + 1:x}/64")
    eth0 = Interface("eth0", Veth(f"switch:p{i}"), addresses=(v4, v6))
    return Host(f"h{i}", interfaces=(eth0,), routes=(Route("default", via=GATEWAY),))


# -- the baselines: a Spec rendered as ip commands -------------------------------------


@dataclass(frozen=True)
class VethPair:
    host: str
    name: str
    mac: str | None
    peer_host: str
    peer_name: str
    peer_mac: str | None


@dataclass
class Plan:
    """The operations a Spec needs, in the terms `ip` speaks (host names, not namespaces)."""

    hosts: list[str] = field(default_factory=list)
    bridges: list[tuple[str, str, Bridge]] = field(default_factory=list)
    veths: list[VethPair] = field(default_factory=list)
    masters: dict[tuple[str, str], str] = field(default_factory=dict)
    ups: list[tuple[str, str]] = field(default_factory=list)
    addresses: list[tuple[str, str, ipaddress.IPv4Interface | ipaddress.IPv6Interface]] = field(
        default_factory=list
    )
    routes: list[tuple[str, str]] = field(default_factory=list)  # host, `route add` args


def plan_of(spec: Spec) -> Plan:
    """Translate the subset of specs these benchmarks use; refuse anything else loudly."""
    plan = Plan(hosts=[h.name for h in spec.hosts])
    done: set[tuple[str, str]] = set()
    for host in spec.hosts:
        if not host.owned or host.sysctls or host.firewall:
            raise ValueError(
                f"host {host.name}: the ip baselines support only owned, "
                "sysctl- and firewall-free hosts"
            )
        plan.routes += [(host.name, _route_args(r)) for r in host.routes]
        for iface in host.interfaces:
            if iface.mtu is not None or iface.learning is not None:
                raise ValueError(f"{host.name}:{iface.name}: mtu/learning not supported")
            if isinstance(iface.kind, Bridge):
                plan.bridges.append((host.name, iface.name, iface.kind))
            elif isinstance(iface.kind, Veth) and (host.name, iface.name) not in done:
                plan.veths.append(_veth_pair(spec, host, iface))
                done |= {(host.name, iface.name), (iface.kind.peer_host, iface.kind.peer_ifname)}
            elif iface.kind is not None and not isinstance(iface.kind, Veth):
                raise ValueError(f"{host.name}:{iface.name}: kind {iface.kind!r} not supported")
            if iface.master:
                plan.masters[(host.name, iface.name)] = iface.master
            if iface.up:
                plan.ups.append((host.name, iface.name))
            plan.addresses += [(host.name, iface.name, a) for a in iface.addresses]
    return plan


def _veth_pair(spec: Spec, host: Host, iface: Interface) -> VethPair:
    assert isinstance(iface.kind, Veth)
    far = spec.host(iface.kind.peer_host).interface(iface.kind.peer_ifname)
    pair = VethPair(
        host.name,
        iface.name,
        iface.mac,
        iface.kind.peer_host,
        iface.kind.peer_ifname,
        far.mac if far else None,
    )
    if far is not None and far.master and not iface.master:
        # Create from the bridge's side, as netprobe does (star: `link add pN ... peer eth0`).
        pair = VethPair(
            pair.peer_host, pair.peer_name, pair.peer_mac, pair.host, pair.name, pair.mac
        )
    return pair


def _bridge_args(name: str, bridge: Bridge) -> str:
    args = f"link add {name} type bridge stp_state {int(bridge.stp)}"
    if bridge.ageing is not None:
        args += f" ageing_time {round(bridge.ageing * 100)}"  # centiseconds, like netprobe
    if bridge.forward_delay is not None:
        args += f" forward_delay {round(bridge.forward_delay * 100)}"
    return args


def _veth_args(
    pair: VethPair, ns: Callable[[str], str], *, main_netns: bool, one_queue: bool = False
) -> str:
    """`link add` of a veth pair; `main_netns`: say where the first end goes (root batch);
    `one_queue`: each end asks for one queue each way, as netprobe's do."""
    mac = f" address {pair.mac}" if pair.mac else ""
    peer_mac = f" address {pair.peer_mac}" if pair.peer_mac else ""
    where = f" netns {ns(pair.host)}" if main_netns else ""
    peer_where = f" netns {ns(pair.peer_host)}" if pair.peer_host != pair.host or main_netns else ""
    queues = " numtxqueues 1 numrxqueues 1" if one_queue else ""
    return (
        f"link add {pair.name}{mac}{where}{queues} type veth "
        f"peer name {pair.peer_name}{peer_mac}{peer_where}{queues}"
    )


def _addr_args(name: str, addr: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> str:
    # Same flags netprobe sends: IPv4 with its broadcast address, IPv6 without DAD.
    extra = " brd +" if addr.version == 4 and addr.network.prefixlen < 31 else ""
    extra += " nodad" if addr.version == 6 else ""
    return f"addr add {addr.with_prefixlen}{extra} dev {name}"


def _route_args(route: Route) -> str:
    if route.dev is not None or route.metric is not None or route.to == "default6":
        raise ValueError(f"route {route}: the ip baselines support `to` and `via` only")
    return f"route add {route.to} via {route.via}"


def per_op_lines(plan: Plan, ns: Callable[[str], str]) -> tuple[list[str], list[str]]:
    """(build, teardown) commands, one `ip` process each, in the kernel selftests' style."""
    up: list[str] = [f"ip netns add {ns(h)}" for h in plan.hosts]
    up += [f"ip -n {ns(h)} link set lo up" for h in plan.hosts]
    up += [f"ip -n {ns(h)} {_bridge_args(n, b)}" for h, n, b in plan.bridges]
    up += [f"ip -n {ns(p.host)} {_veth_args(p, ns, main_netns=False)}" for p in plan.veths]
    up += [f"ip -n {ns(h)} link set {n} master {m}" for (h, n), m in plan.masters.items()]
    up += [f"ip -n {ns(h)} link set {n} up" for h, n in plan.ups]
    up += [f"ip -n {ns(h)} {_addr_args(n, a)}" for h, n, a in plan.addresses]
    up += [f"ip -n {ns(h)} {r}" for h, r in plan.routes]
    return up, [f"ip netns del {ns(h)}" for h in plan.hosts]


def batch_files(
    plan: Plan, ns: Callable[[str], str], *, one_queue: bool = False
) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """(root batch, batch per host, teardown batch); one `ip` process per batch."""
    root = [f"netns add {ns(h)}" for h in plan.hosts]
    root += [_veth_args(p, ns, main_netns=True, one_queue=one_queue) for p in plan.veths]
    per_host: dict[str, list[str]] = {h: [] for h in plan.hosts}
    for host, name, bridge in plan.bridges:
        per_host[host].append(_bridge_args(name, bridge))
    for host, name in plan.ups:  # master and up in one request, as `ip link set` allows
        master = plan.masters.get((host, name))
        per_host[host].append(f"link set {name}{f' master {master}' if master else ''} up")
    for host, name, addr in plan.addresses:
        per_host[host].append(_addr_args(name, addr))
    for host, args in plan.routes:
        per_host[host].append(args)
    for host in plan.hosts:
        per_host[host].append("link set lo up")
    return root, per_host, [f"netns del {ns(h)}" for h in plan.hosts]


_SCRIPT = """\
#!/bin/bash
# Generated by bench/topology_build.py ({what}). Usage: bash {script} up|down|both
set -e
NAMESPACES=({namespaces})
cleanup() {{  # on failure: delete whatever of ours exists, so no run leaks namespaces
    for ns in "${{NAMESPACES[@]}}"; do
        [ -e "/run/netns/$ns" ] && ip netns del "$ns" 2>/dev/null || true
    done
}}
trap 'rc=$?; [ $rc -eq 0 ] || cleanup; exit $rc' EXIT
up() {{
{up}
}}
down() {{
{down}
}}
case "$1" in
    up) up ;;
    down) down ;;
    both) echo "T0 $EPOCHREALTIME"; up; echo "T1 $EPOCHREALTIME"; down; echo "T2 $EPOCHREALTIME" ;;
    *) echo "usage: $0 up|down|both" >&2; exit 2 ;;
esac
"""


@dataclass(frozen=True)
class Script:
    """A generated baseline: run `bash path MODE`; its namespaces all start with `prefix`."""

    path: Path
    prefix: str
    namespaces: dict[str, str]  # host -> namespace

    def run(self, mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(self.path), mode], capture_output=True, text=True, check=False
        )


def write_script(kind: str, plan: Plan, workdir: Path, runid: str) -> Script:
    prefix = f"{BENCH_PREFIX}{runid}-"
    namespaces = {h: f"{prefix}{h}" for h in plan.hosts}
    ns = namespaces.__getitem__
    path = workdir / f"{kind}.sh"
    if kind == "ip_per_op":
        up, down = per_op_lines(plan, ns)
    else:
        root, per_host, teardown = batch_files(plan, ns, one_queue=kind == "ip_batch_1q")
        (workdir / "root.batch").write_text("\n".join(root) + "\n")
        (workdir / "down.batch").write_text("\n".join(teardown) + "\n")
        up = [f"ip -batch {workdir / 'root.batch'}"]
        for i, (host, lines) in enumerate(per_host.items()):
            (workdir / f"ns{i}.batch").write_text("\n".join(lines) + "\n")
            up.append(f"ip -n {ns(host)} -batch {workdir / f'ns{i}.batch'}")
        down = [f"ip -batch {workdir / 'down.batch'}"]
    path.write_text(
        _SCRIPT.format(
            what=kind,
            script=path.name,
            namespaces=" ".join(map(shlex.quote, namespaces.values())),
            up=_indent(up),
            down=_indent(down),
        )
    )
    return Script(path, prefix, namespaces)


def _indent(lines: list[str]) -> str:
    return "\n".join(f"    {line}" for line in lines)


def remove_namespaces(prefix: str) -> list[str]:
    """Delete every namespace whose name starts with `prefix`; return their names."""
    names = [n for n in ip_netns_names() if n.startswith(prefix)]
    for name in names:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return names


def ip_netns_names() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


# -- verification: each contender must have built a working topology -------------------


def verify(spec: Spec, plan: Plan, run: Runner, who: str, *, timeout: float = 5.0) -> None:
    """Poll until `_problem` finds none. The scripts return before the kernel's linkwatch
    has reported carrier (it may defer that by up to a second), so a check made at once
    could see NO-CARRIER on a port that is fine a moment later."""
    deadline = time.monotonic() + timeout
    while (problem := _problem(spec, plan, run)) is not None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{who} built a broken topology: {problem}")
        time.sleep(0.1)


def _problem(spec: Spec, plan: Plan, run: Runner) -> str | None:
    """Sample hosts: address and UP on their links, lo UP, bridge ports UP, then a ping."""
    addressed = [h.name for h in spec.hosts if any(i.addresses for i in h.interfaces)]
    sample = list(dict.fromkeys([addressed[0], addressed[len(addressed) // 2], addressed[-1]]))
    for host in sample:
        for iface in spec.host(host).interfaces:
            _, out = run(host, ["ip", "-br", "addr", "show", "dev", iface.name])
            words = out.split()
            missing = [str(a) for a in iface.addresses if str(a) not in words]
            if len(words) < 2 or words[1] != "UP" or missing:
                return f"{host}:{iface.name} is not UP with {missing}: {out!r}"
        routes = [f"default via {r.via}" for r in spec.host(host).routes if r.to == "default"]
        _, shown = run(host, ["ip", "route", "show", "default"])
        if any(r not in shown for r in routes):
            return f"{host} lacks its default route: {shown!r}"
        _, lo = run(host, ["ip", "-o", "link", "show", "lo"])
        if ",UP" not in lo:
            return f"lo of {host} is down: {lo!r}"
    for host, bridge, _ in plan.bridges:
        ports = [n for (h, n), m in plan.masters.items() if h == host and m == bridge]
        _, out = run(host, ["ip", "-br", "link", "show", "master", bridge])
        up = [line for line in out.splitlines() if line.split()[1:2] == ["UP"]]
        if len(up) != len(ports):
            return f"{len(up)} of {len(ports)} ports of {host}:{bridge} are UP"
    target = _v4(spec.host(sample[-1]))[0]
    code, out = run(sample[0], ["ping", "-c", "1", "-W", "2", str(target.ip)])
    return None if code == 0 else f"{sample[0]} cannot ping {target.ip}: {out!r}"


def _v4(host: Host) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    return [a for i in host.interfaces for a in i.addresses if a.version == 4]


def ns_runner(namespaces: dict[str, str]) -> Runner:
    def run(host: str, argv: Sequence[str]) -> tuple[int, str]:
        return _ip_output(["ip", "netns", "exec", namespaces[host], *argv])

    return run


def verify_script(spec: Spec, plan: Plan, script: Script, who: str) -> None:
    try:
        proc = script.run("up")
        if proc.returncode != 0:
            raise RuntimeError(f"{who} failed to build: {proc.stderr.strip()}")
        verify(spec, plan, ns_runner(script.namespaces), who)
        if who == "ip_batch_1q":
            verify_one_queue(plan, ns_runner(script.namespaces), who)
        proc = script.run("down")
        if proc.returncode != 0:
            raise RuntimeError(f"{who} failed to tear down: {proc.stderr.strip()}")
    finally:
        remove_namespaces(script.prefix)


def verify_netprobe(spec: Spec, plan: Plan) -> None:
    with netprobe.build(spec) as topo:

        def run(host: str, argv: Sequence[str]) -> tuple[int, str]:
            result = topo.run(host, argv)
            return result.returncode, result.stdout + result.stderr

        verify(spec, plan, run, "netprobe")
        verify_one_queue(plan, run, "netprobe")


def verify_one_queue(plan: Plan, run: Runner, who: str) -> None:
    """Both ends of the first veth have one transmit and one receive queue."""
    pair = plan.veths[0]
    for host, name in ((pair.host, pair.name), (pair.peer_host, pair.peer_name)):
        _, out = run(host, ["ip", "-d", "-j", "link", "show", name])
        link = json.loads(out)[0]
        if (link["num_tx_queues"], link["num_rx_queues"]) != (1, 1):
            raise RuntimeError(f"{who}: {host}:{name} has not one queue each way: {out}")


# -- timing ---------------------------------------------------------------------------


@dataclass
class Sample:
    build: float
    teardown: float
    total: float


def time_netprobe(spec: Spec) -> Sample:
    t0 = time.perf_counter()
    topo = netprobe.build(spec)
    t1 = time.perf_counter()
    topo.teardown()
    t2 = time.perf_counter()
    return Sample(t1 - t0, t2 - t1, t2 - t0)


def time_script(script: Script) -> Sample:
    t0 = time.perf_counter()
    proc = script.run("both")
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{script.path.name} failed: {proc.stderr.strip()}")
    # The script stamps its phases; bash's own start-up is in `total` only.
    stamps = {w[0]: float(w[1]) for w in map(str.split, proc.stdout.splitlines()) if len(w) == 2}
    return Sample(stamps["T1"] - stamps["T0"], stamps["T2"] - stamps["T1"], total)


class RtnlProbe:
    """A no-op rtnetlink change (lo up, in a scratch namespace of our own) whose latency
    shows whether the kernel is still freeing earlier namespaces: that work runs in a
    workqueue after `ip netns del` returns and holds the RTNL lock for tens of
    milliseconds at a time with the CPUs idle, stalling whoever builds next."""

    def __init__(self, ns: str) -> None:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        self.ns = ns
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)
        self.sock.bind((0, 0))
        self.sock.settimeout(5)
        self.seq = 0
        self.latency()
        _, lo = _ip_output(["ip", "-n", ns, "-o", "link", "show", "lo"])
        if ",UP" not in lo:
            raise RuntimeError(f"the settle probe did not bring lo of {ns} up: {lo!r}")

    def latency(self) -> float:
        """Seconds for the kernel to answer RTM_NEWLINK(lo, IFF_UP)."""
        self.seq += 1
        # nlmsghdr (RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK) + ifinfomsg (index 1, IFF_UP).
        msg = struct.pack("=IHHII", 32, 16, 0x5, self.seq, 0) + struct.pack(
            "=BxHiII", 0, 0, 1, 1, 1
        )
        t0 = time.perf_counter()
        self.sock.send(msg)
        reply = self.sock.recv(4096)
        elapsed = time.perf_counter() - t0
        (error,) = struct.unpack_from("=i", reply, 16)
        if error:
            raise OSError(-error, f"settle probe in {self.ns}: {os.strerror(-error)}")
        return elapsed

    def close(self) -> None:
        self.sock.close()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, check=False)


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET; os.setns needs Python 3.12
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _ip_output(argv: Sequence[str]) -> tuple[int, str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def settle(probe: RtnlProbe, max_wait: float = 3.0) -> None:
    """Wait (bounded) until the CPUs are mostly idle and RTNL is free: what the previous
    contender tore down must not bill the next one."""
    deadline = time.monotonic() + max_wait
    before = _cpu_times()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        after = _cpu_times()
        total, idle = after[0] - before[0], after[1] - before[1]
        if total and 1 - idle / total < 0.25:
            break
        before = after
    quick = 0
    while quick < 3 and time.monotonic() < deadline:
        quick = quick + 1 if probe.latency() < 0.002 else 0
        time.sleep(0.01)


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]  # idle + iowait


def measure(
    spec: Spec, reps: int, workdir: Path, probe: RtnlProbe, *, per_op: bool = True
) -> dict[str, list[Sample]]:
    plan = plan_of(spec)
    kinds = [("ip_per_op", "op")] if per_op else []
    kinds += [("ip_batch", "ba"), ("ip_batch_1q", "b1")]
    scripts = {
        k: write_script(k, plan, _subdir(workdir, f"{spec.name}-{k}"), f"{os.getpid():x}-{tag}")
        for k, tag in kinds
    }
    verify_netprobe(spec, plan)
    for kind, script in scripts.items():
        verify_script(spec, plan, script, kind)
    contenders = tuple(c for c in CONTENDERS if c == "netprobe" or c in scripts)
    samples: dict[str, list[Sample]] = {k: [] for k in contenders}
    for rep in range(reps):
        n = len(contenders)
        order = contenders[rep % n :] + contenders[: rep % n]  # rotate who goes first
        for who in order:
            settle(probe)
            try:
                sample = time_netprobe(spec) if who == "netprobe" else time_script(scripts[who])
            finally:  # whatever happened, no baseline namespace outlives its repetition
                for script in scripts.values():
                    remove_namespaces(script.prefix)
            samples[who].append(sample)
            print(f"  {spec.name} rep {rep + 1} {who}: {sample.total:.3f} s", file=sys.stderr)
    return samples


def _subdir(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir()
    return path


# -- report ---------------------------------------------------------------------------


def median(samples: list[Sample], what: str = "total") -> float:
    return statistics.median(float(getattr(s, what)) for s in samples)


def print_table(results: dict[str, dict[str, list[Sample]]]) -> None:
    head = (
        f"{'topology':<10} {'contender':<11} {'build':>9} {'teardown':>9} "
        f"{'total':>9} {'min':>9} {'max':>9} {'reps':>5}"
    )
    print(head)
    print("-" * len(head))
    for topo, by_who in results.items():
        for who, samples in by_who.items():
            totals = [s.total for s in samples]
            print(
                f"{topo:<10} {who:<11} {median(samples, 'build'):>8.4f}s "
                f"{median(samples, 'teardown'):>8.4f}s {median(samples):>8.4f}s "
                f"{min(totals):>8.4f}s {max(totals):>8.4f}s {len(samples):>5}"
            )
    print(
        "(medians in seconds; build/teardown of the scripts exclude bash start-up, "
        "total includes it)"
    )
    print(
        "\nratios of medians, and in brackets the median of per-repetition ratios (the "
        "contenders of one repetition ran back to back, so that one resists drifting load):"
    )
    for topo, by_who in results.items():
        print(
            f"  {topo:<10} netprobe/ip_batch {_ratio(by_who, 'netprobe', 'ip_batch')}"
            f"   netprobe/ip_batch_1q {_ratio(by_who, 'netprobe', 'ip_batch_1q')}"
            f"   ip_per_op/netprobe {_ratio(by_who, 'ip_per_op', 'netprobe')}"
        )


def _ratio(by_who: dict[str, list[Sample]], num: str, den: str) -> str:
    if num not in by_who or den not in by_who:
        return "  n/a"
    pairs = zip(by_who[num], by_who[den], strict=True)
    paired = statistics.median(a.total / b.total for a, b in pairs)
    return f"{median(by_who[num]) / median(by_who[den]):5.2f} [{paired:5.2f}]"


def summary(results: dict[str, dict[str, list[Sample]]], keys: list[str]) -> dict[str, object]:
    def med(topo: str, who: str) -> float | None:
        found = results.get(topo, {}).get(who)
        return round(median(found), 5) if found else None

    def ratio(topo: str, num: str, den: str) -> float | None:
        a, b = med(topo, num), med(topo, den)
        return round(a / b, 3) if a is not None and b else None

    return {
        "bench": "topology_build",
        "netprobe_s": {k: med(k, "netprobe") for k in keys},
        "baseline": {who: {k: med(k, who) for k in keys} for who in CONTENDERS[1:]},
        "ratio": {
            "netprobe_vs_ip_batch": {k: ratio(k, "netprobe", "ip_batch") for k in keys},
            "netprobe_vs_ip_batch_1q": {k: ratio(k, "netprobe", "ip_batch_1q") for k in keys},
            "ip_per_op_vs_netprobe": {k: ratio(k, "ip_per_op", "netprobe") for k in keys},
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, help="repetitions (default: 20 redblue, 5 star)")
    parser.add_argument(
        "--hosts", type=_sizes, default=[200],
        help="leaves of the star; several stars side by side: --hosts 200,1000",
    )
    parser.add_argument("--only", choices=("redblue", "star"))
    parser.add_argument(
        "--per-op-max-hosts", type=int, default=200,
        help="leave ip_per_op out of stars larger than this (7 ip processes a host)",
    )
    parser.add_argument("--no-scale", action="store_true", help="skip the checks at scale")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root: it builds network namespaces")
    star_keys = [f"star{n}" for n in args.hosts]
    star_key = star_keys[-1]  # the largest: the checks at scale run on it
    jobs = {"redblue": (netprobe.load(str(ROOT / "examples/redblue.yaml")), args.reps or 20)}
    jobs |= {k: (star_spec(n), args.reps or 5) for k, n in zip(star_keys, args.hosts, strict=True)}
    if args.only:
        jobs = {k: v for k, v in jobs.items() if k.startswith(args.only)}
    stale = [n for n in ip_netns_names() if n.startswith(BENCH_PREFIX)]
    if stale:
        print(
            f"warning: {len(stale)} {BENCH_PREFIX}* namespaces from another run exist",
            file=sys.stderr,
        )
    results: dict[str, dict[str, list[Sample]]] = {}
    rss: dict[str, float] = {}
    probe = RtnlProbe(f"{BENCH_PREFIX}{os.getpid():x}-settle")
    try:
        with tempfile.TemporaryDirectory(prefix="npbench-") as tmp:
            for key, (spec, reps) in jobs.items():
                print(f"{key}: verifying, then {reps} reps ...", file=sys.stderr, flush=True)
                per_op = args.per_op_max_hosts >= len(spec.hosts) - 1
                workdir = Path(tmp) / key  # two stars share the spec's name
                workdir.mkdir()
                results[key] = measure(spec, reps, workdir, probe, per_op=per_op)
                rss[key] = _peak_rss_mib()
        scale = None if args.no_scale or star_key not in jobs else scale_checks(jobs[star_key][0])
    finally:
        probe.close()
    print_table(results)
    print(f"peak RSS of this process (netprobe builds in it), after each: {rss} MiB")
    if scale is not None:
        for k, v in scale.items():
            print(f"  {k}: {v}")
    line = summary(results, ["redblue", *star_keys])
    line["netprobe_peak_rss_mib"] = rss
    line["scale"] = scale
    print(json.dumps(line))
    return 0


def _sizes(text: str) -> list[int]:
    """"200" or "200,1000": star sizes, smallest first."""
    try:
        sizes = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of hosts: {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"a star has at least one host, not {text!r}")
    return sizes


def _peak_rss_mib() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)



# -- at scale: frames right after the build, an explanation, teardown, clean after a kill -


_DROP_RULES = """table bridge npbench {
    chain forward { type filter hook forward priority 0; udp dport 7777 drop; }
}
"""


def scale_checks(spec: Spec) -> dict[str, object]:
    """On the star: frames sent the moment build() returns must all arrive (no settling
    left to the caller); a probe dropped on the switch is explained by the drop trace;
    teardown leaves nothing; after a SIGKILL, what `netprobe clean` does for the run
    removes everything, timed."""
    from netprobe.expect import at, expect
    from netprobe.explain import explain
    from netprobe.traffic import _craft as craft

    leaves = [h.name for h in spec.hosts if h.name != "switch"]
    mid = leaves[len(leaves) // 2]
    pairs = [(leaves[0], leaves[-1]), (leaves[-1], leaves[0]), (mid, leaves[1])]
    out: dict[str, object] = {}
    with netprobe.build(spec) as topo:
        runid = topo.runid

        def frame(src: str, dst: str, dport: int) -> object:
            ips = [str(_v4(spec.host(h))[0].ip) for h in (src, dst)]
            macs = [topo.mac(h, "eth0") for h in (src, dst)]
            return craft.udp(*macs, *ips, dport=dport)

        first = [expect(topo, frame(a, b, 9), f"{a}:eth0", at(f"{b}:eth0")) for a, b in pairs]
        out["frames_after_build"] = f"{sum(o.passed for o in first)}/{len(first)} arrived"
        topo.run("switch", ["nft", "-f", "-"], input=_DROP_RULES, check=True)
        a, b = pairs[0]
        dropped = frame(a, b, 7777)
        failed = expect(topo, dropped, f"{a}:eth0", at(f"{b}:eth0"))
        t0 = time.perf_counter()
        why = explain(topo, dropped, f"{a}:eth0", failed)
        out["explain_s"] = round(time.perf_counter() - t0, 3)
        out["explain_failed_as_it_should"] = not failed.passed
        out["explain_top"] = why.top.text if why.top else None
        out["explain_drops"] = [f"{d.reason} on {d.host}:{d.device}" for d in why.drops.drops]
        out["explain_notes"] = list(dict.fromkeys([*why.notes, *why.drops.notes]))
    out["left_after_teardown"] = _left_of(runid)
    out.update(_clean_after_kill(len(leaves)))
    return out


def _left_of(runid: str) -> list[str]:
    from netprobe.topology._kernel import netns, owner

    prefix = owner.ns_prefix(runid)
    left = [n for n in netns.list_names() if n.startswith(prefix)]
    return left + [f"record {r.runid}" for r in owner.read_records() if r.runid == runid]


_KILLED = """
import sys, time
sys.path.insert(0, {bench!r})
from topology_build import star_spec
import netprobe
topo = netprobe.build(star_spec({hosts}))
print(topo.runid, flush=True)
time.sleep(600)
"""


def _clean_after_kill(hosts: int) -> dict[str, object]:
    """Build in a child, SIGKILL it once built, then time the removal `netprobe clean`
    makes of a dead run (for this run's record only: other users' runs are theirs)."""
    from netprobe.topology._kernel import cleanup, netns, owner

    code = _KILLED.format(bench=str(ROOT / "bench"), hosts=hosts)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    runid = child.stdout.readline().strip()
    child.kill()
    child.wait()
    if not runid:
        raise RuntimeError("the child to be killed did not build its star")
    (record,) = [r for r in owner.read_records() if r.runid == runid]
    t0 = time.perf_counter()
    report = cleanup.CleanReport()
    cleanup.remove_run(record, netns.list_names(), report)
    took = time.perf_counter() - t0
    return {
        "clean_after_kill_s": round(took, 3),
        "clean_removed_namespaces": len(report.removed_namespaces),
        "left_after_clean": _left_of(runid),
    }


if __name__ == "__main__":
    sys.exit(main())
