"""The DHCP half of `repro.sh`: each dnsmasq, then each udhcpc, as netprobe ran them.

Their files (configuration, leases, pid files, logs, the udhcpc script) go in a private
directory the script makes, $D/HOST/, removed by its cleanup with the processes it
started ($PIDS). A server counts as up once its namespace holds as many sockets on UDP
port 67 as servers were started in it; a client once its script has written its lease.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator

from ..topology._kernel import dhcp
from ..topology._model.spec import Host, Spec

SERVER_WAIT = 10  # seconds for a dnsmasq to bind its DHCP socket (netprobe waits 5)
LEASE_WAIT = 20  # seconds for a client's lease
_DIR = "@NETPROBE_DIR@"  # stands for "$D/HOST" in a configuration until it is quoted

# Shell functions the DHCP lines call; each says why on stderr and exits 2 (the failure
# was not reproduced: the topology could not be rebuilt as netprobe had it).
_FUNCTIONS = r"""dhcp_sockets() {  # sockets on UDP port 67 (0x0043) in namespace $P-$1
    ip netns exec "$P-$1" awk 'NR > 1 && $2 ~ /:0043$/ { n++ } END { print n + 0 }' \
        /proc/net/udp
}
dhcp_wait() {  # what ("server"|"lease"), host, count or lease file, pid, log, name
    end=$(( $(date +%s) + $( [ "$1" = server ] && echo {server} || echo {lease} ) ))
    while :; do
        if [ "$1" = server ]; then [ "$(dhcp_sockets "$2")" -ge "$3" ] && return 0
        else [ -s "$3" ] && return 0; fi
        if ! kill -0 "$4" 2>/dev/null || [ "$(date +%s)" -ge "$end" ]; then
            if [ "$1" = server ]; then why="bound no DHCP socket"; else why="got no lease"; fi
            echo "repro.sh: $6 $why (netprobe's run had it); its log:" >&2
            tail -n 6 "$5" >&2 || true
            exit 2
        fi
        sleep 0.02
    done
}
"""


def tools(spec: Spec) -> list[tuple[str, str]]:
    """The programs the spec's DHCP needs, each with how to install it."""
    out = []
    if any(h.dhcp_servers for h in spec.hosts):
        out.append(("dnsmasq", dhcp.DNSMASQ_REMEDY))
    if any(dhcp.clients(h) for h in spec.hosts):
        out.append(("busybox", dhcp.BUSYBOX_REMEDY))
    return out


def check_lines(spec: Spec) -> Iterator[str]:
    """Before anything is made: each program the DHCP lines need is there."""
    for name, remedy in tools(spec):
        yield (
            f"command -v {name} >/dev/null || {{ echo 'repro.sh: the topology runs DHCP, "
            f"which needs {name} ({remedy})' >&2; exit 2; }}"
        )


def start_lines(spec: Spec) -> Iterator[str]:
    """Start every server and wait until each is bound, then every client and its lease."""
    if not dhcp.needs_dhcp(spec):
        return
    yield "# -- DHCP, as netprobe ran it: each dnsmasq, then each udhcpc (files in $D)"
    yield _FUNCTIONS.replace("{server}", str(SERVER_WAIT)).replace("{lease}", str(LEASE_WAIT))
    yield 'D=$(mktemp -d "${TMPDIR:-/tmp}/netprobe-repro.XXXXXX")'
    for host in spec.hosts:
        if host.dhcp_servers or dhcp.clients(host):
            yield f"mkdir -m 700 {_path(host, '')}"
        yield from _servers(host)
    for host in spec.hosts:
        yield from _clients(host)


def _path(host: Host, name: str) -> str:
    """$D/HOST/NAME as a shell word."""
    return '"$D"/' + shlex.quote(f"{host.name}/{name}".rstrip("/"))


def _servers(host: Host) -> Iterator[str]:
    for count, server in enumerate(host.dhcp_servers, 1):
        base = f"dnsmasq-{server.interface}"
        conf = dhcp.dnsmasq_config(server, server.interface, _DIR)
        quoted = conf.replace("\\", "\\\\").replace("$", "\\$").replace("`", "\\`")
        yield f"cat > {_path(host, base + '.conf')} <<NETPROBE_DNSMASQ"
        yield quoted.replace(_DIR, f"$D/{host.name}").rstrip("\n")
        yield "NETPROBE_DNSMASQ"
        log = _path(host, base + ".log")
        yield (
            f'ip netns exec "$P-{host.name}" dnsmasq --conf-file={_path(host, base + ".conf")}'
            f" --keep-in-foreground >>{log} 2>&1 &"
        )
        name = shlex.quote(f"dnsmasq serving {host.name}:{server.interface}")
        yield 'PIDS="$PIDS $!"'
        yield f'dhcp_wait server {shlex.quote(host.name)} {count} "$!" {log} {name}'


def _clients(host: Host) -> Iterator[str]:
    ifaces = dhcp.clients(host)
    if not ifaces:
        return
    script = _path(host, "udhcpc.sh")
    yield f"cat > {script} <<'NETPROBE_UDHCPC'"
    yield dhcp.UDHCPC_SCRIPT.rstrip("\n")
    yield "NETPROBE_UDHCPC"
    yield f"chmod 700 {script}"
    for iface in ifaces:
        base = f"udhcpc-{iface.name}"
        argv = dhcp.client_argv(iface.name, _DIR, _DIR + ".pid", host.name)
        words = " ".join(shlex.quote(w) for w in argv)
        words = words.replace(_DIR + ".pid", _path(host, base + ".pid")).replace(_DIR, script)
        log = _path(host, base + ".log")
        yield f'ip netns exec "$P-{host.name}" {words} >>{log} 2>&1 &'
        yield 'PIDS="$PIDS $!"'
        name = shlex.quote(f"udhcpc on {host.name}:{iface.name}")
        lease = _path(host, base + ".lease")
        yield f'dhcp_wait lease {shlex.quote(host.name)} {lease} "$!" {log} {name}'
