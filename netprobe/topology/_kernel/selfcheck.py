"""After building, prove the topology is what the spec says before anything uses it.

Links must be administratively up with carrier, and addresses must have left the
tentative state. Carrier of a bridge is only required when a port can forward (STP off
and at least one port), since a bridge without forwarding ports has none by design.
An interface used as it exists (no type, in an adopted host) has no carrier promised: it
need only exist, and if it is up with carrier, be operational.
"""

from __future__ import annotations

import time

from ...errors import TopologyError
from .._model.spec import Bridge, Host, Interface, OvsBond, OvsBridge, OvsVxlan, Tap, Vxlan
from . import dhcp
from .links import IFF_UP
from .live import HostState, Topology
from .netlink import AddrState

_BR_STATE_FORWARDING = 3
_IF_OPER_DOWN, _IF_OPER_UP = 2, 6
_IFA_F_DADFAILED = 0x08
_IFA_F_TENTATIVE = 0x40
_DAD_WAIT = 5.0  # seconds, only when a host asked for duplicate address detection
LEASE_WAIT = 15.0  # seconds for every DHCP client to hold its lease


def verify(topo: Topology, *, timeout: float = 2.0) -> None:
    """Raise TopologyError naming the first object that is not as specified."""
    for state in topo.hosts.values():
        deadline = time.monotonic() + (_DAD_WAIT if state.spec.ipv6_dad else timeout)
        while True:
            problem = _problem(topo, state)
            if problem is None:
                break
            if time.monotonic() > deadline or "failed duplicate address" in problem:
                raise TopologyError(f"self-check failed: {problem}", obj=problem.split(":")[0])
            time.sleep(0.01)


def _problem(topo: Topology, state: HostState) -> str | None:
    host = state.spec
    kernel_links = [  # not OVS's own, nor what exists already (it is as it was found)
        i
        for i in host.interfaces
        if not isinstance(i.kind, (OvsBond, OvsVxlan)) and i.observed is None
    ]
    # Asking for each link alone settles the kernel's pending link-watch work for it (all
    # of a host's asked in one write, the answers read together); the answers are what
    # is checked. Interfaces that exist already are asked for too, for their names. The
    # addresses come with them (asked for after the links, in the same write).
    asked = [i for i in host.interfaces if not isinstance(i.kind, (OvsBond, OvsVxlan))]
    names = [topo.ifname(host.name, i.name) for i in asked]
    links, addrs = state.nl.settle(names, addresses=True)
    for iface in kernel_links:
        link = links.get(topo.ifname(host.name, iface.name))
        if link is None:
            return f"{host.name}:{iface.name} does not exist"
        if (host.name, iface.name) in topo.spec.existing:
            if link.flags & IFF_UP and link.carrier and link.operstate == _IF_OPER_DOWN:
                return f"{host.name}:{iface.name} has carrier but is not operational yet"
            continue
        if not iface.up:
            continue
        if not link.flags & IFF_UP:
            return f"{host.name}:{iface.name} is down"
        if _needs_carrier(host, iface) and not link.carrier:
            return f"{host.name}:{iface.name} is up but has no carrier"
        if (
            link.operstate != _IF_OPER_UP
            and _needs_carrier(host, iface)
            and not isinstance(iface.kind, (Tap, OvsBridge, Vxlan))
        ):  # a TAP (an OVS bridge's own interface is one), a VXLAN stay "unknown" for good
            # Carrier is on, but the kernel's link watcher has not activated the transmit
            # queue: until it has, every frame sent is dropped (QDISC_DROP), though a
            # bridge may already call the port forwarding.
            return f"{host.name}:{iface.name} has carrier but is not operational yet"
    problem = _port_problem(topo, state)
    return problem or _address_problem(state, addrs, {link.index: n for n, link in links.items()})


def _port_problem(topo: Topology, state: HostState) -> str | None:
    """Ports of STP-less bridges must be forwarding (with STP they take forward_delay)."""
    host = state.spec
    bridges = {i.name for i in host.interfaces if isinstance(i.kind, Bridge) and not i.kind.stp}
    ports = [i for i in host.interfaces if i.master in bridges and i.up]
    if not ports:
        return None
    states = state.nl.bridge_port_states()
    for port in ports:
        if states.get(topo.ifname(host.name, port.name)) != _BR_STATE_FORWARDING:
            return f"{host.name}:{port.name} is not forwarding yet on bridge {port.master}"
    return None


def _needs_carrier(host: Host, iface: Interface) -> bool:
    if isinstance(iface.kind, Bridge):
        ports = [i for i in host.interfaces if i.master == iface.name and i.up]
        return not iface.kind.stp and bool(ports)
    return True


def _address_problem(
    state: HostState, addrs: list[AddrState], names: dict[int, str]
) -> str | None:
    wanted = {str(a.ip): i.name for i in state.spec.interfaces for a in i.addresses}
    present: set[str] = set()
    for addr in addrs:
        if addr.address not in wanted:
            continue  # link-local and pre-existing addresses are not the spec's
        where = f"{state.spec.name}:{names.get(addr.index, addr.index)}"
        if addr.flags & _IFA_F_DADFAILED:
            return f"{where}: address {addr.address} failed duplicate address detection"
        if addr.flags & _IFA_F_TENTATIVE:
            return f"{where}: address {addr.address} is still tentative"
        present.add(addr.address)
    missing = sorted(set(wanted) - present)
    if missing:
        return f"{state.spec.name}:{wanted[missing[0]]}: address {missing[0]} is missing"
    return None


def verify_leases(topo: Topology, *, timeout: float | None = None) -> None:
    """Every DHCP client netprobe runs holds a lease: its script wrote it down, and the
    address is on the interface. None by the deadline (or a client gone): TopologyError
    naming the interface, with the client's last log lines. `timeout`: LEASE_WAIT."""
    timeout = LEASE_WAIT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    for host in topo.spec.hosts:
        for iface in dhcp.clients(host):
            while (problem := dhcp.lease_problem(topo, host, iface)) is not None:
                running = dhcp.client_running(topo, host, iface)
                if not running or time.monotonic() > deadline:
                    why = "its client exited" if not running else f"none after {timeout:g} s"
                    raise TopologyError(
                        f"self-check failed: {problem} ({why})"
                        f"{dhcp.client_log(topo, host, iface)}",
                        obj=f"{host.name}:{iface.name}",
                    )
                time.sleep(0.02)
