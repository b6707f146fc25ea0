"""OpenFlow controllers in a spec: what loads, what is refused and why, what dumps back;
and how netprobe's controller app reads the ovs-ofctl flows it pushes."""

from __future__ import annotations

import pytest

from netprobe.errors import SpecError
from netprobe.topology import OvsBridge, SdnController, loads
from netprobe.topology._kernel import ovs
from netprobe.topology._kernel.oskenapp import parse_flow
from netprobe.topology._model.dump import dump

SPEC = """
name: t
hosts:
  switch:
    controllers:
      - name: c0
        listen: {listen}
        flows:
          - cookie=0x66,priority=100,ip,nw_src=10.0.0.66,actions=drop
    interfaces:
      br0: {{ovs: {{controller: {controller}, fail_mode: secure}}}}
"""


def _spec(listen: str = "tcp:127.0.0.1:6653", controller: str = "c0") -> str:
    return SPEC.format(listen=listen, controller=controller)


def test_a_controller_and_its_bridge_load_and_dump_back() -> None:
    spec = loads(_spec())
    host = spec.hosts[0]
    drop = "cookie=0x66,priority=100,ip,nw_src=10.0.0.66,actions=drop"
    assert host.controllers == (SdnController("c0", "tcp:127.0.0.1:6653", (drop,)),)
    assert host.interfaces[0].kind == OvsBridge(controller="c0", fail_mode="secure")
    assert loads(dump(spec)) == spec


def test_the_bridge_connects_to_its_controller_without_inactivity_probe() -> None:
    args = ovs.vsctl_commands(loads(_spec()).hosts[0], "RUN")
    assert "fail_mode=secure" in args
    assert args[args.index("set-controller") + 2] == "tcp:127.0.0.1:6653"
    assert "inactivity_probe=0" in args


def test_a_unix_controller_listens_in_the_private_directory() -> None:
    args = ovs.vsctl_commands(loads(_spec(listen="unix")).hosts[0], "RUN")
    target = args[args.index("set-controller") + 2]
    assert target.startswith("unix:/") and target.endswith("/switch/controller-c0.sock")
    assert "RUN" in target


@pytest.mark.parametrize(("listen", "message"), [
    ("tcp:0.0.0.0:6653", "listens on loopback or a unix socket"),
    ("tcp:10.0.0.1:6653", "listens on loopback or a unix socket"),
    ("localhost:6653", "tcp:IP:PORT or unix:PATH"),
])
def test_a_controller_listens_on_loopback_only(listen: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        loads(_spec(listen=listen))


def test_a_bridge_names_a_controller_its_host_runs() -> None:
    with pytest.raises(SpecError, match="names controller 'c1', which host 'switch' does not"):
        loads(_spec(controller="c1"))
    assert loads(_spec(controller="tcp:127.0.0.1:7000")).hosts[0].interfaces[0].kind.controller


def test_a_fail_mode_is_secure_or_standalone() -> None:
    with pytest.raises(SpecError, match="fail_mode must be one of secure, standalone"):
        OvsBridge(fail_mode="open")


def test_a_bridge_with_a_controller_takes_no_flows_of_its_own() -> None:
    text = _spec().replace("fail_mode: secure", "fail_mode: secure, flows: ['actions=drop']")
    with pytest.raises(SpecError, match="which owns its flows"):
        loads(text)


def test_flows_read_as_ovs_ofctl_writes_them() -> None:
    mod, match, actions = parse_flow("cookie=0x66,priority=100,ip,nw_src=10.0.0.66,actions=drop")
    assert (mod, match, actions) == ({"cookie": 0x66, "priority": 100},
                                     {"eth_type": 0x800, "ipv4_src": "10.0.0.66"}, "drop")
    _, match, actions = parse_flow("udp,in_port=2,nw_dst=10.0.0.0/24,tp_dst=53,actions=NORMAL")
    assert match == {"eth_type": 0x800, "ip_proto": 17, "in_port": 2,
                     "ipv4_dst": ("10.0.0.0", "24"), "udp_dst": 53}
    assert actions == "normal"
