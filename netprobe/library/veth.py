"""veth: a veth pair is a pipe. Every frame sent into one end comes out of the other,
byte for byte, in both directions: broadcast and unicast, tagged and untagged, IPv4, IPv6
and ARP, up to the full MTU. Ends, MTUs and peers are read from the kernel.
"""

from __future__ import annotations

from netprobe.check import Check, Context, Param, Port, param
from netprobe.expect import at
from netprobe.traffic import Template, arp, ethernet, icmp_echo, udp

__all__ = ["CHECK", "run"]


def _frames(src: str, dst: str, mtu: int) -> dict[str, Template]:
    return {
        "broadcast": ethernet(src, "ff:ff:ff:ff:ff:ff"),
        "unicast UDP": udp(src, dst, "192.0.2.1", "192.0.2.2"),
        "802.1Q tagged": udp(src, dst, "192.0.2.1", "192.0.2.2", vlan=42),
        "QinQ tagged": udp(src, dst, "192.0.2.1", "192.0.2.2", vlan=(100, 42)),
        "ICMPv6 echo": icmp_echo(src, dst, "2001:db8::1", "2001:db8::2"),
        "ARP request": arp(src, "192.0.2.1", "192.0.2.2"),
        f"full-size ({mtu + 14} bytes)": ethernet(src, dst, size=mtu + 14),
    }


def body(ctx: Context, *, a: str = "red:eth0", b: str = "switch:red") -> None:
    """Send each kind of frame into `a` and expect it unmodified at `b`, then back."""
    ends = Port.parse(a), Port.parse(b)
    legs = [(src, dst, _frames(ctx.topo.mac(src), ctx.topo.mac(dst), _mtu(ctx, src)))
            for src, dst in (ends, ends[::-1])]
    ctx.plan(*(f"{kind} {src} → {dst}" for src, dst, frames in legs for kind in frames))
    for src, dst, frames in legs:
        for kind, frame in frames.items():
            outcome = ctx.expect(f"{kind} {src} → {dst}", frame, src, at(dst), timeout=0.5)
            if not outcome.passed:
                _diagnose(ctx, src, dst, kind)


def _mtu(ctx: Context, port: Port) -> int:
    iface = ctx.topo.live(port.host).interface(port.ifname)
    return iface.mtu if iface else 1500


def _diagnose(ctx: Context, src: Port, dst: Port, kind: str) -> None:
    far = ctx.topo.live(dst.host).interface(dst.ifname)
    near = ctx.topo.live(src.host).interface(src.ifname)
    if far is None or near is None:
        ctx.diagnose(f"{dst if far is None else src} does not exist")
    elif not far.up:
        ctx.diagnose(f"{dst} is down: a veth delivers nothing to an end that is down")
    elif not near.up:
        ctx.diagnose(f"{src} is down: a veth sends nothing from an end that is down")
    elif kind.startswith("full-size") and far.mtu < near.mtu:
        ctx.diagnose(f"MTU mismatch: {dst} has MTU {far.mtu}, {src} has {near.mtu}; "
                     f"the veth drops frames longer than the receiving end's MTU")
    elif ctx.topo.peer(src) not in (None, dst):
        ctx.diagnose(f"{src} and {dst} are not the two ends of one veth: {src}'s peer is "
                     f"{ctx.topo.peer(src)}")
    else:
        ctx.diagnose(f"{kind} frames from {src} do not come out of {dst} unchanged "
                     "(see the diff: something between them filters or rewrites)")


CHECK = Check(
    name="veth",
    summary="a veth pair delivers every frame, unmodified, in both directions",
    body=body,
    reference="redblue.yaml",
    requires=("veth", "AF_PACKET"),
    params={
        "a": Param("one end, HOST:IFNAME", param.port()),
        "b": Param("the other end, HOST:IFNAME", param.port()),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
