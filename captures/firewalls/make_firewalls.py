#!/usr/bin/env python3
"""Regenerate the frontend rulesets in captures/firewalls/ with the real tools (needs root,
ufw and firewalld installed: `apt-get install --no-install-recommends ufw firewalld`).

    python3 captures/firewalls/make_firewalls.py [--out captures/firewalls/] [NAME...]

Each fixture is made in a throwaway world: `unshare --net --mount --pid --fork --mount-proc
--propagation private` gives it its own network namespace (with veth pairs eth0/eth1, the
LAN and the outside side of filter.yaml's fw), its own mount namespace (a tmpfs on /run and
/var/log; private copies of /etc/ufw, /etc/default/ufw and /etc/firewalld bind-mounted over
the originals) and its own PID namespace, so every process the tool starts (firewalld, its
dbus-daemon) dies with the fixture, and the interfaces with the network namespace, also on
error. The machine's own /etc, processes and firewall are never touched.

The tool is run as a user would run it; what it left in the kernel is saved as the tools
print it: ufw as `iptables-save` and `ip6tables-save` (iptables-nft) plus `nft list ruleset`,
firewalld as `nft list ruleset`. Each file starts with a comment naming the commands and the
versions; nothing else is changed (iptables-restore and nft -f both skip # lines).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PRIVATE = Path("/run/fixture")  # on the namespace's own tmpfs
COPIED = ("/etc/ufw", "/etc/default/ufw", "/etc/firewalld")  # each replaced by a copy
EMPTIED = ("/run", "/var/log")  # each replaced by an empty tmpfs
DBUS_CONF = """\
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""  # no service directories: nothing (polkitd...) is activated; firewalld then checks uid 0


@dataclass(frozen=True)
class Fixture:
    name: str
    tool: str  # ufw | firewalld
    commands: tuple[str, ...]  # shell words, run in order in the fixture's namespaces
    about: str


FW = "firewall-cmd"
FIXTURES = (
    Fixture("ufw-ssh", "ufw", ("ufw default deny incoming", "ufw allow 22/tcp",
                               "ufw --force enable"), "ssh only"),
    Fixture("ufw-ssh-shadowed", "ufw", (
        "ufw default deny incoming", "ufw allow 22/tcp",
        "ufw insert 1 deny from 10.0.0.0/8 to any port 22 proto tcp", "ufw --force enable"),
        "sabotage: ssh only, but a deny from the LAN inserted above the allow"),
    Fixture("ufw-web", "ufw", ("ufw default deny incoming", "ufw allow 80/tcp",
                               "ufw allow 443/tcp", "ufw limit 22/tcp", "ufw --force enable"),
            "a web server, ssh rate-limited"),
    Fixture("ufw-postgres", "ufw", (
        "ufw default deny incoming", "ufw allow from 10.0.0.0/8 to any port 5432 proto tcp",
        "ufw deny 23/tcp", "ufw --force enable"), "postgres from a subnet, telnet denied"),
    Fixture("ufw-route", "ufw", (
        "ufw default deny incoming", "ufw default deny routed",
        "ufw route allow in on eth0 out on eth1 to any port 443 proto tcp",
        "ufw --force enable"), "https routed from the LAN (eth0) to the outside (eth1)"),
    Fixture("firewalld-zones", "firewalld", (
        f"{FW} --zone=trusted --change-interface=eth0",
        f"{FW} --zone=public --change-interface=eth1",
        f"{FW} --zone=public --add-service=http",
        f"{FW} --zone=public --add-rich-rule='rule family=ipv4 source "
        "address=198.51.100.0/24 port port=5432 protocol=tcp accept'",
        f"{FW} --zone=public --add-masquerade"),
        "LAN trusted, outside public with http, postgres from one subnet, masquerade"),
    Fixture("firewalld-wrong-interface", "firewalld", (
        f"{FW} --zone=trusted --change-interface=eth1",
        f"{FW} --zone=public --add-service=http",
        f"{FW} --zone=public --add-rich-rule='rule family=ipv4 source "
        "address=198.51.100.0/24 port port=5432 protocol=tcp accept'",
        f"{FW} --zone=public --add-masquerade"),
        "sabotage: trusted bound to eth1 (the outside) instead of eth0, which falls to "
        "the default zone (public)"),
)


def sh(argv: list[str] | str, **kw: object) -> str:
    """Run a command (a string: through the shell), fail loudly; its stdout."""
    done = subprocess.run(argv, shell=isinstance(argv, str), capture_output=True, text=True,
                          check=False, **kw)  # type: ignore[call-overload]
    if done.returncode != 0:
        sys.exit(f"{argv!r} failed ({done.returncode}): {done.stderr.strip()}")
    return str(done.stdout)


