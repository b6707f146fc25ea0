"""`repro.sh` of a probe bundle: rebuild the network and send the same probe, without
netprobe.

The shell half builds the topology as a check bundle's repro.sh does (_repro.py). The
probe then leaves the sender's namespace from plain tools: `ping` for icmp (`-s SIZE -M
do` for a sized one), and for tcp and udp a few lines of python3 run with `-S` and only
the socket module (any python3 does: no scapy, no site packages). Where a service
listened on the probed port when the bundle was written, a stand-in (accept and close;
for udp, echo each datagram) listens there. The script prints the ending it saw
(answered, refused, unreachable, not sent, timed out) beside the recorded one, and exits
1 when the probe still does not get through, 0 when it does, 2 when it cannot run.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from ..topology._model.spec import Spec
from ._repro import Neighbours, build_lines

# The recorded ending → what plain tools may see of it.
SEEN_AS: dict[str, tuple[str, ...]] = {
    "DELIVERED_ANSWERED": ("answered",),
    "DELIVERED": ("timed out",),
    "REFUSED": ("refused", "unreachable"),
    "DROPPED": ("timed out", "unreachable", "not sent"),
    "NO_ROUTE": ("unreachable", "not sent"),
    "NO_NEIGHBOUR": ("unreachable", "timed out"),
    "LOOPED": ("unreachable", "timed out"),
}

# argv: tcp|udp DST PORT WAIT [SIZE]; prints "ENDING: detail".
PROBE = """\
import errno, socket, sys
proto, dst, port, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
size = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] else None
family = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(wait)
if size is not None:  # DF set, no fragments: IP(V6)_MTU_DISCOVER = IP_PMTUDISC_DO
    s.setsockopt(*((41, 23, 2) if family == socket.AF_INET6 else (0, 10, 2)))
try:
    s.connect((dst, port))
    if proto == "udp":
        s.send(b"netprobe repro".ljust(size or 14, b"."))
        print("answered: %d bytes back from %s.%d" % (len(s.recv(65535)), dst, port))
    else:
        print("answered: connected to %s.%d from %s.%d" % ((dst, port) + s.getsockname()[:2]))
except socket.timeout:
    print("timed out: nothing came back within %s s" % wait)
except OSError as exc:
    word = {errno.ECONNREFUSED: "refused", errno.EPERM: "not sent",
            errno.EACCES: "not sent"}.get(exc.errno, "unreachable")
    print("%s: %s (%s)" % (word, exc.strerror, errno.errorcode.get(exc.errno, exc.errno)))
"""

# argv: tcp|udp PORT ADDRESS-FAMILY(4|6) [stay]; binds, says so, serves. Without `stay` it
# forks once bound and prints the server's pid (so the shell waits on evidence, not time).
LISTENER = """\
import os, socket, sys
proto, port, six = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "6"
s = socket.socket(socket.AF_INET6 if six else socket.AF_INET,
                  socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::" if six else "0.0.0.0", port))
if proto == "tcp":
    s.listen(64)
if len(sys.argv) > 4:
    print("ready", flush=True)
else:
    pid = os.fork()
    if pid:
        print(pid)
        sys.exit(0)
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
while True:
    if proto == "tcp":
        s.accept()[0].close()
    else:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)
"""

_HEADER = """#!/bin/sh
# Reproduces `netprobe probe {sender} {target}` without netprobe.
# Rebuilds the network in fresh namespaces, sends the same probe from {sender}'s own stack
# with plain tools and prints how it ended. Needs root, iproute2, {tools}.
# Touches nothing outside the namespaces it makes, and removes them when it ends.
# Exit 1: the probe still does not get through; 0: it does; 2: this script cannot run.
# Run: sudo sh repro.sh   (sudo PYTHON=/path/to/python3 sh repro.sh for another python3)
set -eu
[ "$(id -u)" -eq 0 ] || {{ echo "repro.sh: run as root" >&2; exit 2; }}
"""

_PICK_PYTHON = """\
# Any python3 that runs with -S (no site packages) and has the socket module: $PYTHON,
# each python3 on PATH, then /usr/bin/python3.
works() {{ [ -x "$1" ] && "$1" -S -c 'import socket' >/dev/null 2>&1; }}
pick_python() {{
    if [ -n "${{PYTHON:-}}" ] && works "$PYTHON"; then echo "$PYTHON"; return 0; fi
    saved_ifs=$IFS; IFS=:
    for dir in $PATH; do
        IFS=$saved_ifs
        works "${{dir:-.}}/python3" && {{ echo "${{dir:-.}}/python3"; return 0; }}
    done
    IFS=$saved_ifs
    works /usr/bin/python3 && {{ echo /usr/bin/python3; return 0; }}
    return 1
}}
PY=$(pick_python) || {{ echo "repro.sh: no working python3 (tried \\$PYTHON, PATH," \\
    "/usr/bin/python3)" >&2; exit 2; }}
"""

_SETUP = """\
export P="repro$$"
HOSTS={hosts}
LISTENER_PID=
cleanup() {{
    [ -z "$LISTENER_PID" ] || kill "$LISTENER_PID" 2>/dev/null || true
    for h in $HOSTS; do ip netns del "$P-$h" 2>/dev/null || true; done
}}
trap cleanup EXIT
trap 'exit 130' INT TERM
"""

_CLASSIFY_PING = """\
if [ "$rc" -eq 0 ]; then seen=answered
elif printf '%s' "$out" | grep -qiE 'port unreachable|prohibited|filtered'; then seen=refused
elif printf '%s' "$out" | grep -qiE 'not permitted|permission denied'; then seen="not sent"
elif printf '%s' "$out" | grep -qiE 'unreachable|frag needed|too long|time.* exceeded'; then
    seen=unreachable
