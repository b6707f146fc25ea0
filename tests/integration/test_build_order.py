"""Links netprobe gives an ifindex (in the namespaces it owns) are made in the right order
whichever host's socket makes them, and an end made by a host netprobe does not own gets
the kernel's index, which netprobe then looks up."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

import netprobe

pytestmark = pytest.mark.root


def _link(topo: netprobe.Topology, host: str, name: str) -> dict[str, object]:
    out = topo.run(host, ["ip", "-d", "-j", "link", "show", name], check=True).stdout
    link: dict[str, object] = json.loads(out)[0]
    return link


def test_an_underlay_made_through_a_later_hosts_socket_exists_before_its_vxlan() -> None:
    # hv2 comes first, but its ul0 is the far end of the veth that hv1 (later) declares:
    # its queue goes out after hv2's, which holds the VXLAN on top of ul0.
    spec = netprobe.loads("""
name: order
hosts:
  hv2:
    interfaces:
      ul0: {addresses: [192.168.77.2/24]}
      vx0: {vxlan: {id: 42, remote: 192.168.77.1, local: 192.168.77.2, dev: ul0}}
  hv1:
    interfaces:
      ul0: {veth: {peer: "hv2:ul0"}, addresses: [192.168.77.1/24]}
""")
    with netprobe.build(spec) as topo:
        vx0 = _link(topo, "hv2", "vx0")
        ul0 = _link(topo, "hv2", "ul0")
        assert vx0["linkinfo"]["info_data"]["link"] == "ul0", vx0  # type: ignore[index]
        assert ul0["ifindex"] >= 1000  # type: ignore[operator]  # given by netprobe


@pytest.fixture
def handmade() -> Iterator[str]:
    name = f"nptest-{uuid.uuid4().hex[:8]}-order"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_a_veth_made_from_an_adopted_host_into_an_owned_one(handmade: str) -> None:
    # The adopted host comes first and makes the pair: its end has the kernel's index, and
    # so (the kernel ties the two) has the owned end, which must then be looked up.
    spec = netprobe.loads(f"""
name: order
hosts:
  outside:
    adopt: {handmade}
    interfaces:
      v0: {{veth: {{peer: "inner:eth0"}}, addresses: [10.77.0.1/24]}}
  inner:
    interfaces:
      eth0: {{addresses: [10.77.0.2/24, "fd77::2/64"]}}
    routes:
      - {{to: default, via: 10.77.0.1}}
""")
    with netprobe.build(spec) as topo:
        eth0 = _link(topo, "inner", "eth0")
        assert eth0["ifindex"] < 1000, eth0  # type: ignore[operator]
        shown = topo.run("inner", ["ip", "-j", "addr", "show", "eth0"], check=True).stdout
        assert {a["local"] for a in json.loads(shown)[0]["addr_info"]} >= {
            "10.77.0.2",
            "fd77::2",
        }
        assert topo.run("inner", ["ping", "-c", "1", "-W", "2", "10.77.0.1"]).ok
    links = subprocess.run(
        ["ip", "-n", handmade, "-br", "link"], capture_output=True, text=True, check=True
    )
    assert "v0" not in links.stdout  # netprobe's veth went with the build
