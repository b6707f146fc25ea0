"""Property tests of the YAML loader: whatever the input, a valid Spec or a SpecError.

(a) arbitrary text and arbitrary YAML documents, (b) mutations of the real examples,
(c) random valid specs built in Python survive a trip through YAML unchanged.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.paths import EXAMPLES

import netprobe
from netprobe import Bond, Bridge, Host, Interface, Macvlan, Route, Spec, SpecError, Tap, Veth, Vlan
from netprobe.topology._model.dump import dump

EXAMPLE_TEXTS = {p: p.read_text() for p in sorted(EXAMPLES.glob("*.yaml"))}

# YAML counts lines as PyYAML does: NEL and the Unicode separators break lines too.
YAML_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load_or_refuse(text: str, source: str | None = None) -> Spec | SpecError:
    """`loads`, with the only two outcomes it may have: a valid Spec, or a SpecError."""
    try:
        spec = netprobe.loads(text, source=source)
    except SpecError as exc:
        if exc.line is not None:
            lines = len(YAML_LINE_BREAK.split(text))
            assert 1 <= exc.line <= lines, f"line {exc.line} is not in the text"
        assert exc.file == source
        event("SpecError")
        return exc
    assert isinstance(spec, Spec)
    assert netprobe.validate(spec) is spec
    event("Spec")
    return spec


# -- (a) arbitrary text and arbitrary YAML documents ------------------------------------------

SCHEMA_KEYS = [
    "name", "description", "hosts", "interfaces", "routes", "sysctls", "firewall", "adopt",
    "root", "ipv6_dad", "ipv6_router_solicitation", "addresses", "master", "learning", "mac",
    "mtu", "up", "veth", "bridge", "tap", "macvlan", "vlan", "bond", "peer", "stp", "ageing",
    "forward_delay", "parent", "mode", "id", "protocol", "to", "via", "dev", "metric", "nft",
    "iptables", "ip6tables", "a", "b", "eth0", "br0", "net.ipv4.ip_forward",
]
SCHEMA_VALUES = [
    "a:eth0", "b:eth0", "eth0", "br0", "10.0.0.1/24", "fd00::1/64", "10.0.0.0/8", "default",
    "default6", "10.0.0.1", "fe80::1", "02:00:00:00:00:01", "bridge", "802.1Q", "802.1ad",
    "active-backup", "nat-gateway.nft", "/dev/null", "", "lo", "a" * 16, "10.0.0.300/24",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(SCHEMA_VALUES),
)
keys = st.one_of(st.sampled_from(SCHEMA_KEYS), st.text(max_size=10), st.integers(0, 5))

documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=30,
)

# Documents shaped like topologies: at every level the keys and values are mostly right,
# with now and then a wrong one, so that most documents get deep into hosts, interfaces,
# kinds, routes and firewall entries before something is wrong (or nothing is).


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True with probability about 1/n (st.integers would favour the boundaries)."""
    return st.sampled_from([False] * (n - 1) + [True])  # shrinks towards False


