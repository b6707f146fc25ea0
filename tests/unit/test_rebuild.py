"""rebuild: a discovered spec (adopted hosts with `observed:` blocks) made into hosts
netprobe owns, as bundles replay it; and the shell a probe bundle's repro.sh runs."""

from __future__ import annotations

import subprocess

from netprobe.bundle._probe_repro import probe_repro_script
from netprobe.topology import Host, Interface, Spec, Veth, loads
from netprobe.topology._model.rebuild import rebuild
from netprobe.topology._model.spec import Bridge, Tap

DISCOVERED = """\
name: discovered
hosts:
  ns-a:
    adopt: ns-a
    interfaces:
      e0: {observed: {kind: veth, peer: ns-r:e0, mac: "02:00:00:00:00:01", mtu: 1400,
                      addresses: [10.1.0.2/24]}}
      up0: {observed: {kind: veth, mac: "02:00:00:00:00:05"}}
      mv0: {observed: {kind: macvlan}}
    observed:
      routes:
      - {to: default, via: 10.1.0.1, dev: e0}
      - {to: 10.1.0.0/24, dev: e0, src: 10.1.0.2, proto: kernel}
      - {to: 10.9.0.0/24, via: 10.1.0.1, dev: e0, src: 10.1.0.2}
      - {to: 10.8.0.0/24, type: blackhole}
      - {to: 10.7.0.0/24, via: 10.1.0.1, dev: e0, table: 100}
      neighbours:
      - {ip: 10.1.0.1, mac: "02:00:00:00:00:99", dev: e0}
      - {ip: 10.5.0.1, mac: "02:00:00:00:00:98", dev: mv0}
      sysctls: {net.ipv4.ip_forward: "0", net.ipv4.conf.mv0.rp_filter: "1",
                net.ipv4.conf.e0.rp_filter: "2"}
  ns-r:
    adopt: ns-r
    interfaces:
      e0: {observed: {kind: veth, peer: ns-a:e0, addresses: [10.1.0.1/24]}}
      p1: {observed: {kind: veth, peer: elsewhere:eth3, master: br0}}
      br0: {observed: {kind: bridge, addresses: [10.2.0.1/24]}}
      tap0: {observed: {kind: tap, master: br0, up: false}}
      o1: {observed: {kind: veth, peer: ns-a:nothing, master: ovsbr}}
    observed:
      sysctls: {net.ipv4.ip_forward: "1"}
      ruleset: "table inet f {\\n}"
"""


def test_an_adopted_network_becomes_hosts_netprobe_makes() -> None:
    spec = loads(DISCOVERED)
    out = rebuild(spec)
    a, r = out.spec.host("ns-a"), out.spec.host("ns-r")
    assert all(h.owned for h in out.spec.hosts) and out.rebuilt == ("ns-a", "ns-r")
    e0 = a.interface("e0")
    assert e0 is not None and e0.kind == Veth("ns-r:e0") and e0.mtu == 1400
    assert e0.mac == "02:00:00:00:00:01" and [str(x) for x in e0.addresses] == ["10.1.0.2/24"]
    far = r.interface("e0")
    assert far is not None and far.kind is None  # the far end of a's veth
    assert a.interface("mv0") is None
    routes = [(x.to, x.via) for x in a.routes]
    assert routes == [("default", "10.1.0.1"), ("10.9.0.0/24", "10.1.0.1")]
    assert dict(a.sysctls) == {"net.ipv4.ip_forward": "0", "net.ipv4.conf.e0.rp_filter": "2"}
    assert [n.ip for n in out.neighbours["ns-a"]] == ["10.1.0.1"]
    br0, tap0 = r.interface("br0"), r.interface("tap0")
    assert br0 is not None and br0.kind == Bridge()
    assert tap0 is not None and tap0.kind == Tap() and tap0.master == "br0" and not tap0.up
    assert r.firewall[0].path == "rulesets/ns-r-live.nft"
    assert out.rulesets == {"rulesets/ns-r-live.nft": "table inet f {\n}\n"}
    notes = "\n".join(out.notes)
    for said in ("ns-a:mv0 (macvlan) is not rebuilt", "rebuilt without its src 10.1.0.2",
                 "route to 10.8.0.0/24 (blackhole, table 254) is not rebuilt",
                 "(unicast, table 100) is not rebuilt", "master ovsbr is not rebuilt"):
        assert said in notes


def test_a_veth_whose_far_end_was_not_read_leads_to_a_stub() -> None:
    out = rebuild(loads(DISCOVERED))
    p1, up0 = out.spec.host("ns-r").interface("p1"), out.spec.host("ns-a").interface("up0")
    assert p1 is not None and p1.kind == Veth("ns-r-p1-far:eth3") and p1.master == "br0"
    assert up0 is not None and up0.kind == Veth("ns-a-up0-far:eth0")
    stub = out.spec.host("ns-r-p1-far")
    assert stub.owned and [i.name for i in stub.interfaces] == ["eth3"]
    assert "it leads to stub host ns-r-p1-far" in "\n".join(out.notes)


def test_owned_hosts_and_what_the_spec_declares_stay() -> None:
    """An owned host's veth into an adopted one: the adopted end stays its far end; hosts
    are matched by the namespace they adopt, whatever discovery called them."""
    given = Spec("mixed", (
        Host("lab", interfaces=(Interface("x0", Veth("gw:x0"), addresses=("10.3.0.2/24",)),)),
        Host("gw", adopt="ns-r"),
    ))  # fmt: skip
    found = loads(DISCOVERED.replace(
        "      o1: {observed: {kind: veth, peer: ns-a:nothing, master: ovsbr}}\n",
        "      x0: {observed: {kind: veth, addresses: [10.3.0.1/24]}}\n"))
    out = rebuild(given, found)
    assert out.spec.host("lab") == given.host("lab")
    x0 = out.spec.host("gw").interface("x0")
    assert x0 is not None and x0.kind is None and [str(a) for a in x0.addresses] == ["10.3.0.1/24"]
    e0 = out.spec.host("gw").interface("e0")
    assert e0 is not None and e0.kind == Veth("gw-e0-far:e0")  # ns-a was not in the spec
    assert out.rebuilt == ("gw",)


def test_a_probe_repro_is_valid_shell() -> None:
    out = rebuild(loads(DISCOVERED))
    recorded = {"ending": "DROPPED", "ending_text": "dropped", "where": "ns-r:e0",
                "why": 'last seen at "ns-r:e0" $(x)'}
    for proto, port, listener in (("icmp", None, None), ("tcp", 22, {"host": "ns-r",
                                  "proto": "tcp", "port": 22}), ("udp", 53, None)):
        probe = {"from": "ns-a", "to": "10.2.0.1", "proto": proto, "port": port, "size": 1400,
                 "timeout": 1.0}
        script = probe_repro_script(probe, recorded, out.spec, out.rulesets, {}, out.neighbours,
                                    listener)
        assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0
        assert "neigh replace 10.1.0.1 lladdr 02:00:00:00:00:99 dev e0 nud permanent" in script
        assert ("ping -n -c 1 -W 2 -s 1400 -M do" in script) == (proto == "icmp")
        assert ("LISTENER_PID=$(" in script) == (listener is not None)
        assert "$(x)" not in script