else seen="timed out"; fi
"""

_VERDICT = """\
echo "netprobe recorded: {recorded}"
echo "seen now: $seen"
case "|{expected}|" in
    *"|$seen|"*) echo "→ the same ending as recorded" ;;
    *) echo "→ differs from the recording (which plain tools would see as: {expected_words})" ;;
esac
if [ "$seen" = answered ]; then
    echo "the probe gets through: the failure does not recur"; exit 0
fi
echo "the probe does not get through: the failure recurs"
exit 1
"""


def probe_repro_script(
    probe: dict[str, Any],
    recorded: dict[str, Any],
    spec: Spec,
    rulesets: dict[str, str],
    macs: dict[tuple[str, str], str],
    neighbours: Neighbours,
    listener: dict[str, Any] | None,
) -> str:
    """The script. `probe`: what was probed (from, to, proto, port, size, timeout);
    `recorded`: the probe's result as JSON; `listener`: host, proto, port of a service that
    listened on the probed port when the bundle was written (a stand-in takes its place)."""
    sender, proto = probe["from"], probe["proto"]
    needs_python = proto != "icmp" or listener is not None
    tools = ["ping" if proto == "icmp" else "", "python3 (any: -S, socket only)" * needs_python]
    target = f"{probe['to']} {proto}" + (f"/{probe['port']}" if probe.get("port") else "")
    lines = [
        _HEADER.format(
            sender=sender, target=target, tools=", ".join(t for t in tools if t) or "nothing else"
        )
    ]
    if proto == "icmp":
        lines.append("command -v ping >/dev/null || { echo 'repro.sh: no ping' >&2; exit 2; }")
    if needs_python:
        lines.append(_PICK_PYTHON.format())
    lines.append(_SETUP.format(hosts=shlex.quote(" ".join(h.name for h in spec.hosts))))
    lines += list(build_lines(spec, rulesets, macs, neighbours))
    if listener is not None:
        lines += _listener_lines(listener, probe["to"])
    lines += _send_lines(probe)
    ending = str(recorded.get("ending"))
    expected = SEEN_AS.get(ending, ("answered",))
    where = f" at {recorded['where']}" if recorded.get("where") else ""
    text = f"{recorded.get('ending_text', ending)}{where} ({recorded.get('why', '')})"
    lines.append(
        _VERDICT.format(
            recorded=_sh_text(text),
            expected="|".join(expected),
            expected_words=" or ".join(expected),
        )
    )
    return "\n".join(lines) + "\n"


def _sh_text(text: str) -> str:
    """Text safe inside the script's double quotes."""
    return "".join(c for c in text if c not in '"$`\\\n')


def _listener_lines(listener: dict[str, Any], dst: str) -> list[str]:
    six = "6" if ":" in dst else "4"
    host, proto, port = listener["host"], listener["proto"], int(listener["port"])
    return [
        f"# -- a stand-in for the service that listened on {proto}/{port} in {host}",
        "LISTENER=$(cat <<'NETPROBE_LISTENER'",
        LISTENER.rstrip("\n"),
        "NETPROBE_LISTENER",
        ")",
        f'LISTENER_PID=$(ip netns exec "$P-{host}" "$PY" -S -c "$LISTENER" {proto} {port} {six})'
        ' || { echo "repro.sh: the stand-in listener did not start" >&2; exit 2; }',
    ]


def _send_lines(probe: dict[str, Any]) -> list[str]:
    sender, proto, dst = probe["from"], probe["proto"], probe["to"]
    size = probe.get("size")
    wait = max(2, math.ceil(float(probe.get("timeout") or 1.0)) + 1)  # a loaded machine
    lines = [f"echo 'sending {proto} from {sender} to {dst} (waiting at most {wait} s):'"]
    if proto == "icmp":
        sized = f" -s {int(size)} -M do" if size else ""
        ping = f'ip netns exec "$P-{sender}" ping -n -c 1 -W {wait}{sized} {shlex.quote(dst)}'
        lines += [
            f"out=$({ping} 2>&1) && rc=0 || rc=$?",
            "printf '%s\\n' \"$out\" | sed 's/^/  /'",
            _CLASSIFY_PING.rstrip("\n"),
        ]
        return lines
    args = f"{proto} {shlex.quote(dst)} {int(probe['port'])} {wait} {int(size) if size else ''}"
    lines += [
        "PROBE=$(cat <<'NETPROBE_PROBE'",
        PROBE.rstrip("\n"),
        "NETPROBE_PROBE",
        ")",
        f'out=$(ip netns exec "$P-{sender}" "$PY" -S -c "$PROBE" {args.rstrip()} 2>&1) || true',
        "printf '%s\\n' \"$out\" | sed 's/^/  /'",
        "seen=$(printf '%s' \"$out\" | sed -n 's/^\\(answered\\|refused\\|unreachable\\|not sent"
        "\\|timed out\\): .*/\\1/p' | head -n 1)",
        '[ -n "$seen" ] || { echo "repro.sh: the probe could not run" >&2; exit 2; }',
    ]
    return lines