def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` nine times in ten, otherwise anything at all."""
    return one_in(10).flatmap(lambda bad: documents if bad else good)


def shaped(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A mapping with some of `fields`, mostly well-valued; one in twenty has a bogus key."""
    good = st.fixed_dictionaries({}, optional={k: mostly(v) for k, v in fields.items()})
    bogus = good.map(lambda d: {**d, "bogus": 1})
    return one_in(20).flatmap(lambda bad: bogus if bad else good)


IFNAMES = ["eth0", "eth1", "br0", "t0", "bond0", "lo", "a" * 16]
HOSTNAMES = ["a", "b", "c"]
PEERS = [f"{h}:{i}" for h in HOSTNAMES for i in IFNAMES[:4]] + ["a", "a:", ":eth0", "a:b:c"]
flag = st.one_of(st.booleans(), st.none())
ifname = st.sampled_from(IFNAMES)
address = st.sampled_from(["10.0.0.1/24", "10.0.0.2/24", "fd00::1/64", "10.0.0.300/24", "x"])
no_options = st.sampled_from([None, True, {}])
kind_options = {
    "veth": st.one_of(st.sampled_from(PEERS), shaped({"peer": st.sampled_from(PEERS)})),
    "bridge": st.one_of(no_options, shaped({"stp": flag, "ageing": st.integers(-1, 400),
                                            "forward_delay": st.floats(-1, 30)})),
    "tap": no_options,
    "bond": st.one_of(no_options, shaped({"mode": st.sampled_from(["active-backup", "x"])})),
    "macvlan": st.one_of(no_options, shaped({"parent": ifname,
                                             "mode": st.sampled_from(["bridge", "vepa", "x"])})),
    "vlan": st.one_of(no_options, shaped({"parent": ifname, "id": st.integers(-1, 5000),
                                          "protocol": st.sampled_from(["802.1Q", "802.1x"])})),
}
kind = st.one_of(  # one type, none (a far veth end), or now and then two
    *(st.fixed_dictionaries({name: mostly(value)}) for name, value in kind_options.items()),
    st.just({}),
    st.tuples(st.sampled_from(sorted(kind_options)), st.sampled_from(sorted(kind_options))).map(
        lambda pair: dict.fromkeys(pair)),
)
interface = st.one_of(st.none(), st.builds(lambda k, rest: {**k, **rest}, kind, shaped({
    "addresses": st.lists(address, max_size=3),
    "master": ifname,
    "learning": flag,
    "up": flag,
    "mac": st.sampled_from(["02:00:00:00:00:01", "02:00", "zz:00:00:00:00:00"]),
    "mtu": st.integers(0, 70000),
})))
route = shaped({
    "to": st.sampled_from(["default", "default6", "10.9.0.0/16", "fd09::/64", "10.9.0.0/33"]),
    "via": st.sampled_from(["10.0.0.254", "fe80::1", "nowhere"]),
    "dev": ifname,
    "metric": st.integers(-1, 100),
})
firewall_entry = shaped({k: st.sampled_from(["nat-gateway.nft", "missing.nft", "/dev/null", ""])
                         for k in ("nft", "iptables", "ip6tables")})
host = st.one_of(st.none(), shaped({
    "interfaces": st.dictionaries(ifname, interface, max_size=4),
    "routes": st.lists(route, max_size=3),
    "sysctls": st.dictionaries(st.sampled_from(["net.ipv4.ip_forward", "kernel.panic", "net..x"]),
                               st.one_of(st.integers(0, 2), st.text(max_size=3)), max_size=2),
    "firewall": st.one_of(firewall_entry, st.lists(firewall_entry, max_size=2)),
    "adopt": st.sampled_from(["existing", "bad name!"]),
    "root": st.booleans(),
    "ipv6_dad": st.booleans(),
    "ipv6_router_solicitation": st.booleans(),
}))
topologies = st.builds(
    lambda hosts, rest: {**rest, "hosts": hosts},
    mostly(st.dictionaries(st.sampled_from(HOSTNAMES), host, min_size=1, max_size=3)),
    shaped({"name": st.sampled_from(["t", "two words"]), "description": st.text(max_size=10)}),
)


@FAST
@given(st.text(max_size=200))
def test_any_text_gives_a_spec_or_a_spec_error(text: str) -> None:
    load_or_refuse(text)


@FAST
@given(st.text(alphabet="hosts:interfaces eth0 veth{}[],-#&*!|>'\"\n\t0123456789./", max_size=120))
def test_yaml_punctuation_soup_gives_a_spec_or_a_spec_error(text: str) -> None:
    load_or_refuse(text)


@FAST
@given(documents)
def test_any_yaml_document_gives_a_spec_or_a_spec_error(document: Any) -> None:
    load_or_refuse(yaml.safe_dump(document, sort_keys=False), source="doc.yaml")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topologies)
def test_topology_shaped_documents_give_a_spec_or_a_spec_error(document: Any) -> None:
    load_or_refuse(yaml.safe_dump(document, sort_keys=False), source=str(EXAMPLES / "doc.yaml"))


# -- (b) mutations of the real examples -------------------------------------------------------

TOKEN = re.compile(r"[^\s{}\[\],:#]+")
COMMENT = re.compile(r"(^|\s)#.*$", re.MULTILINE)
WEIRD_SCALARS = [
    "~", "null", "yes", "no", "true", "0", "-1", "4095", "1e999", ".nan", ".inf", "0x1F",
    "12:30:45", "2001-13-45", "!!bool maybe", "!!timestamp never", "!!int x", "!!binary ?",
    "&a", "*a", "[]", "{}", "''", '"\\0"', "|", ">", "-", "?", "<<: {}", "@", "`", "%",
]

