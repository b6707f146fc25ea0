"""exposure: what a host listens on, what a neighbour reaches, and what should be exposed.

Three sources, compared for every port in question (each port the host listens on,
and each port the policy names), in each address family both hosts have:

- listening: `ss -H -ltnu` inside the host's namespace (loopback-only listeners aside);
- reachable: nmap run inside the neighbour's namespace (SYN scan for TCP, UDP scan for
  UDP), its XML read by python-nmap;
- intended: the policy (the filter check's format): an INPUT line with `expect: accept`
  whose `from` includes the neighbour means the port is meant to be reachable from it.

A port open but not intended, or intended but unreachable, fails its step, and the
diagnosis says which, and how (listening or not; nmap's state: closed, filtered).
`listen` names services the check itself runs in the host while it works (small Python
listeners: TCP accepts, UDP echoes), for the reference topology; pass listen="" on a
host whose real services are running.
"""

from __future__ import annotations

import ipaddress
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from netprobe.check import Check, Context, Param, Status, Step, param, reference_path
from netprobe.errors import SetupError, SpecError, TopologyError
from netprobe.topology import Topology

from .exposure_probe import explain_unreachable
from .filter.policy import Line, load_policy

__all__ = ["CHECK", "run"]

_NAMES = {4: "IPv4", 6: "IPv6"}
_NMAP = ["nmap", "-oX", "-", "-Pn", "-n", "-T5", "--max-retries", "1", "--min-rate", "5000",
         "--initial-rtt-timeout", "50ms", "--max-rtt-timeout", "100ms"]
# One process serves every service: dual-stack sockets, TCP accepts, UDP echoes (so that
# nmap sees "open", not "open|filtered"). A port already taken is left to its owner.
_LISTENER = r"""
import select, socket, sys
socks = []
for spec in sys.argv[1:]:
    proto, port = spec.split("/")
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        s.bind(("::", int(port)))
    except OSError:
        continue
    if proto == "tcp":
        s.listen(64)
    socks.append(s)
print("ready", flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        if s.type == socket.SOCK_STREAM:
            s.accept()[0].close()
        else:
            data, peer = s.recvfrom(65535)
            s.sendto(data or b"\n", peer)
"""

Service = tuple[str, int]


@dataclass(frozen=True)
class _Scan:
    """What nmap found, scanning `target` from `source` over one family."""

    family: int
    source: str
    target: str
    states: dict[Service, str]


def body(ctx: Context, *, host: str = "web", neighbour: str = "client",
         policy: str | None = None, listen: str = "tcp/22,tcp/80,udp/53,tcp/5432") -> None:
    """Compare listening, reachable and intended for each port in question."""
    # tcp/udp input lines of new flows: what a scan can answer; the others are not for it
    lines = [line for line in load_policy(policy or reference_path("exposure-policy.yml"))
             if line.scannable]
    targets = _targets(ctx.topo, host, neighbour)
    with _listeners(ctx.topo, host, _services(listen)):
        listening = _listening(ctx.topo, host)
        services = sorted(set(listening) | {(line.proto, line.port) for line in lines})
        with ThreadPoolExecutor(len(targets)) as pool:  # one nmap per family, at once
            scans = list(pool.map(lambda t: _Scan(t[0], t[1], t[2], _scan(
                ctx.topo, neighbour, t[2], t[0], services)), targets))
    _unscanned(ctx, host, neighbour, listening, targets)
    findings: dict[str, list[str]] = {}
    for scan in scans:
        for service in services:
            text = _judge(ctx, host, neighbour, scan, service, listening.get(service, {}),
                          _intended(lines, service, scan.source))
            if text:
                findings.setdefault(text, []).append(_NAMES[scan.family])
    for text, families in findings.items():
        where = "" if len(families) == len(scans) else f" over {', '.join(families)}"
        head, _, tail = text.partition(" (")
        ctx.diagnose(f"{head}{where} ({tail}")


def _judge(ctx: Context, host: str, neighbour: str, scan: _Scan, service: Service,
           addresses: dict[int, list[str]], intended: bool) -> str | None:
    """Record one step; return the finding when reach and intent disagree."""
    svc, state = f"{service[0]}/{service[1]}", scan.states.get(service, "unknown")
    bound = addresses.get(scan.family, [])
    shown = ", ".join("every address" if a == "*" else a for a in bound)
    listens = f"listening on {shown}" if bound else "not listening"
    name = f"{svc} on {scan.target}: {'intended' if intended else 'not intended'}"
    detail = f"nmap from {neighbour}: {state}; {host} is {listens}"
    if state == "open|filtered" and (intended or bound):
        ctx.steps.append(Step(name, Status.INCONCLUSIVE,
                              detail + " (no answer: nmap cannot tell open from filtered)"))
        return None
    reachable = state == "open"
    step = Step(name, Status.PASS if reachable == intended else Status.FAIL, detail)
    ctx.steps.append(step)
    if intended and not reachable:
        explain_unreachable(ctx, step, neighbour, scan.target, service)
    if reachable and not intended:
        return f"{svc} open on {host} but not intended ({listens}, reached by {neighbour})"
    if intended and not reachable:
        how = "listening" if bound else "not listening"
        return f"{svc} intended but unreachable from {neighbour} ({how}, {state})"
    return None


