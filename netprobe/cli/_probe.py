"""`netprobe probe FROM TO [PROTO[/PORT]]`: can FROM reach TO, and where does it die."""

from __future__ import annotations

import json
import sys

import click

from ..errors import SpecError
from ._app import _console, _errors, cli

USAGE = "FROM TO [PROTO[/PORT]], or --pid PID TO [PROTO[/PORT]]"


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("words", nargs=-1, metavar="FROM TO [PROTO[/PORT]]")
@click.option("--pid", type=int, help="Probe from this process's network namespace.")
@click.option("-t", "--topology", type=click.Path(dir_okay=False),
              help="FROM is a host of this topology file (built for the probe).")
@click.option("--json", "json_path", metavar="FILE", help="Write the result as JSON ('-': stdout).")
@click.option("--bundle", "bundle_dir", metavar="DIR",
              help="Leave a bug-report bundle here when the probe fails.")
@click.option("--picture", "picture_path", metavar="FILE",
              help="Draw the topology with the probe's path on it (.svg, .mmd, .md, .dot).")
@click.option("--no-touch", is_flag=True,
              help="Change nothing to explain a failure (no temporary nft trace table).")
@click.option("--any-destination", is_flag=True,
              help="Send even to an address no namespace on the way holds.")
@click.option("--size", type=click.IntRange(32, 65000),
              help="Bytes an icmp or udp probe carries, sent with DF set (MTU questions).")
@click.option("--timeout", type=click.FloatRange(0.05, 60), default=1.0, show_default=True,
              help="Seconds to wait when no evidence decides sooner.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; the exit code says it all.")
def probe(
    words: tuple[str, ...],
    pid: int | None,
    topology: str | None,
    json_path: str | None,
    bundle_dir: str | None,
    picture_path: str | None,
    no_touch: bool,
    any_destination: bool,
    size: int | None,
    timeout: float,
    quiet: bool,
) -> None:
    """Send a probe from FROM's own stack (a real socket in its namespace) to TO, follow
    it through every namespace on the way, and say how it ended: delivered and answered,
    refused, dropped (where, by what), no route, no neighbour, looped; a failure comes
    with its ranked causes. FROM is a namespace (`ip netns`), or a host of --topology;
    without a topology the namespaces reachable from FROM are discovered and adopted,
    changing nothing. Exit 0 when it got through, 1 when not, 2 on bad input.

    \b
      netprobe probe ux_a 10.66.0.2 tcp/22
      netprobe probe --pid 4242 172.17.0.1 icmp
      netprobe probe --topology site.yaml vm1 203.0.113.1 udp/53
      netprobe probe --topology site.yaml vm1 203.0.113.1 --picture path.svg
    """
    with _errors():
        from ..diagnose import parse_service
        from ..diagnose import probe as run_probe
        from ..report._output import ensure_writable_dir, ensure_writable_file

        source, destination, service = _words(words, pid)
        parse_service(service)  # bad input before anything is read or built
        if json_path and json_path != "-":
            ensure_writable_file(json_path, "--json")
        if bundle_dir:
            ensure_writable_dir(bundle_dir, "--bundle")
        if picture_path:
            ensure_writable_file(picture_path, "--picture")
        found = run_probe(
            source, destination, service, topology=topology, pid=pid,
            any_destination=any_destination, touch=not no_touch, timeout=timeout,
            size=size, bundle_dir=bundle_dir, picture=picture_path,
        )
        if not quiet and json_path != "-":
            _console().print(found.render(), markup=False, soft_wrap=True)
        if json_path:
            _write_json(found.to_dict(), json_path)
        sys.exit(0 if found.ok else 1)


def _words(words: tuple[str, ...], pid: int | None) -> tuple[str | None, str, str]:
    """(FROM, TO, SERVICE) from the command line's words."""
    given = list(words)
    if pid is None and len(given) in (2, 3):
        return given[0], given[1], given[2] if len(given) == 3 else "icmp"
    if pid is not None and len(given) in (1, 2):
        return None, given[0], given[1] if len(given) == 2 else "icmp"
    raise SpecError(f"usage: netprobe probe {USAGE}")


def _write_json(document: dict[str, object], path: str) -> None:
    text = json.dumps(document, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:  # the result is shown already; the file is said to be missing
        raise SpecError(f"--json {path}: {exc.strerror}") from None