TAGS = [
    "!!bool", "!!int", "!!float", "!!timestamp", "!!binary", "!!null", "!!str", "!!set",
    "!!omap", "!!python/name:os.system", "!local", "!<tag:example.com,2000:x>",
]


@st.composite
def mutated_examples(draw: st.DrawFn) -> tuple[str, str]:
    """(source path, the text of an example with one random mutation)."""
    path = draw(st.sampled_from(sorted(EXAMPLE_TEXTS)))
    text = EXAMPLE_TEXTS[path]
    lines = text.splitlines(keepends=True)
    index = st.integers(0, len(lines) - 1)
    mutation = draw(st.sampled_from(["delete", "duplicate", "swap", "token", "tag", "truncate"]))
    if mutation == "delete":
        del lines[draw(index)]
    elif mutation == "duplicate":
        i = draw(index)
        lines.insert(i, lines[i])
    elif mutation == "swap":
        i, j = draw(index), draw(index)
        lines[i], lines[j] = lines[j], lines[i]
    elif mutation in ("token", "tag"):
        code = COMMENT.sub(lambda m: " " * len(m.group()), text)  # no tokens from comments
        tokens = list(TOKEN.finditer(code))
        token = tokens[draw(st.integers(0, len(tokens) - 1))]
        if mutation == "tag":  # `!!bool 10.0.0.1/24`: PyYAML constructors raise odd things
            new = f"{draw(st.sampled_from(TAGS))} {token.group()}"
        else:
            new = draw(st.one_of(st.sampled_from(WEIRD_SCALARS), scalars.map(str)))
        return str(path), text[: token.start()] + new + text[token.end() :]
    else:
        return str(path), text[: draw(st.integers(0, len(text)))]
    return str(path), "".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_examples())
def test_mutated_examples_give_a_spec_or_a_spec_error(mutated: tuple[str, str]) -> None:
    source, text = mutated
    load_or_refuse(text, source=source)


def test_unmutated_examples_load_from_text() -> None:
    for path, text in EXAMPLE_TEXTS.items():
        assert netprobe.loads(text, source=str(path)) == netprobe.load(path)


# -- (c) random valid specs round-trip through YAML --------------------------------------------

NAME = st.from_regex(r"\A[a-z][a-z0-9_.-]{0,8}\Z").filter(lambda n: n != "lo")


@st.composite
def addresses(draw: st.DrawFn, taken: set[str]) -> list[str]:
    """Zero to two addresses, no IP repeated within a host."""
    out = []
    for _ in range(draw(st.integers(0, 2))):
        if draw(st.booleans()):
            ip: Any = ipaddress.IPv4Address(draw(st.integers(1, 2**32 - 2)))
            prefix = draw(st.integers(8, 32))
        else:
            ip = ipaddress.IPv6Address(draw(st.integers(1, 2**128 - 1)))
            prefix = draw(st.integers(16, 128))
        if str(ip) not in taken:
            taken.add(str(ip))
            out.append(f"{ip}/{prefix}")
    return out


