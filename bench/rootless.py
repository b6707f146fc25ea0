"""Rootless networking: slirp4netns and pasta against a kernel veth + bridge path.

One topology netprobe builds holds three "containers", each an empty namespace served
differently from the same host side (the rootless user's namespace):

  bridged   eth0 10.88.0.2/16, a veth whose far end is a port of the host's br0
            (10.88.0.1): what Docker's bridge network does; the container reaches the
            host's listener at 10.88.0.1. The baseline.
  slirp     slirp4netns --configure --mtu=65520 (Podman's defaults): the container
            reaches the host's loopback at 10.0.2.2.
  pasta     pasta --config-net (it copies the host side's address and default route):
            the container reaches the host's loopback at the gateway, 192.0.2.254.

A listener process in the host side (bound to 0.0.0.0) echoes UDP and TCP and sinks TCP
bulk data. A client process in each container measures, timing inside itself:

  udp_rr    N one-datagram request/response round trips (64 bytes), median and p99;
  tcp_rr    N round trips (64 bytes) on one TCP connection (TCP_NODELAY), median and p99;
  tcp_bulk  B bytes sent container → host (1 MiB writes), until the listener reports it
            has read them all: MB/s (10^6 bytes per second).

`--reps` repetitions; in each, every path runs every measurement, the order of the paths
rotating so that load from others falls on all of them. Figures are medians over the
repetitions (of each repetition's median / p99 / MB/s); ratios are path / bridge. The
last line of output is one line of JSON. Run as root, or unprivileged: netprobe then
makes its own user namespace first, as `netprobe check rootless` does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so `python3 bench/rootless.py` runs from a checkout

import netprobe  # noqa: E402
from netprobe import _userns  # noqa: E402
from netprobe.topology import Topology  # noqa: E402

PORT = 9100
PATHS = ("bridge", "slirp4netns", "pasta")
TARGET = {"bridge": "10.88.0.1", "slirp4netns": "10.0.2.2", "pasta": "192.0.2.254"}
HOST_OF = {"bridge": "bridged", "slirp4netns": "slirp", "pasta": "pasta"}

SPEC = """
name: rootless-bench
hosts:
  host:
    interfaces:
      up0: {veth: uplink:up1, addresses: [192.0.2.1/24]}
      br0: {bridge: {}, addresses: [10.88.0.1/16]}
      vb0: {veth: bridged:eth0, master: br0}
    routes: [{to: default, via: 192.0.2.254}]
  uplink:
    interfaces:
      up1: {}
  bridged:
    interfaces:
      eth0: {addresses: [10.88.0.2/16]}
    routes: [{to: default, via: 10.88.0.1}]
  slirp: {}
  pasta: {}
"""

SERVER = r"""
import socket, sys, threading
port = int(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", port))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", port)); t.listen(16)
def udp():
    while True:
        data, peer = u.recvfrom(2048); u.sendto(data, peer)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    mode = c.recv(1)
    if mode == b"E":
        while data := c.recv(2048):
            c.sendall(data)
    else:
        buf = bytearray(1 << 20); total = 0
        while n := c.recv_into(buf):
            total += n
        c.sendall(b"%d\n" % total)
    c.close()
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
while True:
    c, _ = t.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

CLIENT = r"""
import json, socket, sys, time
mode, addr, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
msg = b"x" * 64
def rr(sock, send, recv):
    out = []
    for _ in range(20):  # warm-up: ARP, slirp's and pasta's flow set-up
        send(msg); recv()
    for _ in range(n):
        t0 = time.perf_counter(); send(msg); recv(); out.append(time.perf_counter() - t0)
    return out
if mode == "udp_rr":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    s.connect((addr, port))
    times = rr(s, s.send, lambda: s.recv(2048))
    print(json.dumps({"times": times}))
elif mode == "tcp_rr":
    s = socket.create_connection((addr, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); s.sendall(b"E")
    def recv():
        got = 0
        while got < len(msg):
            got += len(s.recv(2048))
    times = rr(s, s.sendall, recv)
    print(json.dumps({"times": times}))
else:
    chunk = b"\0" * (1 << 20)
    t0 = time.perf_counter()
    s = socket.create_connection((addr, port), timeout=30); s.sendall(b"S")
    for _ in range(n):
        s.sendall(chunk)
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while not reply.endswith(b"\n"):  # pasta was seen to repeat this reply: one line only
        reply += s.recv(1)
    total = int(reply); elapsed = time.perf_counter() - t0
    assert total == n << 20, (total, n << 20)
    print(json.dumps({"bytes": total, "seconds": elapsed}))
"""


