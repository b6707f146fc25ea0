"""Templates: every builder's probes carry distinct, findable nonces and correct checksums.

A probe is the template's bytes with a fresh nonce written into its slot and the one
checksum covering it patched incrementally (RFC 1624). These tests hold each patched
frame against scapy computing the same frame from scratch.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence

import pytest

from netprobe.traffic import (
    MAGIC,
    Template,
    arp,
    dhcp_discover,
    ethernet,
    find_nonce,
    from_scapy,
    icmp_echo,
    tcp,
    udp,
)
from netprobe.traffic._craft import NONCE_LEN

MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"
Vlan = int | tuple[int, int] | None
Builder = Callable[[Vlan], Template]

BUILDERS: dict[str, Builder] = {
    "ethernet": lambda vlan: ethernet(MAC_A, MAC_B, vlan=vlan),
    "arp": lambda vlan: arp(MAC_A, "10.0.0.1", "10.0.0.2", vlan=vlan),
    "arp-reply": lambda vlan: arp(
        MAC_A, "10.0.0.1", "10.0.0.2", op="is-at", dst_mac=MAC_B, vlan=vlan
    ),
    "udp-v4": lambda vlan: udp(MAC_A, MAC_B, "10.0.0.1", "10.0.0.2", vlan=vlan),
    "udp-v6": lambda vlan: udp(MAC_A, MAC_B, "fd00::1", "fd00::2", vlan=vlan),
    "tcp-v4": lambda vlan: tcp(MAC_A, MAC_B, "10.0.0.1", "10.0.0.2", vlan=vlan),
    "tcp-v6": lambda vlan: tcp(MAC_A, MAC_B, "fd00::1", "fd00::2", flags="PA", vlan=vlan),
    "icmp-echo-v4": lambda vlan: icmp_echo(MAC_A, MAC_B, "10.0.0.1", "10.0.0.2", vlan=vlan),
    "icmp-echo-v6": lambda vlan: icmp_echo(MAC_A, MAC_B, "fd00::1", "fd00::2", vlan=vlan),
    "dhcp-discover": lambda vlan: dhcp_discover(MAC_A, vlan=vlan),
}
# Builders whose nonce is covered by an L4 checksum (the others have none to patch).
CHECKSUMMED = {
    "udp-v4",
    "udp-v6",
    "tcp-v4",
    "tcp-v6",
    "icmp-echo-v4",
    "icmp-echo-v6",
    "dhcp-discover",
}
VLANS: dict[str, Vlan] = {"untagged": None, "vlan10": 10, "qinq100-10": (100, 10)}

every_template = pytest.mark.parametrize(
    ("builder", "vlan"),
    [(b, v) for b in BUILDERS for v in VLANS],
)


def _template(builder: str, vlan: str) -> Template:
    return BUILDERS[builder](VLANS[vlan])


def _rebuilt_by_scapy(frame: bytes) -> bytes:
    """The same frame with every checksum deleted and computed again by scapy."""
    from scapy.layers.l2 import Ether
    from scapy.packet import NoPayload, Packet

    packet = Ether(frame)
    layer: Packet = packet
    while not isinstance(layer, NoPayload):
        for name in ("chksum", "cksum"):
            if any(f.name == name for f in layer.fields_desc):
                delattr(layer, name)
        layer = layer.payload
    return bytes(packet)


def _blanked(template: Template, frame: bytes) -> bytes:
    """`frame` with its nonce slot and (if any) patched checksum zeroed."""
    out = bytearray(frame)
    out[template.nonce_at : template.nonce_at + NONCE_LEN] = bytes(NONCE_LEN)
    if template.csum_at is not None:
        out[template.csum_at : template.csum_at + 2] = bytes(2)
    return bytes(out)


def _checksum(template: Template, frame: bytes) -> int:
    assert template.csum_at is not None
    value: int = struct.unpack_from("!H", frame, template.csum_at)[0]
    return value


@every_template
def test_two_probes_carry_distinct_nonces_that_find_nonce_recovers(builder: str, vlan: str) -> None:
    template = _template(builder, vlan)
    (first, first_nonce), (second, second_nonce) = template.probe(), template.probe()
    assert first_nonce != second_nonce
    assert first_nonce.startswith(MAGIC) and len(first_nonce) == NONCE_LEN
    assert find_nonce(first) == first_nonce
    assert find_nonce(second) == second_nonce
    assert first[template.nonce_at : template.nonce_at + NONCE_LEN] == first_nonce


@every_template
def test_patched_frame_equals_scapy_building_it_from_scratch(builder: str, vlan: str) -> None:
    template = _template(builder, vlan)
    for _ in range(3):
        frame, _nonce = template.probe()
        assert _rebuilt_by_scapy(frame) == frame


@pytest.mark.parametrize("vlan", list(VLANS))
@pytest.mark.parametrize("builder", sorted(CHECKSUMMED))
def test_l4_checksum_after_the_nonce_patch_is_the_one_scapy_computes(
    builder: str, vlan: str
) -> None:
    template = _template(builder, vlan)
    assert template.csum_at is not None
    frame, _nonce = template.probe()
    assert _checksum(template, frame) == _checksum(template, _rebuilt_by_scapy(frame))
    assert _checksum(template, frame) != _checksum(template, template.data)


@pytest.mark.parametrize("builder", sorted(set(BUILDERS) - CHECKSUMMED))
def test_templates_without_l4_checksum_have_no_checksum_to_patch(builder: str) -> None:
    assert _template(builder, "untagged").csum_at is None


@every_template
def test_probes_differ_only_in_nonce_and_checksum(builder: str, vlan: str) -> None:
    template = _template(builder, vlan)
    (first, _), (second, _) = template.probe(), template.probe()
    assert len(first) == len(second) == len(template.data)
    assert _blanked(template, first) == _blanked(template, second)
    assert _blanked(template, first) == _blanked(template, template.data)


@every_template
def test_probe_with_a_given_nonce_is_reproducible(builder: str, vlan: str) -> None:
    template = _template(builder, vlan)
    frame, nonce = template.probe()
    assert template.probe(nonce) == (frame, nonce)


@pytest.mark.parametrize(
    ("vlan", "tags"),
    [(None, []), (10, [(0x8100, 10)]), ((100, 10), [(0x88A8, 100), (0x8100, 10)])],
)
def test_vlan_argument_adds_the_tags_in_order(vlan: Vlan, tags: Sequence[tuple[int, int]]) -> None:
    data = udp(MAC_A, MAC_B, "10.0.0.1", "10.0.0.2", vlan=vlan).data
    found, offset = [], 12
    while int.from_bytes(data[offset : offset + 2], "big") in (0x8100, 0x88A8):
        tpid, tci = struct.unpack_from("!HH", data, offset)
        found.append((tpid, tci & 0x0FFF))
        offset += 4
    assert found == list(tags)
    assert data[offset : offset + 2] == b"\x08\x00"


def test_ethernet_frame_is_padded_to_the_requested_size_and_keeps_its_ethertype() -> None:
    template = ethernet(MAC_A, MAC_B, ethertype=0x88B5, vlan=10, size=80)
    assert len(template.data) == 80
    assert template.data[16:18] == b"\x88\xb5"


def _nonce_giving_zero(template: Template) -> bytes:
    """A nonce for which the one's-complement sum of the covered data is all ones."""
    base = MAGIC + bytes(NONCE_LEN - len(MAGIC))
    frame, _ = template.probe(base)
    return base[:-2] + struct.pack("!H", _checksum(template, frame))


