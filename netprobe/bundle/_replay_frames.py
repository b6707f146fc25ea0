"""The replay half of `repro.sh`: send recorded frames, print what came out where.

This module is copied verbatim into every bundle's repro.sh and must run there alone:
it imports only the standard library, and scapy for printing frames. Namespaces are
/run/netns/$P-HOST, made by the script's shell half.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import select
import socket
import struct
import time
from typing import Any

_CLONE_NEWNET = 0x40000000
_ETH_P_ALL = 0x0003
_SOL_PACKET = 263
_PACKET_AUXDATA = 8
_PACKET_OUTGOING = 4
_TP_STATUS_VLAN_VALID = 0x10
_TP_STATUS_VLAN_TPID_VALID = 0x40
_TUNSETIFF = 0x400454CA
_IFF_TAP_NO_PI = 0x0002 | 0x1000
_MAGIC = b"NPRB"
_NONCE = 16
_WINDOW = 0.5  # seconds each step listens for what its frames caused
_VM = "@vm"


class Port:
    """A place frames enter and leave: an AF_PACKET socket, or a TAP's VM side."""

    def __init__(self, name: str) -> None:
        self.name = name
        host, _, ifname = name.partition(":")
        self.vm = ifname.endswith(_VM)
        ifname = ifname.removesuffix(_VM)
        self.fd = _in_namespace(host, lambda: self._open(ifname))

    def _open(self, ifname: str) -> int:
        if self.vm:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
            fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", ifname.encode(), _IFF_TAP_NO_PI))
            return fd
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
        sock.setsockopt(_SOL_PACKET, _PACKET_AUXDATA, 1)
        sock.bind((ifname, 0))
        sock.setblocking(False)
        self.sock = sock
        return sock.fileno()

    def send(self, frame: bytes) -> None:
        """Send one frame into the port."""
        if self.vm:
            os.write(self.fd, frame)
        else:
            self.sock.send(frame)

    def read(self) -> list[bytes]:
        """Every frame queued on the port (drained; never blocks)."""
        out = []
        while True:
            try:
                if self.vm:
                    out.append(os.read(self.fd, 65535))
                    continue
                data, anc, _, addr = self.sock.recvmsg(65535, socket.CMSG_SPACE(20))
            except BlockingIOError:
                return out
            if addr[2] != _PACKET_OUTGOING:
                out.append(_with_tag(data, anc))


def _with_tag(data: bytes, ancillary: list[tuple[int, int, bytes]]) -> bytes:
    """Put back the VLAN tag the kernel moved out of the frame."""
    for level, kind, raw in ancillary:
        if level == _SOL_PACKET and kind == _PACKET_AUXDATA and len(raw) >= 20:
            status, _, _, _, _, tci, tpid = struct.unpack("IIIHHHH", raw[:20])
            if status & _TP_STATUS_VLAN_VALID:
                tpid = tpid if status & _TP_STATUS_VLAN_TPID_VALID else 0x8100
                return data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
    return data


