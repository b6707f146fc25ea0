"""VXLAN in the spec: kernel `vxlan` devices and OVS `ovs_vxlan` ports load, validate,
dump back to an equal spec, and become the netlink attributes and ovs-vsctl columns that
make them."""

from __future__ import annotations

import textwrap

import pytest

from netprobe.errors import SpecError
from netprobe.topology import Host, Interface, OvsBridge, OvsVxlan, Spec, Vxlan, loads, validate
from netprobe.topology._kernel.links import vxlan_info
from netprobe.topology._kernel.ovs import vsctl_commands
from netprobe.topology._model.dump import dump

KERNEL = textwrap.dedent("""\
    hosts:
      hv:
        interfaces:
          ul0: {veth: far:ul0, addresses: [192.168.100.1/24]}
          br0: {bridge: {}}
          vx0: {vxlan: {id: 100, remote: 192.168.100.2, dev: ul0}, master: br0}
      far: {}
""")

OVS = textwrap.dedent("""\
    hosts:
      hv:
        interfaces:
          br0: {ovs: {}}
          vx0: {ovs_vxlan: {remote: 192.168.100.2, key: 200, dstport: 8472}, master: br0}
""")


def test_a_kernel_vxlan_loads_with_its_defaults_and_dumps_back() -> None:
    spec = loads(KERNEL)
    kind = spec.host("hv").interface("vx0").kind  # type: ignore[union-attr]
    assert kind == Vxlan(id=100, remote="192.168.100.2", dev="ul0")
    assert (kind.dstport, kind.learning, kind.local) == (4789, False, None)
    assert loads(dump(spec)) == spec


def test_the_netlink_attributes_of_a_vxlan() -> None:
    data = dict(vxlan_info(Vxlan(id=7, remote="10.0.0.2", local="10.0.0.1"), 3))
    assert data == {"IFLA_VXLAN_ID": 7, "IFLA_VXLAN_PORT": 4789, "IFLA_VXLAN_LEARNING": 0,
                    "IFLA_VXLAN_GROUP": "10.0.0.2", "IFLA_VXLAN_LOCAL": "10.0.0.1",
                    "IFLA_VXLAN_LINK": 3}


def test_an_ovs_vxlan_port_becomes_a_tunnel_interface() -> None:
    spec = loads(OVS)
    assert loads(dump(spec)) == spec
    args = " ".join(vsctl_commands(spec.host("hv")))
    assert ("add-port br0 vx0 -- set interface vx0 type=vxlan options:remote_ip=192.168.100.2 "
            "options:key=200 options:dst_port=8472") in args


@pytest.mark.parametrize(("kind", "message"), [
    ("vxlan: {id: 16777216}", "vxlan id must be a VXLAN network identifier"),
    ("vxlan: {id: 1, remote: nowhere}", "vxlan remote must be an IPv4 address"),
    ("vxlan: {id: 1, dstport: 0}", "vxlan dstport must be a UDP port"),
    ("vxlan: {id: 1, dev: eth9}", "underlay dev 'eth9' of vxlan 'vx0' is not another"),
    ("vxlan: {remote: 10.0.0.1}", "vxlan needs id"),
    ("ovs_vxlan: {remote: 10.0.0.1, key: 5}", "ovs_vxlan 'vx0' needs `master:` an OVS bridge"),
])
def test_bad_vxlans_are_refused_with_the_line(kind: str, message: str) -> None:
    text = f"hosts:\n  hv:\n    interfaces:\n      vx0: {{{kind}}}\n"
    with pytest.raises(SpecError, match=message) as caught:
        loads(text, source="t.yaml")
    assert caught.value.line == 4


def test_an_ovs_vxlan_port_takes_no_kernel_settings() -> None:
    spec = Spec("t", (Host("hv", (
        Interface("br0", OvsBridge()),
        Interface("vx0", OvsVxlan(remote="10.0.0.2", key=1), master="br0", mtu=1400),
    )),))
    with pytest.raises(SpecError, match="takes no addresses, mac or mtu"):
        validate(spec)


