"""`netprobe drift FILE…`: what a reboot would change, the configuration against the kernel."""

from __future__ import annotations

import sys

import click

from ._app import _console, _errors, cli
from ._probe import _write_json


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("files", nargs=-1, required=True, metavar="FILE…")
@click.option("--netns", "netns_name", metavar="NAME",
              help="Compare this network namespace (`ip netns`), not the machine's own.")
@click.option("--pid", type=int, help="Compare this process's network namespace.")
@click.option("--json", "json_path", metavar="FILE",
              help="Write the report as JSON ('-': stdout).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; the exit code says it all.")
def drift(files: tuple[str, ...], netns_name: str | None, pid: int | None,
          json_path: str | None, quiet: bool) -> None:
    """Compare the persistent configuration FILE… (/etc/network/interfaces and what it
    sources, NetworkManager keyfiles or their directory, sysctl files) with the live state
    of the machine's own network namespace (or --netns, --pid), and list what a reboot
    would change: addresses, bridge ports, interfaces up or down, routes, forwarding
    sysctls and MTUs set at runtime or configured and not there, each with its FILE:LINE.
    Reads only; changes nothing. Exit 0 when nothing drifted, 1 when something did, 2 on
    bad input.

    \b
      netprobe drift /etc/network/interfaces /etc/sysctl.conf /etc/sysctl.d
      netprobe drift --netns lab interfaces --json -
    """
    with _errors():
        from ..diagnose import read_drift
        from ..errors import SpecError
        from ..report._output import ensure_writable_file

        if netns_name is not None and pid is not None:
            raise SpecError("give --netns NAME or --pid PID, not both")
        if json_path and json_path != "-":
            ensure_writable_file(json_path, "--json")
        report = read_drift(files, netns=netns_name, pid=pid)
        if not quiet and json_path != "-":
            _console().print(report.render(), markup=False, soft_wrap=True)
        if json_path:
            _write_json(report.to_dict(), json_path)
        sys.exit(1 if report.drifted else 0)
