"""A new check in a few dozen lines: "every host answers ICMP echo from its neighbours".

Run it:      python examples/echo_check.py            (on examples/redblue.yaml)
In pytest:   CHECK.run("my-topology.yaml", hosts=["a:eth0", "b:eth0"]).assert_passed()
Register it for `netprobe check echo` from your own package's pyproject.toml:

    [project.entry-points."netprobe.checks"]
    echo = "my_package.echo_check:CHECK"
"""

from __future__ import annotations

from itertools import permutations

from netprobe.check import Check, Context
from netprobe.expect import Match, at
from netprobe.traffic import icmp_echo

# A reply swaps addresses, says "echo reply" and gets a new IP id; it keeps our nonce.
_NEW_FIELDS = ("ip.id", "ttl", "ip.chksum", "l4.chksum")


def body(ctx: Context, *, hosts: tuple[str, ...] = ("red:eth0", "blue:eth0"),
         addresses: tuple[str, ...] = ("10.0.0.1", "10.0.0.2")) -> None:
    ip = dict(zip(hosts, addresses, strict=True))
    for src, dst in permutations(hosts, 2):
        src_mac, dst_mac = ctx.topo.mac(*src.split(":")), ctx.topo.mac(*dst.split(":"))
        request = icmp_echo(src_mac, dst_mac, ip[src], ip[dst])
        reply = Match(_NEW_FIELDS, {"eth.src": dst_mac, "eth.dst": src_mac, "src": ip[dst],
                                    "dst": ip[src], "icmp.type": 0})
        outcome = ctx.expect(f"{dst} answers {src}", request, src, at(src), match=reply)
        if not outcome.passed:
            _diagnose(ctx, dst)


def _diagnose(ctx: Context, port: str) -> None:
    host = port.split(":")[0]
    if ctx.sysctl(host, "net.ipv4.icmp_echo_ignore_all") == "1":
        ctx.diagnose(f"{host} ignores echo requests (net.ipv4.icmp_echo_ignore_all = 1)")
    else:
        ctx.diagnose(f"{host} did not answer: see the evidence of each step")


CHECK = Check(
    name="echo",
    summary="every host answers ICMP echo requests from its neighbours",
    body=body,
    reference="redblue.yaml",
    requires=("veth", "AF_PACKET"),
    params={"hosts": "ports of the hosts, HOST:IFNAME", "addresses": "their IPv4 addresses"},
)

if __name__ == "__main__":
    result = CHECK.run()
    print(result.evidence())
    raise SystemExit(0 if result.passed else 1)