@pytest.mark.parametrize("vlan", list(VLANS))
def test_udp_checksum_that_computes_to_zero_is_sent_as_ffff(vlan: str) -> None:
    for builder in ("udp-v4", "udp-v6", "dhcp-discover"):
        template = _template(builder, vlan)
        frame, _ = template.probe(_nonce_giving_zero(template))
        assert _checksum(template, frame) == 0xFFFF
        assert _rebuilt_by_scapy(frame) == frame


@pytest.mark.parametrize("builder", ["tcp-v4", "tcp-v6", "icmp-echo-v4", "icmp-echo-v6"])
def test_non_udp_checksum_that_computes_to_zero_stays_zero(builder: str) -> None:
    template = _template(builder, "untagged")
    frame, _ = template.probe(_nonce_giving_zero(template))
    assert _checksum(template, frame) in (0x0000, 0xFFFF)
    assert _rebuilt_by_scapy(frame) == frame


def test_ipv4_udp_without_checksum_keeps_zero_after_the_patch() -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    template = from_scapy(Ether(src=MAC_A, dst=MAC_B) / IP() / UDP(chksum=0))
    frame, nonce = template.probe()
    assert template.csum_at is not None
    assert _checksum(template, frame) == 0
    assert find_nonce(frame) == nonce


def test_from_scapy_appends_a_nonce_slot_when_the_packet_has_none() -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    packet = Ether(src=MAC_A, dst=MAC_B) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP()
    template = from_scapy(packet)
    assert template.nonce_at == len(bytes(packet))
    frame, _ = template.probe()
    assert _rebuilt_by_scapy(frame) == frame


