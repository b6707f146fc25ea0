"""filter.yaml's network made by hand: plain `ip`, `sysctl` and `nft -f`."""

from __future__ import annotations

from support.handmade_net import HandMade
from support.paths import EXAMPLES

SECURE_HOST = (EXAMPLES / "filter-secure-host.nft").read_text()
_FORWARDING = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")


def firewall(net: HandMade, rules: str | None = SECURE_HOST) -> None:
    """client ── eth0 [fw] eth1 ═══ eth0 [router] eth1 ═══ outside, IPv4 and IPv6."""
    for host in ("client", "fw", "router", "outside"):
        net.ns(host)
    net.veth("client", "eth0", "fw", "eth0")
    net.veth("fw", "eth1", "router", "eth0")
    net.veth("router", "eth1", "outside", "eth0")
    addresses = {
        ("client", "eth0"): ("10.0.0.10/24", "fd00:10::10/64"),
        ("fw", "eth0"): ("10.0.0.1/24", "fd00:10::1/64"),
        ("fw", "eth1"): ("192.0.2.1/24", "2001:db8:2::1/64"),
        ("router", "eth0"): ("192.0.2.2/24", "2001:db8:2::2/64"),
        ("router", "eth1"): ("198.51.100.1/24", "2001:db8:100::1/64"),
        ("outside", "eth0"): ("198.51.100.10/24", "2001:db8:100::10/64"),
    }
    for (host, dev), found in addresses.items():
        net.addr(host, dev, *found)
    for host, v4, v6 in (("client", "10.0.0.1", "fd00:10::1"), ("fw", "192.0.2.2", "2001:db8:2::2"),
                         ("outside", "198.51.100.1", "2001:db8:100::1")):
        net.route(host, "default", "via", v4)
        net.route(host, "default", "via", v6)
    net.route("router", "10.0.0.0/24", "via", "192.0.2.1")
    net.route("router", "fd00:10::/64", "via", "2001:db8:2::1")
    for host in ("fw", "router"):
        for key in _FORWARDING:
            net.sysctl(host, key, "1")
    if rules is not None:
        net.nft("fw", rules)
