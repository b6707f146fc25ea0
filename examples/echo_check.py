"""A new check in a few dozen lines: "every host answers ICMP echo from its neighbours".

Run it:      python examples/echo_check.py            (on examples/redblue.yaml)
In pytest:   CHECK.run("my-topology.yaml", hosts=["a:eth0", "b:eth0"]).assert_passed()
Register it for `netprobe check echo` from your own package's pyproject.toml:

    [project.entry-points."netprobe.checks"]
    echo = "my_package.echo_check:CHECK"
"""

from __future__ import annotations

from itertools import permutations

from netprobe.check import Check, Context, Port, echo_and_reply, parse_ports
from netprobe.expect import at


def body(ctx: Context, *, hosts: tuple[str, ...] = ("red:eth0", "blue:eth0"),
         addresses: tuple[str, ...] = ("10.0.0.1", "10.0.0.2")) -> None:
    ip = dict(zip(parse_ports(ctx.topo, hosts), addresses, strict=True))
    for src, dst in permutations(ip, 2):
        # the request, and its reply: addresses swapped, "echo reply", our nonce kept
        request, reply = echo_and_reply(ctx.topo.mac(src), ctx.topo.mac(dst), ip[src], ip[dst])
        outcome = ctx.expect(f"{dst} answers {src}", request, src, at(src), match=reply)
        if not outcome.passed:
            _diagnose(ctx, dst)


def _diagnose(ctx: Context, port: Port) -> None:
    host = port.host
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
