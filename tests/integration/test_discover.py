"""Discovery on networks made by hand: what it finds, that it changes nothing, that the
spec it writes builds to nothing new, and the CLI around it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from netprobe.cli import cli
from netprobe.topology import Spec, build, discover, load
from netprobe.topology._model import picture
from tests.support.handmade_discover import Handmade, handmade, snapshot

pytestmark = pytest.mark.root

RULESET = """table inet filter {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip daddr 10.71.0.1 tcp dport 80 drop
    }
}
"""


@pytest.fixture(scope="module")
def net() -> Iterator[tuple[Handmade, int]]:
    """A bridge namespace with two hosts and a TAP on br0; a veth straight from a to b; a
    "container" (an unnamed namespace of a process) with a veth to the bridge."""
    with handmade("dz") as made:
        made.add("sw", "a", "b")
        pid = made.container()
        made.sh(f"""
            ip -n ${{P}}sw link add br0 type bridge; ip -n ${{P}}sw link set br0 up
            for h in a b; do
              ip -n ${{P}}sw link add p$h type veth peer name eth0 netns ${{P}}$h
              ip -n ${{P}}sw link set p$h master br0 up; ip -n ${{P}}$h link set eth0 up
            done
            ip -n ${{P}}sw link add pc type veth peer name ceth0
            ip -n ${{P}}sw link set ceth0 netns {pid}; ip -n ${{P}}sw link set pc master br0 up
            nsenter --net=/proc/{pid}/ns/net ip addr add 10.71.0.3/24 dev ceth0
            nsenter --net=/proc/{pid}/ns/net ip link set ceth0 up
            ip -n ${{P}}sw tuntap add tap0 mode tap; ip -n ${{P}}sw link set tap0 master br0
            ip -n ${{P}}a addr add 10.71.0.1/24 dev eth0
            ip -n ${{P}}b addr add 10.71.0.2/24 dev eth0
            ip -n ${{P}}a link add x0 type veth peer name x0 netns ${{P}}b
            ip -n ${{P}}a link set x0 up; ip -n ${{P}}b link set x0 up
            ip -n ${{P}}a addr add 10.72.0.1/30 dev x0; ip -n ${{P}}b addr add 10.72.0.2/30 dev x0
            ip -n ${{P}}a route add 10.73.0.0/24 via 10.72.0.2
            ip -n ${{P}}a neigh add 10.71.0.9 lladdr 02:00:00:00:00:09 dev eth0 nud permanent
        """)
        made.nft("b", RULESET)
        yield made, pid


def _discover(made: Handmade, pid: int) -> Spec:
    return discover([made.ns("sw"), made.ns("a"), made.ns("b")], [pid])


def test_discovers_links_peers_bridges_addresses_routes_rulesets(net: tuple[Handmade, int]) -> None:
    made, pid = net
    spec = _discover(made, pid)
    sw, a, b = (spec.host(made.ns(n)) for n in ("sw", "a", "b"))
    container = next(h for h in spec.hosts if h.adopt == f"pid:{pid}")
    assert container.name == f"sleep-{pid}" and container.observed is not None
    assert container.observed.origin == f"process {pid} (sleep)"
    seen = {i.name: i.observed for i in sw.interfaces}
    assert seen["br0"].kind == "bridge"  # type: ignore[union-attr]
    assert seen["tap0"].kind == "tap" and seen["tap0"].master == "br0"  # type: ignore[union-attr]
    assert seen["pa"].peer == f"{a.name}:eth0" and seen["pa"].master == "br0"  # type: ignore[union-attr]
    assert seen["pc"].peer == f"{container.name}:ceth0"  # type: ignore[union-attr]
    assert seen["pa"].port_state == "forwarding"  # type: ignore[union-attr]
    x0 = a.interface("x0").observed  # type: ignore[union-attr]
    assert x0 is not None and x0.peer == f"{b.name}:x0" and [str(x) for x in x0.addresses] == [
        "10.72.0.1/30"
    ]
    assert all(i.kind is None for h in spec.hosts for i in h.interfaces)  # nothing to create
    routes = [(r.to, r.via) for r in a.observed.routes]  # type: ignore[union-attr]
    assert ("10.73.0.0/24", "10.72.0.2") in routes
    assert [(n.ip, n.mac) for n in a.observed.neighbours] == [  # type: ignore[union-attr]
        ("10.71.0.9", "02:00:00:00:00:09")
    ]
    assert "ip daddr 10.71.0.1 tcp dport 80 drop" in (b.observed.ruleset or "")  # type: ignore[union-attr]
    assert a.observed.ruleset is None  # type: ignore[union-attr]
    assert dict(a.observed.sysctls)["net.ipv4.ip_forward"] == "0"  # type: ignore[union-attr]


def test_discovery_changes_nothing(net: tuple[Handmade, int]) -> None:
    made, pid = net
    where = [*made.names, f"pid:{pid}"]
    before = snapshot(where)
    _discover(made, pid)
    discover(all=True)
    assert snapshot(where) == before


def test_the_discovered_spec_builds_to_nothing_new(net: tuple[Handmade, int]) -> None:
    made, pid = net
    spec = _discover(made, pid)
    where = [*made.names, f"pid:{pid}"]
    before = snapshot(where)
    with build(spec) as topo:
        container = next(h.name for h in spec.hosts if h.adopt == f"pid:{pid}")
        assert [str(a) for a in topo.live(container).interface("ceth0").ipv4] == [  # type: ignore[union-attr]
            "10.71.0.3/24"
        ]
        assert topo.run(container, ["ip", "-br", "addr"]).stdout.count("10.71.0.3") == 1
        assert snapshot(where) == before
    assert snapshot(where) == before


def test_all_finds_named_and_unnamed_namespaces_once(net: tuple[Handmade, int]) -> None:
    made, pid = net
    spec = discover(all=True)
    adopted = [h.adopt for h in spec.hosts]
    assert all(adopted.count(ns) == 1 for ns in [*made.names, f"pid:{pid}"])
    assert not any(h.root for h in spec.hosts)
    assert sum(h.root for h in discover([made.ns("a")], root=True).hosts) == 1


def test_a_pid_in_a_named_namespace_adopts_the_name(net: tuple[Handmade, int]) -> None:
    made, _ = net
    proc = subprocess.Popen(["ip", "netns", "exec", made.ns("a"), "sleep", "60"])
    try:
        made.sh(f"until [ \"$(cat /proc/{proc.pid}/comm)\" = sleep ]; do sleep 0.01; done")
        spec = discover([made.ns("a")], [proc.pid])
        assert [h.adopt for h in spec.hosts] == [made.ns("a")]
    finally:
        proc.kill()
        proc.wait()


def test_pictures_draw_the_discovered_links(net: tuple[Handmade, int]) -> None:
    made, pid = net
    text = picture.mermaid(_discover(made, pid))
    a, sw = made.ns("a"), made.ns("sw")
    assert f"{a}__eth0 --- {sw}__pa" in text and f"{sw}__pa -.- {sw}__br0" in text
    assert text.count(f"{a}__x0 --- ") == 1  # a veth once, whichever end lists it
    assert "10.71.0.1/24" in text and "tap0 tap" in text


def test_cli_writes_a_file_that_loads_and_shows(net: tuple[Handmade, int], tmp_path: Path) -> None:
    made, pid = net
    out = tmp_path / "found.yaml"
    runner = CliRunner()
    done = runner.invoke(cli, ["topo", "discover", made.ns("a"), made.ns("b"), "--pid", str(pid),
                               "-o", str(out)])
    assert done.exit_code == 0, done.output
    spec = load(out)
    assert [h.adopt for h in spec.hosts] == [made.ns("a"), made.ns("b"), f"pid:{pid}"]
    printed = runner.invoke(cli, ["topo", "discover", made.ns("a")])
    assert printed.exit_code == 0 and printed.output.startswith("# Discovered")
    shown = runner.invoke(cli, ["topo", "show", str(out)])
    assert shown.exit_code == 0 and "10.72.0.1/30" in shown.output and "ceth0" in shown.output
    drawn = runner.invoke(cli, ["topo", "show", str(out), "--format", "mermaid"])
    assert drawn.exit_code == 0 and "graph LR" in drawn.output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pid", "999999999"], "no process 999999999"),
        (["--pid", "x1"], "--pid takes a process id, not 'x1'"),
        (["dz-no-such-namespace"], "no namespace named 'dz-no-such-namespace'"),
        ([], "say what to discover"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv: list[str], message: str) -> None:
    done = CliRunner().invoke(cli, ["topo", "discover", *argv])
    assert done.exit_code == 2
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.output
