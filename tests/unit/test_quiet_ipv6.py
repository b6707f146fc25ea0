"""Which IPv6 sysctls a build writes to quieten a host: only those that take effect."""

from __future__ import annotations

from netprobe import Host
from netprobe.topology._kernel.build import _quiet_paths

CONF = "/proc/sys/net/ipv6/conf"


def test_a_new_namespace_quietens_its_defaults_and_all_accept_dad() -> None:
    # The kernel runs DAD where all's or the link's accept_dad is above 0, but reads
    # router_solicitations from the link's own conf alone: "all" has none to write.
    assert _quiet_paths(Host("h"), ("default", "all")) == [
        f"{CONF}/default/accept_dad",
        f"{CONF}/default/router_solicitations",
        f"{CONF}/all/accept_dad",
    ]


def test_what_a_host_asks_for_is_left_on() -> None:
    assert _quiet_paths(Host("h", ipv6_dad=True), ("default",)) == [
        f"{CONF}/default/router_solicitations"
    ]
    assert _quiet_paths(Host("h", ipv6_router_solicitation=True), ("eth0",)) == [
        f"{CONF}/eth0/accept_dad"
    ]
    assert _quiet_paths(Host("h", ipv6_dad=True, ipv6_router_solicitation=True), ("x",)) == []
