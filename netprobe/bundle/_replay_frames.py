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
    import scapy.layers.dhcp
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


def _run_step(step: dict[str, Any], ports: dict[str, Port]) -> tuple[str, Seen]:
    _drain(ports, {name: [] for name in ports})
    probes = [bytes.fromhex(hex_) for _, hex_, barrier in step["frames"] if not barrier]
    for name, hex_, _ in step["frames"]:
        ports[name].send(bytes.fromhex(hex_))
    seen: Seen = {name: [] for name in ports}
    _listen(ports, seen, _WINDOW)
    wanted = {(_nonce(p), _kind(p)) for p in probes}
    copies = {n: [f for f in fs if (_nonce(f), _kind(f)) in wanted] for n, fs in seen.items()}
    print(f"  sent {len(probes)} probe(s) into {step['frames'][0][0]}: {_summary(probes[0])}")
    print(f"  expected: {step['kind']} {' '.join(step['must'])}".rstrip())
    for name in step["must"] + step["must_not"]:
        found = copies.get(name, [])
        text = f"{len(found)} copies, e.g. {_summary(found[0])}" if found else "nothing"
        print(f"  {name}: {text}")
    return _verdict(step, copies, probes), seen


Seen = dict[str, list[bytes]]


def _drain(ports: dict[str, Port], seen: Seen) -> None:
    """Read every port into `seen`, answering the ARP a VM's stack would."""
    for name, port in ports.items():
        seen[name] += [f for f in port.read() if not _answer_arp(port, f)]


def _listen(ports: dict[str, Port], seen: Seen, seconds: float, done: Any = None) -> None:
    """Read for `seconds`, or until `done()`."""
    deadline = time.monotonic() + seconds
    while not (done and done()) and (left := deadline - time.monotonic()) > 0:
        select.select([p.fd for p in ports.values()], [], [], left)
        _drain(ports, seen)


def main(plan: dict[str, Any]) -> int:
    """Replay `plan`'s steps, printing what each caused; the exit status is 1 if a step failed."""
    # Every TAP is held open, as netprobe holds it: a TAP without its VM has no carrier.
    names = set(plan.get("vm_ports", []))
    names |= {p for s in plan["steps"] for p in s.get("must", []) + s.get("must_not", [])}
    names |= {f[0] for s in plan["steps"] for f in s.get("frames", [])}
    ports = {name: Port(name) for name in sorted(names)}
    time.sleep(0.3 if any(p.vm for p in ports.values()) else 0.05)  # a TAP's carrier came up
    failed, differ, unjudged = 0, 0, 0
    last: tuple[dict[str, Any], Seen] | None = None  # the step that sent frames, what came
    for number, step in enumerate(plan["steps"], 1):
        print(f"step {number}: {step['name']}")
        if not any(not barrier for _, _, barrier in step.get("frames", [])):
            verdict = _run_answer(step, last, ports) if step.get("answer") else None
            if verdict is None:
                print(
                    f"  not replayed (no frames; netprobe recorded {step['recorded']}): "
                    "not judged here"
                )
                unjudged += 1
                continue
        else:
            try:
                verdict, seen = _run_step(step, ports)
                last = step, seen
            except OSError as exc:  # a port that cannot send (down, gone): that is the finding
                print(f"  could not send: {exc}")
                verdict, last = "FAIL", None
        failed += verdict == "FAIL"
        same = verdict == step["recorded"]
        differ += not same
        print(
            f"  → {verdict} (netprobe recorded {step['recorded']}"
            + (")" if same else ", this run differs)")
        )
    print(
        f"{failed} step(s) failed; {differ} differ from what netprobe recorded"
        + (f"; {unjudged} not judged here" if unjudged else "")
    )
    return 1 if failed else 0


# -- DHCP: a server's answer carries no nonce; it is known by the xid and chaddr of the
# message it answers (as the dhcp check knows it).
_ANSWER_WAIT = 6.0  # seconds a server has to answer, as long as the dhcp check waits
_DHCP_TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK",
               7: "RELEASE", 8: "INFORM"}  # fmt: skip
