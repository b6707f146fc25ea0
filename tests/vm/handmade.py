"""The VM tier's networks made by hand: the reference topologies of vlan, vlan-bridge
and bond built with plain `ip` and `bridge` commands in the guest (never from a spec),
and the specs that adopt them. The guest is the run's own: fixed names are safe there."""

from __future__ import annotations

QUIET = "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad"


def _namespaces(*names: str) -> str:
    """A clean slate (the previous case's hand-made namespaces go), then `names`."""
    gone = "for n in $(ip netns list | awk '/^hm-/ {print $1}'); do ip netns del $n; done"
    return gone + "\n" + "\n".join(
        f"ip netns add hm-{n}; ip -n hm-{n} link set lo up; ip netns exec hm-{n} sh -c '{QUIET}'"
        for n in names
    )


def _veth(a: str, a_if: str, b: str, b_if: str) -> str:
    return (f"ip link add {a_if} netns hm-{a} type veth peer name {b_if} netns hm-{b}\n"
            f"ip -n hm-{a} link set {a_if} up; ip -n hm-{b} link set {b_if} up")  # fmt: skip


def adopting(name: str, *hosts: str) -> str:
    """A topology file that adopts the hand-made namespaces hm-HOST as HOST."""
    return f"name: {name}\nhosts:\n" + "".join(f"  {h}: {{adopt: hm-{h}}}\n" for h in hosts)


VLAN_HOSTS = ("router", "h10", "h20", "switch")


def vlan(h20_id: int = 20) -> str:
    """vlan.yaml by hand; `h20_id`: the VLAN id h20's eth0.20 really has."""
    return "\n".join([
        _namespaces(*VLAN_HOSTS),
        _veth("router", "eth0", "switch", "trunk"),
        _veth("h10", "eth0", "switch", "h10"),
        _veth("h20", "eth0", "switch", "h20"),
        "ip -n hm-switch link add br0 type bridge; ip -n hm-switch link set br0 up",
        *(f"ip -n hm-switch link set {p} master br0" for p in ("trunk", "h10", "h20")),
        *(
            f"ip -n hm-{h} link add link eth0 name eth0.{v} type vlan id {i}\n"
            f"ip -n hm-{h} addr add {a} dev eth0.{v}; ip -n hm-{h} link set eth0.{v} up"
            for h, v, i, a in (
                ("router", 10, 10, "10.0.10.1/24"), ("router", 20, 20, "10.0.20.1/24"),
                ("h10", 10, 10, "10.0.10.2/24"), ("h20", 20, h20_id, "10.0.20.2/24"),
            )
        ),
    ])  # fmt: skip


VLAN_BRIDGE_HOSTS = ("vm1", "vm2", "upstream", "pve")


def vlan_bridge() -> str:
    """vlan-bridge.yaml by hand: a VLAN-filtering br0, vm1 on 10, vm2 on 20, a trunk."""
    bridge = "ip netns exec hm-pve bridge vlan"
    return "\n".join([
        _namespaces(*VLAN_BRIDGE_HOSTS),
        _veth("vm1", "eth0", "pve", "vm1"),
        _veth("vm2", "eth0", "pve", "vm2"),
        _veth("upstream", "eth0", "pve", "uplink"),
        "ip -n hm-vm1 addr add 10.0.0.11/24 dev eth0",
        "ip -n hm-vm2 addr add 10.0.0.12/24 dev eth0",
        "ip -n hm-pve link add br0 type bridge vlan_filtering 1; ip -n hm-pve link set br0 up",
        *(f"ip -n hm-pve link set {p} master br0; {bridge} del dev {p} vid 1"
          for p in ("uplink", "vm1", "vm2")),
        f"{bridge} add dev uplink vid 10; {bridge} add dev uplink vid 20",
        f"{bridge} add dev vm1 vid 10 pvid untagged; {bridge} add dev vm2 vid 20 pvid untagged",
    ])  # fmt: skip


BOND_HOSTS = ("server", "client", "switch")


def bond() -> str:
    """The active-backup half of bond.yaml by hand: server's bond0 over two veths."""
    return "\n".join([
        _namespaces(*BOND_HOSTS),
        "ip -n hm-server link add bond0 type bond mode active-backup miimon 100",
        _veth("server", "eth0", "switch", "s0"),
        _veth("server", "eth1", "switch", "s1"),
        _veth("client", "eth0", "switch", "c"),
        *(f"ip -n hm-server link set {m} down; ip -n hm-server link set {m} master bond0"
          for m in ("eth0", "eth1")),
        "ip -n hm-server addr add 10.0.5.1/24 dev bond0; ip -n hm-server link set bond0 up",
        "ip -n hm-client addr add 10.0.5.2/24 dev eth0",
        "ip -n hm-switch link add br0 type bridge; ip -n hm-switch link set br0 up",
        *(f"ip -n hm-switch link set {p} master br0" for p in ("s0", "s1", "c")),
    ])  # fmt: skip