def _in_namespace(host: str, make: Any) -> Any:
    """Run `make` inside host's namespace; what it opens stays bound there."""
    libc = ctypes.CDLL(None, use_errno=True)
    here = os.open("/proc/self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{os.environ['P']}-{host}", os.O_RDONLY)
    try:
        if libc.setns(there, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {host}")
        return make()
    finally:
        libc.setns(here, _CLONE_NEWNET)
        os.close(here)
        os.close(there)


def _nonce(frame: bytes) -> bytes:
    at = frame.find(_MAGIC)
    return frame[at : at + _NONCE] if at >= 0 else b"\0" * _NONCE


def _kind(frame: bytes) -> tuple[int, int]:
    """(ethertype, IP protocol) past any VLAN tags: a copy has the probe's kind, an ICMP
    error quoting it does not."""
    at, ethertype = 12, 0
    while at + 2 <= len(frame):
        ethertype = int.from_bytes(frame[at : at + 2], "big")
        if ethertype not in (0x8100, 0x88A8):
            break
        at += 4
    ip = frame[at + 2 :]
    if ethertype == 0x0800 and len(ip) > 9:
        return ethertype, ip[9]
    if ethertype == 0x86DD and len(ip) > 6:
        return ethertype, ip[6]
    return ethertype, -1


def _summary(frame: bytes) -> str:
    import scapy.layers.inet
    import scapy.layers.inet6  # noqa: F401  (registers IPv6 under Ether)
    from scapy.layers.l2 import Ether

    return str(Ether(frame).summary())


def _verdict(step: dict[str, Any], copies: dict[str, list[bytes]], probes: list[bytes]) -> str:
    nonces = [_nonce(p) for p in probes]

    def seen(port: str, nonce: bytes) -> bool:
        return any(_nonce(f) == nonce for f in copies.get(port, []))

    if step["kind"] == "at_any":
        ok = all(any(seen(p, n) for p in step["must"]) for n in nonces)
    else:
        ok = all(seen(p, n) for p in step["must"] for n in nonces)
    leaked = [p for p in step["must_not"] if any(seen(p, n) for n in nonces)]
    return "PASS" if ok and not leaked else "FAIL"


def _run_step(step: dict[str, Any], ports: dict[str, Port]) -> str:
    for port in ports.values():
        port.read()
    probes = [bytes.fromhex(hex_) for _, hex_, barrier in step["frames"] if not barrier]
    for name, hex_, _ in step["frames"]:
        ports[name].send(bytes.fromhex(hex_))
    deadline = time.monotonic() + _WINDOW
    seen: dict[str, list[bytes]] = {name: [] for name in ports}
    while (left := deadline - time.monotonic()) > 0:
        select.select(list(p.fd for p in ports.values()), [], [], left)
        for name, port in ports.items():
            seen[name] += port.read()
    wanted = {(_nonce(p), _kind(p)) for p in probes}
    copies = {n: [f for f in fs if (_nonce(f), _kind(f)) in wanted] for n, fs in seen.items()}
    print(f"  sent {len(probes)} probe(s) into {step['frames'][0][0]}: {_summary(probes[0])}")
    print(f"  expected: {step['kind']} {' '.join(step['must'])}".rstrip())
    for name in step["must"] + step["must_not"]:
        found = copies.get(name, [])
        text = f"{len(found)} copies, e.g. {_summary(found[0])}" if found else "nothing"
        print(f"  {name}: {text}")
    return _verdict(step, copies, probes)


def main(plan: dict[str, Any]) -> int:
    """Replay `plan`'s steps, printing what each caused; the exit status is 1 if a step failed."""
    # Every TAP is held open, as netprobe holds it: a TAP without its VM has no carrier.
    names = set(plan.get("vm_ports", []))
    names |= {p for s in plan["steps"] for p in s.get("must", []) + s.get("must_not", [])}
    names |= {f[0] for s in plan["steps"] for f in s.get("frames", [])}
    ports = {name: Port(name) for name in sorted(names)}
    time.sleep(0.3 if any(p.vm for p in ports.values()) else 0.05)  # a TAP's carrier came up
    failed, differ = 0, 0
    for number, step in enumerate(plan["steps"], 1):
        print(f"step {number}: {step['name']}")
        if not any(not barrier for _, _, barrier in step.get("frames", [])):
            print(f"  not replayed (no frames; netprobe recorded {step['recorded']})")
            continue
        try:
            verdict = _run_step(step, ports)
        except OSError as exc:  # a port that cannot send (down, gone): that is the finding
            print(f"  could not send: {exc}")
            verdict = "FAIL"
        failed += verdict == "FAIL"
        same = verdict == step["recorded"]
        differ += not same
        print(
            f"  → {verdict} (netprobe recorded {step['recorded']}"
            + (")" if same else ", this run differs)")
        )
    print(f"{failed} step(s) failed; {differ} differ from what netprobe recorded")
    return 1 if failed else 0
