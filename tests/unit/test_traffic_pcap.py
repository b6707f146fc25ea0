"""pcapng files: what write_pcap writes, read_pcap (and tcpdump, and dpkt) read back."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dpkt
import pytest
from dpkt import pcapng
from support.paths import CAPTURES

from netprobe.traffic import Captured, read_pcap, write_pcap

PORT_OF = {  # each file in captures/ and the port it was captured at
    "redblue-udp-delivered.pcapng": "blue:eth0",
    "redblue-vlan10-delivered.pcapng": "blue:eth0",
    "redblue-qinq-100-10-delivered.pcapng": "blue:eth0",
    "router-udp-routed.pcapng": "right:eth0",
    "nat-udp-masqueraded.pcapng": "internet:eth0",
    "nat-udp-before-snat.pcapng": "pve:vmbr1",
}
needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")


def _frames(port: str = "a:eth0") -> list[Captured]:
    """Real frames from captures/, restamped with awkward, distinct microsecond times."""
    datas = [data for name in PORT_OF for _, data in read_pcap(CAPTURES / name)]
    base = 1_700_000_000.0
    return [Captured(port, data, base + i * 1.000001 + 0.000007) for i, data in enumerate(datas)]


def _interface_names(path: Path) -> list[str]:
    with path.open("rb") as src:
        reader = pcapng.Reader(src)
        return [o.data.decode() for o in reader.idb.opts if o.code == pcapng.PCAPNG_OPT_IF_NAME]


def test_round_trip_preserves_bytes_in_order(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "a.pcapng"
    write_pcap(path, "a:eth0", frames)
    assert [data for _, data in read_pcap(path)] == [f.data for f in frames]


def test_round_trip_preserves_timestamps_to_the_microsecond(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "a.pcapng"
    write_pcap(path, "a:eth0", frames)
    read = [ts for ts, _ in read_pcap(path)]
    assert [round(ts * 1e6) for ts in read] == [round(f.time * 1e6) for f in frames]


def test_nanosecond_kernel_timestamps_are_rounded_to_the_nearest_microsecond(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.pcapng"
    write_pcap(path, "a:eth0", [Captured("a:eth0", b"\x00" * 60, 1_700_000_000.1234567)])
    ((ts, _),) = read_pcap(path)
    assert round(ts * 1e6) == 1_700_000_000_123_457


def test_file_is_pcapng_with_the_port_as_interface_name(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    write_pcap(path, "pve:tap100i0@vm", _frames("pve:tap100i0@vm"))
    assert path.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"  # section header block
    assert _interface_names(path) == ["pve:tap100i0@vm"]
    assert b"pve:tap100i0@vm" in path.read_bytes()


def test_interface_is_ethernet_with_full_snaplen(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    write_pcap(path, "a:eth0", _frames())
    with path.open("rb") as src:
        reader = pcapng.Reader(src)
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB
        assert reader.idb.snaplen == 65535


@pytest.mark.parametrize(("name", "port"), sorted(PORT_OF.items()))
def test_kept_captures_name_the_port_they_were_seen_at(name: str, port: str) -> None:
    assert _interface_names(CAPTURES / name) == [port]


def test_empty_capture_is_a_valid_file_with_no_frames(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcapng"
    write_pcap(path, "a:eth0", [])
    assert list(read_pcap(path)) == []
    assert _interface_names(path) == ["a:eth0"]


def test_frames_are_written_from_any_iterable(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "a.pcapng"
    write_pcap(str(path), "a:eth0", iter(frames))
    assert len(list(read_pcap(str(path)))) == len(frames)


def test_classic_pcap_files_are_read_too(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "classic.pcap"
    with path.open("wb") as out:
        writer = dpkt.pcap.Writer(out)
        for f in frames:
            writer.writepkt(f.data, ts=f.time)
    read = list(read_pcap(path))
    assert [data for _, data in read] == [f.data for f in frames]
    assert [round(ts * 1e6) for ts, _ in read] == [round(f.time * 1e6) for f in frames]


@needs_tcpdump
def test_tcpdump_reads_the_file_written(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "a.pcapng"
    write_pcap(path, "a:eth0", frames)
    proc = subprocess.run(
        ["tcpdump", "-nn", "-e", "-tt", "-r", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(frames)
    assert lines[0].startswith(f"{frames[0].time:.6f} 02:00:00:00:00:01 > 02:00:00:00:00:02")
    assert "10.0.0.1.40000 > 10.0.0.2.9: UDP, length 16" in proc.stdout
    assert "vlan 10" in proc.stdout and "802.1Q-QinQ" in proc.stdout
    assert "203.0.113.10.40002 > 203.0.113.1.9: UDP" in proc.stdout


@needs_tcpdump
@pytest.mark.parametrize("name", sorted(PORT_OF))
def test_tcpdump_reads_every_kept_capture_with_valid_checksums(name: str) -> None:
    proc = subprocess.run(
        ["tcpdump", "-nn", "-vv", "-r", str(CAPTURES / name)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "udp sum ok" in proc.stdout
    assert "bad" not in proc.stdout.lower()
