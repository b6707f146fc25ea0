"""capabilities against the real kernel: structure, speed, and that nothing is left behind.

Which optional features exist depends on the kernel, so only what netprobe cannot run
without (netns, veth, bridge) is asserted present. Other people's runs may own np-*
namespaces, records, root links and nat rules at the same time, so leftovers are judged
only by what this probe created: its scratch namespace and run id, and the names of
the links and rules it makes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from netprobe import _capabilities as capabilities
from netprobe.errors import SetupError
from netprobe.topology._kernel import netns, owner

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not capabilities.is_root(), reason="needs root (CAP_NET_ADMIN)"),
]


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Names of the namespaces the probe creates (netns.create, spied on)."""
    names: list[str] = []
    real_create = netns.create

    def spy(name: str) -> None:
        names.append(name)
        real_create(name)

    monkeypatch.setattr(netns, "create", spy)
    capabilities.clear_cache()
    yield names
    capabilities.clear_cache()


# The probe's own objects: its links are npd*, its nft tables nptest*, its nat rule an
# unconditional masquerade (the machine's, e.g. Docker's, always have a match).
_PROBE_LINK = "npd"
_PROBE_NAT = "-A POSTROUTING -j MASQUERADE"


def root_state() -> tuple[list[str], int]:
    """What of the probe's could reach the root namespace, which probing must not change:
    links with the probe's names and its nat rule (others' links and rules come and go)."""
    links = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True)
    names = [link["ifname"] for link in json.loads(links.stdout)]
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True)
    return (
        sorted(n for n in names if n.startswith(_PROBE_LINK)),
        nat.stdout.splitlines().count(_PROBE_NAT),
    )


def assert_nothing_left(created: list[str]) -> None:
    assert len(created) == 1, "one scratch namespace for the whole probe"
    (name,) = created
    runid = name.removeprefix("np-").removesuffix("-doctor")
    assert name == owner.ns_name(runid, "doctor")
    assert not netns.exists(name)
    assert not [n for n in netns.list_names() if n.startswith(owner.ns_prefix(runid))]
    assert runid not in {r.runid for r in owner.read_records()}
    assert not [r for r in owner.read_records() if r.name == "doctor" and r.pid == os.getpid()]


def test_probe_reports_every_capability_once(created: list[str]) -> None:
    links_before, nat_before = root_state()
    start = time.perf_counter()
    caps = capabilities.probe()
    elapsed = time.perf_counter() - start
    print(f"probe() took {elapsed * 1000:.0f} ms")

    kernel = Counter(c.name for c in caps if c.kind == "kernel")
    tools = Counter(c.name for c in caps if c.kind == "tool")
    assert kernel == Counter(capabilities.KERNEL_FEATURES)
    assert tools == Counter(capabilities.TOOLS)
    for cap in caps:
        assert cap.detail, cap
        assert (cap.remedy is None) == cap.present, cap
    by_name = {c.name: c for c in caps if c.kind == "kernel"}
    for name in ("netns", "veth", "bridge"):
        assert by_name[name].present, by_name[name]

    assert_nothing_left(created)
    assert root_state() == (links_before, nat_before)
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True)
    assert "nptest" not in ruleset.stdout


def test_probe_is_cached(created: list[str]) -> None:
    first = capabilities.probe(["veth", "tap"])
    assert capabilities.probe(["veth", "tap"]) == first
    assert len(created) == 1


def test_require_agrees_with_probe(created: list[str]) -> None:
    capabilities.require("netns", "veth", "bridge")
    absent = [c for c in capabilities.probe() if not c.present]
    if not absent:
        pytest.skip("this machine has everything; nothing absent to require")
    with pytest.raises(SetupError) as caught:
        capabilities.require(*(f"{c.kind}:{c.name}" for c in absent))
    for cap in absent:
        assert f"{cap.name} ({cap.kind}): {cap.detail}" in str(caught.value)
        assert f"{cap.name}: {cap.remedy}" in str(caught.value.remedy)


def test_an_interrupted_probe_leaves_nothing(
    created: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(scratch: object) -> str:
        raise KeyboardInterrupt  # as if Ctrl-C arrived halfway through the probes

    feature = capabilities._FEATURES["vxlan"]
    monkeypatch.setitem(
        capabilities._FEATURES, "vxlan", capabilities._Feature(feature.what, "", interrupted)
    )
    with pytest.raises(KeyboardInterrupt):
        capabilities.probe()
    assert_nothing_left(created)
    assert not capabilities._cache, "an interrupted probe caches nothing"


@pytest.mark.parametrize(
    ("qdisc", "args", "module"),
    [("netem", ["delay", "1ms"], "sch_netem"),
     ("tbf", ["rate", "1mbit", "burst", "32kbit", "latency", "50ms"], "sch_tbf")],
)  # fmt: skip
def test_a_qdisc_is_reported_as_tc_finds_it_by_hand(
    created: list[str], qdisc: str, args: list[str], module: str
) -> None:
    from support.handmade_net import HandMade

    with HandMade() as hand:
        hand.ns("h")
        hand.ip("h", "link", "add", "q0", "type", "veth", "peer", "name", "q1")
        argv = ["ip", "netns", "exec", hand.hosts["h"], "tc", "qdisc", "replace", "dev", "q0"]
        by_hand = subprocess.run([*argv, "root", qdisc, *args], capture_output=True,
                                 timeout=30, check=False)  # fmt: skip
    (cap,) = capabilities.probe([qdisc])
    assert cap.present == (by_hand.returncode == 0), (cap, by_hand.stderr)
    if not cap.present:
        assert module in (cap.remedy or ""), cap
        assert qdisc in cap.detail, cap  # the tc command that failed, and why
    assert_nothing_left(created)