def _unscanned(ctx: Context, host: str, neighbour: str,
               listening: dict[Service, dict[int, list[str]]],
               targets: list[tuple[int, str, str]]) -> None:
    """Listeners the scans cannot speak for (another address, a family the neighbour
    lacks) are INCONCLUSIVE steps: what was not scanned is not proven closed."""
    scanned = {family: target for family, _, target in targets}
    for (proto, port), by_family in sorted(listening.items()):
        for family, bound in sorted(by_family.items()):
            target = scanned.get(family)
            if target is None:
                ctx.inconclusive(f"{proto}/{port} over {_NAMES[family]}: not scanned",
                                 f"{host} listens, but {neighbour} has no {_NAMES[family]} "
                                 "address to scan from")
                continue
            for address in bound:
                if address not in ("*", "0.0.0.0", "::", target):  # wildcards are scanned
                    ctx.inconclusive(f"{proto}/{port} on {address}: not scanned",
                                     f"{host} listens there; the scan over "
                                     f"{_NAMES[family]} went to {target}")


def _intended(lines: list[Line], service: Service, source: str) -> bool:
    """The first line about this service that covers the neighbour's address decides."""
    address = ipaddress.ip_address(source)
    for line in lines:
        if (line.proto, line.port) != service or address.version not in line.families:
            continue
        net = line.source(address.version)
        if net is None or address in net:
            return line.expect == "accept"
    return False


def _targets(topo: Topology, host: str, neighbour: str) -> list[tuple[int, str, str]]:
    """Per family both hosts have: (family, the neighbour's address, the host's address
    to scan), the host's lowest address on the neighbour's subnet when there is one (so
    that the choice does not hang on the order addresses were added in); addresses as
    the hosts' kernels have them."""
    def addresses(name: str) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        if name not in topo.hosts:
            raise SpecError(f"no host {name!r} in topology {topo.spec.name!r}")
        return [a for i in topo.live(name).interfaces for a in i.addresses
                if not (a.ip.is_link_local or a.ip.is_loopback)]
    mine, theirs = addresses(host), addresses(neighbour)
    out = []
    for family in (4, 6):
        near = [a for a in theirs if a.version == family]
        far = [a for a in mine if a.version == family]
        if near and far:
            far.sort(key=lambda a: (a.ip not in near[0].network, a.ip))
            out.append((family, str(near[0].ip), str(far[0].ip)))
    if not out:
        raise SpecError(f"{host} and {neighbour} share no address family to scan over")
    return out


def _services(listen: str) -> list[str]:
    items = [s.strip().lower() for s in listen.split(",") if s.strip()]
    for item in items:
        if not re.fullmatch(r"(tcp|udp)/\d{1,5}", item):
            raise SpecError(f"listen takes services like tcp/22,udp/53, not {item!r}")
    return items


@contextmanager
def _listeners(topo: Topology, host: str, services: list[str]) -> Iterator[None]:
    """Run the listeners in the host for the duration; kill them after."""
    if not services:
        yield
        return
    argv = [sys.executable, "-c", _LISTENER, *services]
    proc = topo.spawn(host, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        if not select.select([proc.stdout], [], [], 10)[0] or proc.stdout.readline() != "ready\n":
            err = proc.stderr.read().strip() if proc.poll() is not None else "no answer in 10 s"
            raise TopologyError(f"the listeners ({', '.join(services)}) in {host} did not "
                                f"start: {err}")
        yield
    finally:
        proc.terminate()
        proc.wait()


def _listening(topo: Topology, host: str) -> dict[Service, dict[int, list[str]]]:
    """What `ss` says the host listens on: per service, per family, the addresses
    (loopback ones left out: nothing outside the host reaches them)."""
    out: dict[Service, dict[int, list[str]]] = {}
    for row in topo.run(host, ["ss", "-H", "-ltnu"], check=True).stdout.splitlines():
        fields = row.split()
        if len(fields) < 5:
            continue
        address, _, port = fields[4].rpartition(":")
        address = re.sub(r"%\S*$", "", address).strip("[]")  # 127.0.0.53%lo, [::1]
        families = [4, 6] if address == "*" else [ipaddress.ip_address(address).version]
        if address != "*" and ipaddress.ip_address(address).is_loopback:
            continue
        for family in families:
            out.setdefault((fields[0], int(port)), {}).setdefault(family, []).append(address)
    return out


def _scan(topo: Topology, neighbour: str, target: str, family: int,
          services: list[Service]) -> dict[Service, str]:
    """nmap's state for each service, scanned from inside the neighbour's namespace."""
    try:
        import nmap
    except ImportError:
        raise SetupError("python-nmap is not installed",
                         remedy="pip install python-nmap") from None
    tcp = [str(p) for proto, p in services if proto == "tcp"]
    udp = [str(p) for proto, p in services if proto == "udp"]
    ranges = ([f"T:{','.join(tcp)}"] if tcp else []) + ([f"U:{','.join(udp)}"] if udp else [])
    argv = [*_NMAP, *(["-6"] if family == 6 else []), *(["-sS"] if tcp else []),
            *(["-sU"] if udp else []), "-p", ",".join(ranges), target]
    result = topo.run(neighbour, argv, check=True)
    scan = nmap.PortScanner().analyse_nmap_xml_scan(result.stdout)["scan"]
    found: dict[str, Any] = next(iter(scan.values()), {})
    return {(proto, int(port)): info["state"]
            for proto in ("tcp", "udp") for port, info in found.get(proto, {}).items()}


CHECK = Check(
    name="exposure",
    summary="what a host listens on, what a neighbour reaches and what the policy intends "
            "agree",
    body=body,
    reference="exposure.yaml",
    requires=("veth", "nmap"),
    params={
        "host": Param("the host whose exposure is checked", param.host()),
        "neighbour": Param("the host nmap scans from", param.host()),
        "policy": Param(
            "the policy file (filter format; default: exposure-policy.yml)",
            param.text,
        ),
        "listen": Param(
            "services the check runs in host meanwhile, e.g. tcp/22,udp/53 "
                      "('' for none)",
            param.services,
        ),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