# -- inside the fixture's namespaces ---------------------------------------------------


def privatise() -> None:
    """Empty /run and /var/log; put private copies over the tools' configuration."""
    sh(["mount", "-t", "sysfs", "sysfs", "/sys"])  # this network namespace's devices
    for path in EMPTIED:
        sh(["mount", "-t", "tmpfs", "tmpfs", path])
    PRIVATE.mkdir()
    for path in COPIED:
        copy = PRIVATE / path.strip("/").replace("/", "-")
        sh(["cp", "-a", path, str(copy)])
        sh(["mount", "--bind", str(copy), path])


def interfaces() -> None:
    """lo up; eth0 (LAN) and eth1 (outside), each a veth whose peer stays here too. They
    stay down: the tools bind rules to them by name, and with no IPv6 neighbour discovery
    on them every counter in the saved rulesets is 0, so regenerating gives the same files."""
    sh(["ip", "link", "set", "lo", "up"])
    for dev in ("eth0", "eth1"):
        sh(["ip", "link", "add", dev, "type", "veth", "peer", "name", f"{dev}-peer"])


def start_firewalld() -> None:
    """A private system bus, then firewalld on it; returns once firewalld is running."""
    (PRIVATE / "dbus.conf").write_text(DBUS_CONF)
    Path("/run/dbus").mkdir()
    bus = subprocess.Popen(["dbus-daemon", f"--config-file={PRIVATE / 'dbus.conf'}",
                            "--nofork", "--nopidfile", "--nosyslog", "--print-address"],
                           stdout=subprocess.PIPE, text=True)
    assert bus.stdout is not None
    if not bus.stdout.readline():  # printed once it listens
        sys.exit("dbus-daemon did not start")
    log = open(PRIVATE / "firewalld.log", "w")  # noqa: SIM115 - lives as long as firewalld
    subprocess.Popen(["firewalld", "--nofork", "--nopid", "--log-target", "console"],
                     stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # firewall-cmd --state says "running" when ready
        state = subprocess.run(["firewall-cmd", "--state"], capture_output=True, text=True)
        if state.stdout.strip() == "running":
            return
        time.sleep(0.2)
    sys.exit("firewalld never came up:\n" + (PRIVATE / "firewalld.log").read_text())


def versions(tool: str) -> str:
    kernel = os.uname().release
    nft = sh(["nft", "--version"]).strip()
    if tool == "ufw":
        ufw = sh(["ufw", "version"]).splitlines()[0]
        return f"{ufw}, {sh(['iptables', '--version']).strip()}, {nft}, kernel {kernel}"
    return f"firewalld {sh(['firewall-cmd', '--version']).strip()}, {nft}, kernel {kernel}"


def inside(fixture: Fixture, out: Path) -> None:
    privatise()
    interfaces()
    if fixture.tool == "firewalld":
        start_firewalld()
    for command in fixture.commands:
        sh(command)
    header = [f"{fixture.name}: {fixture.about}",
              f"made by captures/firewalls/make_firewalls.py ({versions(fixture.tool)}):",
              *(f"  {c}" for c in fixture.commands)]
    saved = {"nft": ["nft", "list", "ruleset"]}
    if fixture.tool == "ufw":
        saved = {"iptables": ["iptables-save"], "ip6tables": ["ip6tables-save"], **saved}
    for ext, argv in saved.items():
        lines = [*header, f"then: {shlex.join(argv)} > {fixture.name}.{ext}"]
        text = "".join(f"# {line}\n" for line in lines) + sh(argv)
        (out / f"{fixture.name}.{ext}").write_text(text)
        print(f"  {fixture.name}.{ext}")


# -- outside: one set of namespaces per fixture ----------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    parser.add_argument("names", nargs="*", help="fixtures to make (default: all)")
    args = parser.parse_args(argv)
    by_name = {f.name: f for f in FIXTURES}
    if args.inside:
        inside(by_name[args.inside], args.out.resolve())
        return
    for tool in ("ufw", "firewalld", "firewall-cmd", "unshare", "dbus-daemon"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or list(by_name):
        print(f"{name}: {by_name[name].about}")
        isolated = ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc",
                    "--propagation", "private"]
        done = subprocess.run([*isolated, sys.executable, __file__, "--out",
                               str(args.out.resolve()), "--inside", name], check=False)
        if done.returncode != 0:
            sys.exit(f"{name}: not made")


if __name__ == "__main__":
    main()
