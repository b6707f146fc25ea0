"""Values beyond what the kernel or the file system takes are SpecErrors naming file and
line, not struct.error, RecursionError or "File name too long" at build time."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import netprobe
from netprobe import Bridge, Host, Interface, Route, Spec, SpecError, Veth


def load_text(tmp_path: Path, text: str) -> SpecError:
    path = tmp_path / "topo.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(SpecError) as caught:
        netprobe.load(path)
    assert caught.value.file == str(path)
    return caught.value


ROUTED = """\
    hosts:
      a:
        interfaces:
          eth0: {{veth: "b:eth0", addresses: [10.0.0.1/24]}}
        routes:
          - {{to: default, via: 10.0.0.2, metric: {metric}}}
      b:
        interfaces:
          eth0: {{addresses: [10.0.0.2/24]}}
    """


@pytest.mark.parametrize("metric", [2**32, 2**64, -1])
def test_a_route_metric_beyond_32_bits_is_refused_at_its_line(
    tmp_path: Path, metric: int
) -> None:
    error = load_text(tmp_path, ROUTED.format(metric=metric))
    assert error.line == 6
    assert "route metric must be an integer 0..4294967295" in error.reason


def test_the_largest_route_metric_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "topo.yaml"
    path.write_text(textwrap.dedent(ROUTED.format(metric=2**32 - 1)))
    assert netprobe.load(path).host("a").routes[0].metric == 2**32 - 1
    with pytest.raises(SpecError, match="route metric"):
        Route("default", via="10.0.0.1", metric=2**32)


@pytest.mark.parametrize("opening", ["[", "{a: "])
def test_deep_nesting_is_a_spec_error_with_its_line(tmp_path: Path, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    deep = opening * 20_000 + closing * 20_000
    error = load_text(tmp_path, f"name: deep\nhosts:\n  a: {deep}\n")
    assert "nested deeper than 100 levels" in error.reason
    assert error.line == 3


def test_a_topology_name_of_250_characters_is_refused(tmp_path: Path) -> None:
    error = load_text(tmp_path, f"name: {'x' * 250}\nhosts:\n  a:\n")
    assert error.line == 1
    assert "must be 1-64" in error.reason and "(250 characters)" in error.reason
    assert len(str(error)) < 200  # the name is cut, not repeated whole


def test_a_topology_name_of_64_characters_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "topo.yaml"
    path.write_text(f"name: {'x' * 64}\nhosts:\n  a:\n")
    assert netprobe.load(path).name == "x" * 64


def test_a_master_cycle_is_named(tmp_path: Path) -> None:
    error = load_text(
        tmp_path,
        """\
        hosts:
          a:
            interfaces:
              br1: {bridge: {}, master: br2}
              br2: {bridge: {}, master: br1}
        """,
    )
    assert error.line == 4
    assert "masters form a cycle in 'a': br1 → br2 → br1" in error.reason


def test_a_longer_master_cycle_through_bonds_is_named() -> None:
    spec = Spec("cycle", hosts=[Host("a", interfaces=[
        Interface("bo1", netprobe.Bond(), master="bo2"),
        Interface("bo2", netprobe.Bond(), master="bo3"),
        Interface("bo3", netprobe.Bond(), master="bo1"),
    ])])  # fmt: skip
    with pytest.raises(SpecError, match="bo1 → bo2 → bo3 → bo1"):
        netprobe.validate(spec)


def test_a_bridge_in_a_bridge_is_refused(tmp_path: Path) -> None:
    error = load_text(
        tmp_path,
        """\
        hosts:
          a:
            interfaces:
              br0: {bridge: {}}
              br1: {bridge: {}, master: br0}
        """,
    )
    assert error.line == 5
    assert "does not nest Linux bridges" in error.reason


def test_a_master_that_is_no_bridge_is_still_refused(tmp_path: Path) -> None:
    error = load_text(
        tmp_path,
        """\
        hosts:
          a:
            interfaces:
              t0: {tap: true}
              t1: {tap: true, master: t0}
        """,
    )
    assert error.line == 5 and "is not a bridge or bond" in error.reason


def test_a_bond_in_a_bridge_is_fine() -> None:
    spec = Spec("ok", hosts=[
        Host("a", interfaces=[
            Interface("br0", Bridge()),
            Interface("bond0", netprobe.Bond(), master="br0"),
            Interface("eth0", Veth("b:eth0"), master="bond0"),
        ]),
        Host("b", interfaces=[Interface("eth0")]),
    ])  # fmt: skip
    assert netprobe.validate(spec) is spec


@pytest.mark.parametrize("delay", [0, 1, 31, 1000])
def test_forward_delay_under_stp_is_the_kernels_range(delay: int) -> None:
    with pytest.raises(SpecError, match="2 to 30 seconds with stp"):
        Bridge(stp=True, forward_delay=delay)
    assert Bridge(stp=False, forward_delay=delay).forward_delay == delay
    assert Bridge(stp=True, forward_delay=15).forward_delay == 15


@pytest.mark.parametrize("mtu", [67, 65536, 2**32])
def test_mtu_beyond_the_kernels_range_is_refused(mtu: int) -> None:
    with pytest.raises(SpecError, match=r"mtu must be an integer 68\.\.65535"):
        Interface("eth0", mtu=mtu)


def test_interface_names_over_ifnamsiz_are_refused(tmp_path: Path) -> None:
    text = "hosts:\n  a:\n    interfaces:\n      abcdefghijklmnop: {tap: true}\n"
    error = load_text(tmp_path, text)
    assert error.line == 4 and "must be 1-15 characters" in error.reason


def test_an_ipv6_address_needs_an_mtu_of_1280(tmp_path: Path) -> None:
    error = load_text(
        tmp_path,
        """\
        hosts:
          a:
            interfaces:
              t0: {tap: true, mtu: 1000, addresses: ["fd00::1/64"]}
        """,
    )
    assert error.line == 4 and "below 1280, the least IPv6 takes" in error.reason
    assert Interface("t0", netprobe.Tap(), mtu=1000, addresses=["10.0.0.1/24"]).mtu == 1000