_ARP_FOR: dict[str, tuple[bytes, bytes]] = {}  # a client port → (leased IPv4, its MAC)


def _bootp(frame: bytes) -> tuple[int, int, bytes, str, bytes] | None:
    """(op, xid, chaddr, DHCP message type, yiaddr) of a DHCP frame, else None."""
    at = 12
    while frame[at : at + 2] in (b"\x81\x00", b"\x88\xa8"):
        at += 4
    ip = at + 2
    if frame[at:ip] != b"\x08\x00" or len(frame) < ip + 20 or frame[ip + 9] != 17:
        return None
    udp = ip + (frame[ip] & 0x0F) * 4
    bootp = udp + 8
    if len(frame) < bootp + 240 or frame[bootp + 236 : bootp + 240] != b"\x63\x82\x53\x63":
        return None
    if not set(struct.unpack_from("!HH", frame, udp)) <= {67, 68}:
        return None
    kind, at = "?", bootp + 240
    while at + 2 < len(frame) and frame[at] != 255:
        if frame[at] == 53:
            kind = _DHCP_TYPES.get(frame[at + 2], "?")
        at += 1 if frame[at] == 0 else 2 + frame[at + 1]
    xid = int.from_bytes(frame[bootp + 4 : bootp + 8], "big")
    return frame[bootp], xid, frame[bootp + 28 : bootp + 34], kind, frame[bootp + 16 : bootp + 20]


def _answer_arp(port: Port, frame: bytes) -> bool:
    """Answer an ARP request for the address leased on `port`, as the VM would."""
    held = _ARP_FOR.get(port.name)
    if held is None or len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return False
    op, sha, spa, tpa = struct.unpack_from("!H6s4s6x4s", frame, 20)
    ip, mac = held
    if op != 1 or tpa != ip:
        return False
    head = sha + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2)
    port.send((head + mac + ip + sha + spa).ljust(60, b"\0"))
    return True


def _dotted(raw: bytes, sep: str = ".", fmt: str = "{}") -> str:
    return sep.join(fmt.format(b) for b in raw)


def _run_answer(
    step: dict[str, Any], last: tuple[dict[str, Any], Seen] | None, ports: dict[str, Port]
) -> str | None:
    """Judge the server's answer to the DHCP message the last step sent: of the kind
    wanted, from one server, at the client's port only. None: that step sent none."""
    sent, seen = last if last is not None else ({"frames": []}, {})
    asked = [b for _, h, barrier in sent["frames"] if not barrier
             and (b := _bootp(bytes.fromhex(h))) and b[0] == 1]  # fmt: skip
    if not asked:
        return None
    xid, chaddr, client = asked[0][1], asked[0][2], sent["frames"][0][0]
    others = [p for p in sent["must"] + sent["must_not"] if p != client]

    def answers(port: str) -> list[tuple[bytes, tuple[int, int, bytes, str, bytes]]]:
        found = ((f, _bootp(f)) for f in seen.get(port, []))
        return [(f, b) for f, b in found if b and b[:3] == (2, xid, chaddr)]

    def got() -> bool:
        return any(b[3] in (step["answer"], "NAK") for _, b in answers(client))

    _listen(ports, seen, _ANSWER_WAIT, got)
    _listen(ports, seen, _WINDOW if got() else 0)  # what else came, and where
    mac = _dotted(chaddr, ":", "{:02x}")
    print(f"  the server's {step['answer']} to xid {xid:#010x} (client {mac}), at {client} only")
    for name in [client, *others]:
        found = [f"{b[3]} {_dotted(b[4])} from {_dotted(f[6:12], ':', '{:02x}')}"
                 for f, b in answers(name)]  # fmt: skip
        print(f"  {name}: {', '.join(found) or 'nothing'}")
    mine = [(f, b) for f, b in answers(client) if b[3] == step["answer"]]
    servers = {f[6:12] for f, _ in answers(client)}
    ok = bool(mine) and len(servers) == 1 and not any(answers(p) for p in others)
    if ok and step["answer"] == "ACK":
        _ARP_FOR[client] = (mine[0][1][4], chaddr)  # the client holds the address now
    return "PASS" if ok else "FAIL"
