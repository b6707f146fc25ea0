"""Check parameters: declared parsers and annotated types turn text into what a body takes,
and a bad value is a SpecError naming the parameter and what it takes."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import pytest

from netprobe import SpecError
from netprobe.check import Check, Context, Param, param, registered
from netprobe.check._param import parse_params


@pytest.mark.parametrize(
    ("parser", "value", "expected"),
    [
        (param.port(), "vm1:eth0", "vm1:eth0"),
        (param.port(vm=True), "pve:tap100i0@vm", "pve:tap100i0@vm"),
        (param.port_list(minimum=2), "a:eth0, b:eth0", "a:eth0, b:eth0"),
        (param.port_list(), ["a:eth0"], ["a:eth0"]),
        (param.host(), " web ", "web"),
        (param.boolean, "Yes", True),
        (param.boolean, "0", False),
        (param.integer(1, 4094), "30", 30),
        (param.integer(1, 4094), 4094, 4094),
        (param.number(0, 60), "0.5", 0.5),
        (param.ip(4), "203.0.113.10", "203.0.113.10"),
        (param.ip(), "2001:db8::1", "2001:db8::1"),
        (param.services, "tcp/22,UDP/53", "tcp/22,UDP/53"),
        (param.services, "", ""),
        (param.optional(param.port()), "", ""),
        (param.optional(param.integer(), none=None), "", None),
    ],
)
def test_a_parser_takes_what_it_declares(parser: Any, value: Any, expected: Any) -> None:
    assert parser(value) == expected


@pytest.mark.parametrize(
    ("parser", "value"),
    [
        (param.port(), "vm1"),
        (param.port(), "pve:tap100i0@vm"),  # a TAP's VM side only where declared
        (param.port(), ":eth0"),
        (param.port_list(minimum=3), "a:eth0,b:eth0"),
        (param.port_list(), "a:eth0,b"),
        (param.host(), "web:eth0"),
        (param.boolean, "maybe"),
        (param.integer(1, 4094), "0"),
        (param.integer(1, 4094), "4095"),
        (param.integer(), "1.5"),
        (param.integer(), True),
        (param.number(0, 60), "nan"),
        (param.number(0, 60), "61"),
        (param.ip(4), "2001:db8::1"),
        (param.ip(), "garbage"),
        (param.services, "tcp/99999"),
        (param.services, "tcp/0"),
        (param.services, "sctp/22"),
        (param.services, "tcp22"),
    ],
)
def test_a_parser_refuses_what_it_does_not_take(parser: Any, value: Any) -> None:
    with pytest.raises(ValueError):
        parser(value)


def test_checked_by_uses_the_checks_own_reader_and_keeps_the_value() -> None:
    from netprobe.library.nat import FORWARD, parse_forward

    parse = param.checked_by(parse_forward, FORWARD)
    assert parse("udp/53->c1:eth0:5353") == "udp/53->c1:eth0:5353"
    for bad in ("garbage", "8080:c1", "tcp/99999->vm1:eth0:22", "sctp/1->a:b:2", "1->a:2"):
        with pytest.raises(ValueError, match="PORT->HOST:IFNAME:PORT"):
            parse(bad)


def test_docker_bridges_direct_names_a_neighbour_and_a_container_port() -> None:
    from netprobe.library.docker_bridge import DIRECT, parse_direct

    assert parse_direct("lan:eth0->c1:eth0:22") == ("lan:eth0", "c1:eth0", 22)
    parse = param.checked_by(parse_direct, DIRECT)
    for bad in ("c1:eth0:80", "lan->c1:eth0:80", "lan:eth0->c1:eth0:0", "lan:eth0->c1:eth0"):
        with pytest.raises(ValueError, match="NEIGHBOUR:IFNAME->HOST:IFNAME:PORT"):
            parse(bad)


def _typed(
    ctx: Context,
    *,
    ttl: int = 64,
    wait: float = 1.0,
    strict: bool = False,
    limit: int | None = None,
    hosts: tuple[str, ...] = (),
    names: Sequence[str] = (),
    label: str = "",
    either: float | str = 1.0,
) -> None:
    """A body whose parameters are typed by annotation only."""


def test_text_is_converted_to_the_annotated_type() -> None:
    given = {"ttl": "10", "wait": "0.25", "strict": "yes", "limit": "", "hosts": "a:e0, b:e0",
             "names": "x,y", "label": "10", "either": "2"}
    assert parse_params("typed", _typed, {}, given) == {
        "ttl": 10, "wait": 0.25, "strict": True, "limit": None, "hosts": ("a:e0", "b:e0"),
        "names": ["x", "y"], "label": "10", "either": "2",
    }


def test_values_given_typed_from_python_pass_unchanged() -> None:
    given = {"ttl": 10, "hosts": ("a:e0",), "limit": 3}
    assert parse_params("typed", _typed, {}, given) == given


def test_a_value_that_does_not_convert_names_the_parameter_and_the_type() -> None:
    with pytest.raises(SpecError, match=r"check typed: parameter ttl takes an integer, not 'ten'"):
        parse_params("typed", _typed, {}, {"ttl": "ten"})


def test_a_declared_parser_wins_over_the_annotation() -> None:
    declared = {"ttl": Param("hops", param.integer(1, 255))}
    assert parse_params("typed", _typed, declared, {"ttl": "255"}) == {"ttl": 255}
    with pytest.raises(SpecError, match=r"parameter ttl takes an integer from 1 to 255, not '0'"):
        parse_params("typed", _typed, declared, {"ttl": "0"})


def test_check_parse_params_also_refuses_unknown_names() -> None:
    check = Check("typed", "x", _typed, "redblue.yaml", params={"ttl": "hops"})
    with pytest.raises(SpecError, match=r"takes parameters ttl, wait, strict, .*, not nope"):
        check.parse_params({"nope": "1"})


def test_a_declared_parameter_the_body_does_not_take_is_refused_when_the_check_is_made() -> None:
    with pytest.raises(SpecError, match=r"check typed declares parameter\(s\) tll that its body"):
        Check("typed", "x", _typed, "redblue.yaml", params={"tll": "hops"})
    with pytest.raises(SpecError, match="declares parameter"):
        Check("none", "x", lambda ctx: None, "redblue.yaml", params={"ttl": "hops"})


def test_a_body_taking_any_keyword_may_declare_any_name() -> None:
    def body(ctx: Context, *, ttl: int = 64, **more: str) -> None:
        """Takes ttl, and whatever else it is given."""

    check = Check("open", "x", body, "redblue.yaml", params={"colour": "a colour"})
    assert check.parameters() == {"ttl": "an integer (default 64)", "colour": "a colour"}


def test_undeclared_body_parameters_are_described_by_their_annotations() -> None:
    def body(ctx: Context, size: int, *, label: str = "", strict: bool = False) -> None:
        """One parameter positional-or-keyword and required, two keyword-only."""

    hops = Param("hops", param.integer(1, 255))
    check = Check("typed", "x", _typed, "redblue.yaml", params={"ttl": hops})
    taken = check.parameters()
    assert list(taken) == ["ttl", "wait", "strict", "limit", "hosts", "names", "label", "either"]
    assert taken["ttl"] is hops and taken["wait"] == "a number (default 1.0)"
    assert taken["label"] == "text (default '')"
    assert Check("b", "x", body, "r.yaml").parameters() == {
        "size": "an integer (required)",
        "label": "text (default '')",
        "strict": "a boolean: yes, no, true, false, 1 or 0 (default False)",
    }


def test_list_shows_every_parameter_the_body_takes() -> None:
    from netprobe.report._text import check_details

    text = check_details(Check("typed", "x", _typed, "redblue.yaml", params={"ttl": "hops"}))
    assert "    ttl     hops" in text and "    strict  a boolean" in text


@pytest.mark.parametrize(
    ("name", "given", "message"),
    [
        ("nat", {"forward": "garbage"}, "parameter forward takes [tcp/|udp/]PORT->HOST"),
        ("nat", {"inside": "vm1"}, "parameter inside takes HOST:IFNAME, not 'vm1'"),
        ("nat", {"public_ip": "203.0.113"}, "parameter public_ip takes an IPv4 address"),
        ("exposure", {"listen": "tcp/99999"}, "parameter listen takes services like tcp/22"),
        ("vlan-bridge", {"absent": "5000"}, "parameter absent takes an integer from 1 to 4094"),
        ("ovs-bond", {"max_failover": "soon"}, "parameter max_failover takes a number"),
        ("mac-learning", {"ports": "a:e,b:e"}, "parameter ports takes 3 or more ports"),
        ("vlan", {"vlans": "10=a:e"}, "parameter vlans takes two or more ID=HOST:IFNAME"),
    ],
)
def test_built_in_checks_refuse_bad_parameters_up_front(
    name: str, given: dict[str, str], message: str
) -> None:
    from netprobe.check import load_check

    check = load_check(name)
    assert isinstance(check, Check)
    with pytest.raises(SpecError) as caught:
        check.parse_params(given)
    assert message in str(caught.value)


@pytest.mark.parametrize("name", [n for n, r in registered().items() if r.package == "netprobe"])
def test_every_built_in_checks_defaults_parse_as_text(name: str) -> None:
    """Every parameter of every built-in is declared, and its default given as text on
    the command line parses (what `netprobe check NAME --KEY DEFAULT` would do)."""
    import inspect

    target = registered()[name].target
    module, _, attribute = target.partition(":")
    check = getattr(importlib.import_module(module), attribute)
    signature = inspect.signature(check.body)
    taken = [p for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY]
    assert {p.name for p in taken} == set(check.params)
    for p in taken:
        default = p.default
        if isinstance(default, str) and default:
            check.parse_params({p.name: default})
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            check.parse_params({p.name: str(default)})
