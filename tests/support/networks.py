"""Hand-made networks the checks' tests share, built with plain `ip` and `sysctl` commands
in a `Handmade` (never from a netprobe spec). Each builder makes its namespaces, wires
them, waits for IPv6 duplicate address detection to finish (`Handmade.settle`) and
returns the check parameters that name its ports; a test then sabotages it by hand
(`handmade.run("ip -n {sw} link set p2 nomaster")`) and runs the check on
`handmade.spec(...)`, which adopts every namespace made.
"""

from __future__ import annotations

from .handmade import Handmade


def veth_pair(net: Handmade, a: str = "va", b: str = "vb") -> dict[str, str]:
    """Two namespaces joined by a veth, `e0` at each end, both up: the veth check's
    parameters (a, b)."""
    net.netns(a, b)
    net.run(
        f"ip link add e0 netns {{{a}}} address 02:00:00:00:0a:01 type veth "
        f"peer name e0 netns {{{b}}} address 02:00:00:00:0b:01",
        f"ip -n {{{a}}} link set e0 up",
        f"ip -n {{{b}}} link set e0 up",
    )
    net.settle()
    return {"a": f"{a}:e0", "b": f"{b}:e0"}


def lan(
    net: Handmade,
    hosts: tuple[str, ...] = ("a", "b"),
    *,
    switch: str = "sw",
    subnet: str = "10.71.0",
    ageing: int | None = None,
) -> dict[str, str]:
    """Hosts on one Linux bridge `br0` in namespace `switch`: host i (from 1) has `e0`
    with MAC 02:71:00:00:00:0i and subnet.i/24, its veth peer is the bridge port `pi`.
    `ageing`: the bridge's ageing time in seconds. Returns the bridge check's parameters
    (bridge, hosts)."""
    net.netns(switch, *hosts)
    options = "" if ageing is None else f" ageing_time {ageing * 100}"
    net.run(f"ip -n {{{switch}}} link add br0 type bridge stp_state 0{options}",
            f"ip -n {{{switch}}} link set br0 up")
    for i, host in enumerate(hosts, 1):
        net.run(
            f"ip link add e0 netns {{{host}}} address 02:71:00:00:00:{i:02x} type veth "
            f"peer name p{i} netns {{{switch}}}",
            f"ip -n {{{switch}}} link set p{i} master br0 up",
            f"ip -n {{{host}}} addr add {subnet}.{i}/24 dev e0",
            f"ip -n {{{host}}} link set e0 up",
        )
    net.settle()
    return {"bridge": f"{switch}:br0", "hosts": ",".join(f"{h}:e0" for h in hosts)}


def router(net: Handmade) -> dict[str, str]:
    """left ── router ── right on 10.81.1.0/24 and 10.81.2.0/24 (and fd81:1::/64,
    fd81:2::/64), forwarding on, each end's default routes via the router: the routing
    check's parameters (left, right, router)."""
    net.netns("left", "router", "right")
    net.run(
        "ip link add e0 netns {left} type veth peer name e0 netns {router}",
        "ip link add e0 netns {right} type veth peer name e1 netns {router}",
        "ip netns exec {router} sysctl -qw net.ipv4.ip_forward=1",
        "ip netns exec {router} sysctl -qw net.ipv6.conf.all.forwarding=1",
    )
    for side, near, n in (("left", "e0", 1), ("right", "e1", 2)):
        net.run(
            f"ip -n {{router}} addr add 10.81.{n}.1/24 dev {near}",
            f"ip -n {{router}} addr add fd81:{n}::1/64 dev {near} nodad",
            f"ip -n {{router}} link set {near} up",
            f"ip -n {{{side}}} addr add 10.81.{n}.10/24 dev e0",
            f"ip -n {{{side}}} addr add fd81:{n}::10/64 dev e0 nodad",
            f"ip -n {{{side}}} link set e0 up",
            f"ip -n {{{side}}} route add default via 10.81.{n}.1",
            f"ip -n {{{side}}} -6 route add default via fd81:{n}::1",
        )
    net.settle()
    return {"left": "left:e0", "right": "right:e0", "router": "router"}


def tenants(net: Handmade, *, split: bool = False) -> dict[str, str]:
    """Tenants A (a1, a2) and B (b1, b2), both on 192.168.51.0/24 with the same
    addresses, each on its own bridge: br-a and br-b in `hv`, or with `split` in two
    namespaces `node1` and `node2`. A host's veth peer is the bridge port named after it.
    Returns the isolation check's parameters (tenant_a, tenant_b)."""
    homes = {"a": "node1", "b": "node2"} if split else {"a": "hv", "b": "hv"}
    net.netns(*dict.fromkeys(homes.values()), "a1", "a2", "b1", "b2")
    for tenant, home in homes.items():
        net.run(f"ip -n {{{home}}} link add br-{tenant} type bridge stp_state 0",
                f"ip -n {{{home}}} link set br-{tenant} up")
        for i in (1, 2):
            host = f"{tenant}{i}"
            net.run(
                f"ip link add e0 netns {{{host}}} address 02:51:0{ord(tenant) - 96}:00:00:"
                f"{i}0 type veth peer name {host} netns {{{home}}}",
                f"ip -n {{{home}}} link set {host} master br-{tenant} up",
                f"ip -n {{{host}}} addr add 192.168.51.{i}0/24 dev e0",
                f"ip -n {{{host}}} link set e0 up",
            )
    net.settle()
    return {"tenant_a": "a1:e0,a2:e0", "tenant_b": "b1:e0,b2:e0"}
