"""Policy lines: what each key means once parsed, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from netprobe.errors import SpecError
from netprobe.library.filter.policy import load_policy


def _one(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "p.yml").write_text(f"- {text}\n")
    return load_policy(tmp_path / "p.yml")[0]


def test_icmp_lines_name_one_family_and_no_port(tmp_path: Path) -> None:
    line = _one(tmp_path, "{proto: icmp, expect: accept}")
    assert (line.families, line.port, line.service) == ((4,), 0, "icmp echo-request")
    line = _one(tmp_path, "{proto: icmpv6, type: neighbor-solicitation, in: eth0, expect: drop}")
    assert (line.families, line.icmp_number(6), line.iif) == ((6,), 135, "eth0")
    assert str(line) == "INPUT icmpv6 neighbour-solicitation in eth0: drop"


def test_interface_names_in_from_and_to(tmp_path: Path) -> None:
    line = _one(tmp_path, "{proto: any, chain: forward, from: eth0, to: eth1, expect: accept}")
    assert (line.iif, line.oif, line.families) == ("eth0", "eth1", (4, 6))
    line = _one(tmp_path, "{proto: tcp, port: 22, to: eth1, expect: drop}")
    assert (line.own_if, line.iif) == ("eth1", "")


def test_nat_and_state(tmp_path: Path) -> None:
    line = _one(tmp_path, "{proto: tcp, port: 8080, chain: forward, dnat: '10.0.0.10:80', "
                          "snat: 192.0.2.1, expect: accept}")
    assert (line.dnat, line.dnat_port, line.snat, line.families) == ("10.0.0.10", 80,
                                                                     "192.0.2.1", (4,))
    line = _one(tmp_path, "{proto: udp, port: 53, state: established, expect: accept}")
    assert line.state == "established" and not line.scannable


@pytest.mark.parametrize(("text", "error"), [
    ("{proto: icmp, port: 1, expect: accept}", "port is for tcp and udp"),
    ("{proto: tcp, expect: accept}", "port must be a number"),
    ("{proto: icmp, type: neighbour-solicitation, expect: accept}", "use proto icmpv6"),
    ("{proto: icmp, type: bogus, expect: accept}", "unknown icmp type 'bogus'"),
    ("{proto: tcp, port: 1, in: eth0, chain: output, expect: accept}", "in is for input"),
    ("{proto: tcp, port: 1, snat: 1.2.3.4, expect: accept}", "snat and dnat are for forward"),
    ("{proto: tcp, port: 1, state: established, chain: output, expect: accept}",
     "state established is for input and forward"),
    ("{proto: icmp, from: 'fd00::/8', expect: accept}", "no address family in common"),
    ("{proto: any, state: established, expect: accept}", "state established is for tcp"),
])
def test_bad_lines_are_refused(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(SpecError, match=error):
        _one(tmp_path, text)


@pytest.mark.parametrize(("text", "error"), [
    ("{[a]: 1}", "unhashable|found unacceptable key"),
    ("!foo x", "could not determine a constructor for the tag '!foo'"),
])
def test_yaml_a_line_cannot_be_built_from_is_bad_input(tmp_path: Path, text: str,
                                                       error: str) -> None:
    (tmp_path / "p.yml").write_text(f"- {{proto: tcp, port: 22, expect: accept}}\n- {text}\n")
    with pytest.raises(SpecError, match=error) as caught:
        load_policy(tmp_path / "p.yml")
    assert caught.value.line == 2 and str(tmp_path / "p.yml") in str(caught.value)
