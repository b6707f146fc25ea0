#!/usr/bin/env python3
"""Regenerate the pcaps in captures/ from real topologies (needs root).

    .venv/bin/python captures/make_captures.py [--out captures/]

Each capture builds one of examples/*.yaml (with its MAC addresses pinned, so the files
and the unit tests that replay them do not depend on random addresses), sends a few
probes with `netprobe.expect.expect`, insists on a PASS, and writes the frames the
watched port received as pcapng (interface named after the port). The frames are what
the kernel really delivered: MACs, TTL, checksums and NAT rewrites are the kernel's.

The constants and templates below are the contract with tests/unit/test_traffic_match.py,
which imports them and rebuilds each probe (`Template.probe(nonce)` with the nonce found in
the pcap).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from netprobe.expect import ROUTED, Outcome, at, expect
from netprobe.topology import Spec, Topology, build, load
from netprobe.traffic import Captured, Template, find_nonce, ports, udp, write_pcap
from netprobe.traffic._capture import Source, wait_readable

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# redblue: MACs as in the example file
RED_MAC, BLUE_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"

# router: pinned here (the example leaves them random)
LEFT_MAC, ROUTER_LEFT_MAC = "02:01:00:00:00:0a", "02:01:00:00:00:01"
ROUTER_RIGHT_MAC, RIGHT_MAC = "02:02:00:00:00:01", "02:02:00:00:00:0a"

# nat-gateway: vm1's MAC is the example's; the others pinned here
VM1_MAC, VMBR1_MAC = "02:10:10:10:00:65", "02:10:10:10:00:01"
UPLINK_MAC, INTERNET_MAC = "02:cb:00:71:00:0a", "02:cb:00:71:00:01"
PUBLIC_IP = "203.0.113.10"

# the files written, and the port each one's frames were seen at
DELIVERED = "redblue-udp-delivered.pcapng"  # (a) blue:eth0
VLAN10 = "redblue-vlan10-delivered.pcapng"  # (d) blue:eth0
QINQ = "redblue-qinq-100-10-delivered.pcapng"  # blue:eth0
ROUTED_PCAP = "router-udp-routed.pcapng"  # (b) right:eth0
NATED = "nat-udp-masqueraded.pcapng"  # (c) internet:eth0
BEFORE_SNAT = "nat-udp-before-snat.pcapng"  # pve:vmbr1, the same probes before SNAT


def redblue_udp(vlan: int | tuple[int, int] | None = None) -> Template:
    return udp(RED_MAC, BLUE_MAC, "10.0.0.1", "10.0.0.2", sport=40000, dport=9, vlan=vlan)


def router_udp() -> Template:
    return udp(LEFT_MAC, ROUTER_LEFT_MAC, "10.1.0.10", "10.2.0.10", sport=40001, dport=9)


def nat_udp() -> Template:
    return udp(VM1_MAC, VMBR1_MAC, "10.10.10.101", "203.0.113.1", sport=40002, dport=9)


def pinned(spec: Spec, macs: Mapping[str, str]) -> Spec:
    """`spec` with the MAC of each "host:iface" in `macs` fixed."""
    hosts = []
    for host in spec.hosts:
        interfaces = tuple(
            dataclasses.replace(i, mac=macs.get(f"{host.name}:{i.name}", i.mac))
            for i in host.interfaces
        )
        hosts.append(dataclasses.replace(host, interfaces=interfaces))
    return dataclasses.replace(spec, hosts=tuple(hosts))


@contextmanager
def topology(example: str, macs: Mapping[str, str] | None = None) -> Iterator[Topology]:
    spec = pinned(load(EXAMPLES / example), macs or {})
    with build(spec) as topo:
        yield topo


def save(out: Path, name: str, port: str, frames: list[Captured]) -> None:
    write_pcap(out / name, port, frames)
    print(f"  {name}: {len(frames)} frames seen at {port}")


def passed(outcome: Outcome) -> Outcome:
    if not outcome.passed:
        sys.exit(f"capture aborted, the probe did not behave:\n{outcome.evidence()}")
    return outcome


def capture_redblue(out: Path) -> None:
    """(a) UDP across the bridge; (d) 802.1Q-tagged and 802.1ad+802.1Q through it."""
    with topology("redblue.yaml") as topo:
        cases: list[tuple[str, int | tuple[int, int] | None]] = [
            (DELIVERED, None),
            (VLAN10, 10),
            (QINQ, (100, 10)),
        ]
        for name, vlan in cases:
            outcome = passed(expect(topo, redblue_udp(vlan), "red:eth0", at("blue:eth0"), count=3))
            save(out, name, "blue:eth0", outcome.reports["blue:eth0"].frames)


def capture_router(out: Path) -> None:
    """(b) routed by router.yaml's router: new MACs, TTL 63, new IPv4 header checksum."""
    macs = {
        "left:eth0": LEFT_MAC,
        "router:eth0": ROUTER_LEFT_MAC,
        "router:eth1": ROUTER_RIGHT_MAC,
        "right:eth0": RIGHT_MAC,
    }
    with topology("router.yaml", macs) as topo:
        outcome = passed(
            expect(topo, router_udp(), "left:eth0", at("right:eth0"), match=ROUTED, count=2)
        )
        save(out, ROUTED_PCAP, "right:eth0", outcome.reports["right:eth0"].frames)


def capture_nat(out: Path) -> None:
    """(c) masqueraded by nat-gateway's pve: ip.src 203.0.113.10 at internet:eth0.

    The same probes are also kept as they reached the gateway's bridge, before SNAT.
    """
    macs = {"pve:vmbr1": VMBR1_MAC, "pve:uplink": UPLINK_MAC, "internet:eth0": INTERNET_MAC}
    with topology("nat-gateway.yaml", macs) as topo:
        vmbr1 = topo.ifname("pve", "vmbr1")
        address = topo.run("pve", ["cat", f"/sys/class/net/{vmbr1}/address"], check=True)
        if address.stdout.strip() != VMBR1_MAC:
            sys.exit(f"vmbr1 has MAC {address.stdout.strip()}, not the pinned {VMBR1_MAC}")
        inside = ports(topo).capture("pve:vmbr1")
        inside.drain()
        outcome = passed(
            expect(
                topo,
                nat_udp(),
                "vm1:eth0",
                at("internet:eth0"),
                match=ROUTED.rewriting(src=PUBLIC_IP),
                count=2,
            )
        )
        save(out, NATED, "internet:eth0", outcome.reports["internet:eth0"].frames)
        probes = {s["nonce"] for s in outcome.sent}
        save(out, BEFORE_SNAT, "pve:vmbr1", _wait_for(inside, probes))


def _wait_for(cap: Source, nonces: set[bytes | None], timeout: float = 1.0) -> list[Captured]:
    """Frames read from `cap` until every nonce in `nonces` has been seen."""
    frames: list[Captured] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wait_readable([cap], 0.05)
        frames += cap.read()
        if nonces <= {find_nonce(f.data) for f in frames}:
            return frames
    sys.exit(f"the probes never showed up on {cap.port}")


STEPS: list[Callable[[Path], None]] = [capture_redblue, capture_router, capture_nat]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for step in STEPS:
        print(step.__doc__.split("\n")[0] if step.__doc__ else step.__name__)
        step(args.out)


if __name__ == "__main__":
    main()