def start_engines(topo: Topology, private: str, paths: list[str]) -> None:
    """slirp4netns and pasta for their containers, waited for until the client's target
    answers (a connected UDP echo would do; one TCP round trip proves the route)."""
    if "slirp4netns" in paths:
        topo.spawn(
            "host",
            ["slirp4netns", "--configure", "--mtu=65520", "--api-socket",
             os.path.join(private, "slirp.sock"), "--netns-type=path", ns_path(topo, "slirp"),
             "tap0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    if "pasta" in paths:
        topo.spawn(
            "host",
            ["pasta", "-f", "--runas", "0", "--config-net", "-4", "-t", "none", "-u", "none",
             "-T", "none", "-U", "none", "--netns", ns_path(topo, "pasta")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip


def ns_path(topo: Topology, host: str) -> str:
    return f"/run/netns/{topo.namespace(host)}"


def client(topo: Topology, path: str, mode: str, n: int) -> dict[str, Any]:
    argv = [sys.executable, "-c", CLIENT, mode, TARGET[path], str(PORT), str(n)]
    done = topo.run(HOST_OF[path], argv, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{path} {mode}: {done.stderr.strip()[-400:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def wait_ready(topo: Topology, paths: list[str]) -> None:
    """Each path carries a TCP round trip before timing starts (the user-mode programs
    configure the container's interface after they start)."""
    for path in paths:
        for _ in range(100):
            if topo.run(HOST_OF[path], [sys.executable, "-c", CLIENT, "tcp_rr", TARGET[path],
                                         str(PORT), "1"]).returncode == 0:  # fmt: skip
                break
        else:
            raise RuntimeError(f"{path}: the host's listener is not reachable")


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def one_rep(topo: Topology, paths: list[str], n: int, mib: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for path in paths:
        figures: dict[str, float] = {}
        for mode in ("udp_rr", "tcp_rr"):
            times = client(topo, path, mode, n)["times"]
            figures[f"{mode}_median_us"] = statistics.median(times) * 1e6
            figures[f"{mode}_p99_us"] = p99(times) * 1e6
        bulk = client(topo, path, "tcp_bulk", mib)
        figures["tcp_bulk_MBps"] = bulk["bytes"] / bulk["seconds"] / 1e6
        out[path] = figures
    return out


def summarise(reps: list[dict[str, dict[str, float]]], paths: list[str]) -> dict[str, Any]:
    medians = {
        p: {k: round(statistics.median(r[p][k] for r in reps), 1) for k in reps[0][p]}
        for p in paths
    }
    ratio = {
        f"{p}_vs_bridge": {k: round(medians[p][k] / medians["bridge"][k], 2) for k in medians[p]}
        for p in paths
        if p != "bridge"
    }
    return {"medians": medians, "ratio": ratio}


def table(summary: dict[str, Any], paths: list[str]) -> str:
    keys = list(summary["medians"]["bridge"])
    lines = ["| measurement | " + " | ".join(paths) + " |", "|-|" + "-:|" * len(paths)]
    for key in keys:
        cells = []
        for p in paths:
            cell = f"{summary['medians'][p][key]:.1f}"
            if p != "bridge":
                cell += f" ({summary['ratio'][f'{p}_vs_bridge'][key]:.2f}x)"
            cells.append(cell)
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("-n", "--round-trips", type=int, default=2000)
    parser.add_argument("--mib", type=int, default=512, help="MiB sent per bulk transfer")
    args = parser.parse_args()
    if os.geteuid() != 0:
        _userns.enter()
    missing = [p for p in ("slirp4netns", "pasta") if shutil.which(p) is None]
    paths = [p for p in PATHS if p not in missing]
    with (
        tempfile.TemporaryDirectory(prefix="npbench-rootless-") as private,
        netprobe.build(netprobe.loads(SPEC)) as topo,
    ):
        listener = topo.spawn("host", [sys.executable, "-u", "-c", SERVER, str(PORT)],
                              stdout=subprocess.PIPE)  # fmt: skip
        assert listener.stdout is not None and listener.stdout.readline() == b"ready\n"
        start_engines(topo, private, paths)
        wait_ready(topo, paths)
        reps = []
        for rep in range(args.reps):
            order = paths[rep % len(paths) :] + paths[: rep % len(paths)]
            reps.append(one_rep(topo, order, args.round_trips, args.mib))
            print(f"rep {rep + 1}: " + json.dumps(reps[-1]), flush=True)
    summary = summarise(reps, paths)
    print(table(summary, paths))
    print(f"(1-minute load average at the end: {os.getloadavg()[0]:.2f})")
    line = {
        "bench": "rootless",
        "round_trips": args.round_trips,
        "bulk_bytes": args.mib << 20,
        "reps": args.reps,
        "missing": missing,
        **summary,
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