@st.composite
def valid_specs(draw: st.DrawFn) -> Spec:
    """Hosts joined by veths; some hosts bridge their far ends, some carry vlans and routes."""
    names = draw(st.lists(NAME, min_size=1, max_size=5, unique=True))
    root = draw(st.sampled_from([None, *names]))
    ifaces: dict[str, dict[str, Interface]] = {n: {} for n in names}
    taken: dict[str, set[str]] = {n: set() for n in names}
    bridged = {n for n in names if draw(st.booleans())}
    for host in bridged:
        ifaces[host]["br0"] = Interface("br0", Bridge(stp=draw(st.booleans()),
                                                      ageing=draw(st.sampled_from([None, 0, 300]))))
    for pair in range(draw(st.integers(0, 6))):
        here, there = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        near, far = f"v{pair}a", f"v{pair}b"
        ifaces[here][near] = Interface(
            near, Veth(f"{there}:{far}"), addresses=draw(addresses(taken[here])),
            mac=draw(st.sampled_from([None, f"02:00:00:00:00:{pair:02x}"])),
            mtu=draw(st.sampled_from([None, 1500, 9000])), up=draw(st.booleans()),
        )
        if there in bridged and draw(st.booleans()):
            ifaces[there][far] = Interface(far, master="br0", learning=draw(st.booleans()))
        elif draw(st.booleans()):
            ifaces[there][far] = Interface(far, addresses=draw(addresses(taken[there])))
    for host in names:
        if draw(st.booleans()):
            ifaces[host]["t0"] = Interface("t0", Tap(), addresses=draw(addresses(taken[host])))
            ifaces[host]["t0.7"] = Interface("t0.7", Vlan("t0", draw(st.integers(1, 4094))))
            ifaces[host]["mv0"] = Interface("mv0", Macvlan("t0", draw(st.sampled_from(
                ["private", "vepa", "bridge", "passthru", "source"]))))
        if draw(st.booleans()):
            ifaces[host]["bond0"] = Interface("bond0", Bond("balance-rr"))
    hosts = []
    for host in names:
        extra: dict[str, Any] = {}
        if host == root:
            extra["root"] = True
        else:
            if "t0" in ifaces[host]:
                extra["routes"] = [Route("192.0.2.0/24", dev="t0"), Route("default", via="fe80::1")]
            extra["sysctls"] = {"net.ipv4.ip_forward": draw(st.sampled_from([0, 1, "1"]))}
        hosts.append(Host(host, interfaces=list(ifaces[host].values()), **extra))
    return Spec(draw(NAME), hosts=hosts)


def kind_document(kind: object) -> dict[str, Any]:
    if isinstance(kind, Veth):
        return {"veth": kind.peer}
    if isinstance(kind, Bridge):
        options = {"stp": kind.stp, "ageing": kind.ageing, "forward_delay": kind.forward_delay}
        return {"bridge": {k: v for k, v in options.items() if v is not None}}
    if isinstance(kind, Tap):
        return {"tap": {}}
    if isinstance(kind, Macvlan):
        return {"macvlan": {"parent": kind.parent, "mode": kind.mode}}
    if isinstance(kind, Vlan):
        return {"vlan": {"parent": kind.parent, "id": kind.id, "protocol": kind.protocol}}
    if isinstance(kind, Bond):
        return {"bond": {"mode": kind.mode}}
    return {}


def interface_document(iface: Interface) -> dict[str, Any] | None:
    doc = kind_document(iface.kind)
    if iface.addresses:
        doc["addresses"] = [str(a) for a in iface.addresses]
    options = {"master": iface.master, "learning": iface.learning, "mac": iface.mac,
               "mtu": iface.mtu}
    doc.update({k: v for k, v in options.items() if v is not None})
    if not iface.up:
        doc["up"] = False
    return doc or None


def host_document(host: Host) -> dict[str, Any] | None:
    doc: dict[str, Any] = {}
    if host.interfaces:
        doc["interfaces"] = {i.name: interface_document(i) for i in host.interfaces}
    if host.routes:
        doc["routes"] = [{k: v for k, v in (("to", r.to), ("via", r.via), ("dev", r.dev))
                          if v is not None} for r in host.routes]
    if host.sysctls:
        doc["sysctls"] = dict(host.sysctls)
    if host.root:
        doc["root"] = True
    return doc or None


def spec_document(spec: Spec) -> dict[str, Any]:
    return {"name": spec.name, "hosts": {h.name: host_document(h) for h in spec.hosts}}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_valid_python_specs_round_trip_through_yaml(spec: Spec) -> None:
    assert netprobe.validate(spec) is spec
    text = yaml.safe_dump(spec_document(spec), sort_keys=False)
    loaded = netprobe.loads(text, source="generated.yaml")
    assert loaded == spec
    assert loaded.source == "generated.yaml"


@settings(max_examples=50, deadline=None)
@given(valid_specs())
def test_valid_specs_in_flow_style_load_the_same(spec: Spec) -> None:
    text = yaml.safe_dump(spec_document(spec), sort_keys=False, default_flow_style=True)
    assert netprobe.loads(text) == spec


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_dump_writes_yaml_that_loads_to_the_same_spec(spec: Spec) -> None:
    """What bug-report bundles rely on: topology.yaml is the spec that ran."""
    assert netprobe.loads(dump(spec)) == spec


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_survives_dump_and_load(path: Path) -> None:
    spec = netprobe.load(path)
    assert netprobe.loads(dump(spec), source=str(path)) == spec