@pytest.mark.parametrize("layer", ["UDP", "TCP"])
def test_from_scapy_checksum_is_right_when_the_slot_lands_at_an_odd_offset(layer: str) -> None:
    from scapy.layers import inet
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    l4 = getattr(inet, layer)()
    packet = (
        Ether(src=MAC_A, dst=MAC_B) / inet.IP(src="10.0.0.1", dst="10.0.0.2") / l4 / Raw(b"abc")
    )
    template = from_scapy(packet)
    assert (template.nonce_at - template.csum_at) % 2 == 1  # type: ignore[operator]
    # The misaligned update is off by a byte swap: right only when the change it adds
    # has equal high and low bytes. This nonce's change does not (a random one may).
    frame, _ = template.probe(MAGIC + bytes(range(1, NONCE_LEN - len(MAGIC) + 1)))
    assert _rebuilt_by_scapy(frame) == frame


def test_find_nonce_ignores_a_truncated_nonce() -> None:
    assert find_nonce(b"\x00" * 20 + MAGIC + b"\x01" * 4) is None
    assert find_nonce(b"no marker here") is None


def test_importing_traffic_does_not_import_scapy_until_a_builder_runs() -> None:
    code = textwrap.dedent(
        """
        import sys, tempfile, os
        import netprobe, netprobe.traffic, netprobe.expect
        from netprobe.traffic import Captured, decode, find_nonce, read_pcap, summary, write_pcap
        frame = bytes.fromhex("0200000000020200000000010800") + b"NPRB" + bytes(12)
        summary(decode(frame)); find_nonce(frame)
        path = os.path.join(tempfile.mkdtemp(), "x.pcapng")
        write_pcap(path, "a:eth0", [Captured("a:eth0", frame, 1.0)]); list(read_pcap(path))
        assert not [m for m in sys.modules if m.startswith("scapy")], "scapy imported early"
        netprobe.traffic.udp("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.1", "10.0.0.2")
        assert "scapy" in sys.modules
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_a_nonce_under_two_checksums_is_rebuilt_right() -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    from scapy.packet import Raw

    from netprobe.traffic._craft import SLOT, from_scapy

    inner = Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=5, dport=6) / Raw(SLOT)
    packet = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(dport=4789) / VXLAN(vni=5) / inner
    template = from_scapy(packet)
    for _ in range(3):
        frame, nonce = template.probe()
        fresh = Ether(frame)
        fresh[UDP].chksum = None
        fresh[VXLAN][UDP].chksum = None
        assert Ether(bytes(fresh)) == Ether(frame)  # both checksums as scapy computes them
        assert find_nonce(frame) == nonce
