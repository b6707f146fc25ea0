"""repro.sh as text: valid shell and Python for every example, and the replay's judging."""

from __future__ import annotations

import socket
import struct
import subprocess
from pathlib import Path

import pytest
from support.paths import EXAMPLES

from netprobe.bundle import _replay_frames as replay_frames
from netprobe.bundle._repro import repro_script
from netprobe.topology import load

STEP = {
    "name": "red reaches blue",
    "status": "FAIL",
    "expectation": {
        "where": {"kind": "at"},
        "count": 1,
        "ports": {"blue:eth0": {"role": "must see it"}, "x:eth0": {"role": "must not see it"}},
        "injected": [{"port": "red:eth0", "frame": "ff" * 60, "barrier": False}],
    },
}


def script_for(path: Path) -> str:
    spec = load(path)
    rulesets = {fw.path: Path(fw.path).read_text() for h in spec.hosts for fw in h.firewall}
    macs = {(h.name, i.name): "02:00:00:00:00:99" for h in spec.hosts for i in h.interfaces}
    return repro_script(
        "demo",
        spec,
        [STEP, {"name": "read back", "status": "PASS", "expectation": None}],
        rulesets,
        macs,
    )


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_the_script_is_valid_shell_and_python(path: Path) -> None:
    script = script_for(path)
    assert subprocess.run(["sh", "-n"], input=script, text=True, check=False).returncode == 0
    python = script.split("<<'NETPROBE_REPLAY'\n", 1)[1].split("\nNETPROBE_REPLAY\n", 1)[0]
    compile(python, "repro.sh", "exec")
    for host in load(path).hosts:
        assert f'ip netns add "$P-{host.name}"' in script


def test_the_script_inlines_rulesets_and_pins_macs() -> None:
    script = script_for(EXAMPLES / "nat-gateway.yaml")
    assert (EXAMPLES / "nat-gateway.nft").read_text().strip() in script
    assert "nft -f - <<'NETPROBE_RULESET'" in script
    assert 'ip -n "$P-pve" link set dev vmbr1 address 02:00:00:00:00:99' in script
    assert 'ip netns exec "$P-pve" sysctl -qw net.ipv4.ip_forward=1' in script
    assert str(EXAMPLES) not in script


def tagged(tci: int) -> list[tuple[int, int, bytes]]:
    aux = struct.pack("IIIHHHH", 0x10 | 0x40, 60, 60, 0, 14, tci, 0x8100)
    return [(263, 8, aux)]


def test_the_vlan_tag_the_kernel_moved_out_is_put_back() -> None:
    frame = bytes(12) + b"\x08\x00" + bytes(46)
    assert replay_frames._with_tag(frame, tagged(10)) == bytes(
        12
    ) + b"\x81\x00\x00\x0a" + b"\x08\x00" + bytes(46)
    assert replay_frames._with_tag(frame, []) == frame


def test_kind_looks_past_tags() -> None:
    udp = bytes(12) + b"\x81\x00\x00\x0a" + b"\x08\x00" + bytes(9) + b"\x11" + bytes(30)
    assert replay_frames._kind(udp) == (0x0800, socket.IPPROTO_UDP)
    assert replay_frames._kind(bytes(12) + b"\x08\x06" + bytes(28)) == (0x0806, -1)


def probe(n: int) -> bytes:
    return bytes(14) + b"NPRB" + n.to_bytes(12, "big")


@pytest.mark.parametrize(
    ("kind", "seen", "verdict"),
    [
        ("at", {"b": [probe(1)]}, "PASS"),
        ("at", {"b": []}, "FAIL"),
        ("at", {"b": [probe(2)]}, "FAIL"),  # another probe's copy is not this one's
        ("at", {"b": [probe(1)], "c": [probe(1)]}, "FAIL"),  # leaked where it must not be
        ("at_any", {"a": [probe(1)]}, "PASS"),
        ("nowhere", {}, "PASS"),
    ],
)
def test_the_verdict_follows_netprobes_rules(
    kind: str, seen: dict[str, list[bytes]], verdict: str
) -> None:
    must = {"at": ["b"], "at_any": ["a", "b"], "nowhere": []}[kind]
    step = {"kind": kind, "must": must, "must_not": ["c"]}
    assert replay_frames._verdict(step, seen, [probe(1)]) == verdict
