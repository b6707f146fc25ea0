"""`netprobe topo …`: labs kept up, shown, taken down, and networks discovered."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from ..errors import SpecError
from ._app import _console, _errors, cli

if TYPE_CHECKING:
    pass


@cli.group()
def topo() -> None:
    """Bring topologies up and down, and look inside them."""


@topo.command("up")
@click.argument("file", type=click.Path(dir_okay=False))
def topo_up(file: str) -> None:
    """Build FILE and leave it up, under the topology's name."""
    with _errors():
        from ..report._text import topo_up_summary
        from ..topology import build, load

        spec = load(file)
        topology = build(spec, persistent=True)
        topology.keep()
        click.echo(topo_up_summary(spec, topology.record))


@topo.command("down")
@click.argument("name")
def topo_down(name: str) -> None:
    """Remove the topology NAME left up by `topo up`."""
    with _errors():
        from ..report._text import reverted_lines
        from ..topology import down

        report = down(name)
        click.echo(f"removed {name}: {len(report.removed_namespaces)} namespaces")
        for line in reverted_lines(report):
            click.echo(line)


@topo.command("show")
@click.argument("name")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "mermaid", "dot", "svg"]),
    default="text",
    show_default=True,
    help="text: links, addresses and routes as the kernel has them; the others "
    "draw the topology (NAME may also be a topology file).",
)
@click.option("--json", "as_json", is_flag=True,
              help="Print hosts, namespaces to enter, links, addresses, routes as JSON.")
def topo_show(name: str, fmt: str, as_json: bool) -> None:
    """Print the links, addresses and routes of each host of topology NAME (or of the
    adopted hosts of a topology file, such as `topo discover` writes), or draw it."""
    with _errors():
        if fmt != "text":
            from ..topology import load
            from ..topology._kernel.inspect import recorded_spec
            from ..topology._model import picture

            spec = load(name) if os.path.isfile(name) else recorded_spec(name)
            click.echo(getattr(picture, fmt)(spec), nl=False)
            return
        from ..report._text import host_view_text
        from ..topology._kernel.inspect import describe_spec, describe_topology

        if os.path.isfile(name):  # a topology file: the hosts that exist without it
            from ..topology import load

            views = describe_spec(load(name))
        else:
            views = describe_topology(name)
        if as_json:
            _show_json(name, views)
            return
        for view in views:
            click.echo(host_view_text(view))


def _show_json(name: str, views: list[Any]) -> None:
    from ..errors import NetprobeError
    from ..report._views import topology_document
    from ..topology import load
    from ..topology._kernel.inspect import recorded_spec
    from ._probe import _write_json

    try:  # the spec names the links between hosts; a run id or a lost file has none
        spec = load(name) if os.path.isfile(name) else recorded_spec(name)
    except NetprobeError:
        spec = None
    _write_json(topology_document(name, views, spec), "-")


@topo.command("discover")
@click.argument("names", nargs=-1)
@click.option("--pid", "pids", multiple=True, metavar="PID",
              help="Adopt the network namespace of process PID (a container's). Repeatable.")
@click.option("--all", "every", is_flag=True,
              help="Every named namespace, and every process's namespace that has no name.")
@click.option("--root", is_flag=True, help="Include the root namespace (read-only).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the topology YAML to this file instead of printing it.")
def topo_discover(
    names: tuple[str, ...], pids: tuple[str, ...], every: bool, root: bool, output: str | None
) -> None:
    """Print a topology that adopts the namespaces NAME... as they are (or those of
    --pid, or --all), with what each holds: links, veth peers, bridges and ports,
    addresses, routes, rulesets. Discovery changes nothing; building its result
    creates nothing."""
    with _errors():
        from ..topology import discover
        from ..topology._model.dump import dump

        bad = [p for p in pids if not p.isdigit() or int(p) < 1]
        if bad:
            raise SpecError(f"--pid takes a process id, not {bad[0]!r}")
        if not (names or pids or every or root):
            raise SpecError("say what to discover: NAME..., --pid PID, --all or --root")
        spec = discover(names, [int(p) for p in pids], all=every, root=root)
        text = _DISCOVERED + dump(spec)
        if output is None:
            click.echo(text, nl=False)
            return
        with open(output, "w") as out:
            out.write(text)
        click.echo(f"wrote {output}: {len(spec.hosts)} host(s)", err=True)


_DISCOVERED = (
    "# Discovered by `netprobe topo discover`: every interface exists already (no type,\n"
    "# an `observed:` block), so building this creates and changes nothing.\n"
)


@topo.command("from-config")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the topology YAML to this file (its ruleset files beside it) "
              "instead of printing it; needed when the lab loads ruleset files.")
@click.option("--name", "box", default="box", show_default=True,
              help="The name of the box's host in the topology.")
@click.option("--force", is_flag=True, help="Overwrite the spec and ruleset files if they exist.")
def topo_from_config(files: tuple[str, ...], output: str | None, box: str, force: bool) -> None:
    """Write the topology of the box that the configuration FILE... brings up at boot
    (/etc/network/interfaces, sources followed; NetworkManager keyfiles; sysctl files):
    its NICs as veths to a stand-in "lan" host holding their gateways, its bridges, bonds,
    VLANs, addresses, routes, sysctls and the firewall lines its hooks run; a guest on each
    bridge with no NIC. What it cannot do is listed, in the file and on stderr. Checks
    then run on the box after a reboot, without one. Existing files are left alone
    unless --force."""
    with _errors():
        from ..topology._model.config import read_config
        from ..topology._model.fromconfig import from_config, lab_yaml

        config = read_config(files)
        stem = os.path.splitext(os.path.basename(output))[0] if output else box
        lab = from_config(config, box=box, name=stem)
        text = lab_yaml(lab)
        folder = os.path.dirname(output) if output else ""  # the spec names them relative
        rulesets = {os.path.join(folder, name): rules for name, rules in lab.rulesets.items()}
        _check_writable(output, list(rulesets), force)
        for path, rules in rulesets.items():
            with open(path, "w") as out:
                out.write(rules)
            click.echo(f"wrote {path}", err=True)
        for note in lab.unapplied:
            click.echo(f"not applied: {note}", err=True)
        if output is None:
            click.echo(text, nl=False)
            return
        with open(output, "w") as out:
            out.write(text)
        click.echo(f"wrote {output}: {len(lab.spec.hosts)} host(s)", err=True)


def _check_writable(output: str | None, rulesets: list[str], force: bool) -> None:
    """Refuse, before anything is written, a lab whose ruleset files would land in the
    current directory unasked (no -o), or files that exist already (without --force)."""
    if output is None and rulesets:
        raise SpecError(f"the lab loads ruleset files ({', '.join(rulesets)}): give -o "
                        "FILE.yaml to write them beside the spec")
    existing = [p for p in ([output] if output else []) + rulesets if os.path.exists(p)]
    if existing and not force:
        raise SpecError(f"{', '.join(existing)} exist(s) already: give --force to overwrite")


@topo.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON (docs/json.md).")
def topo_list(as_json: bool) -> None:
    """List the topologies left up, and runs in progress."""
    with _errors():
        from ..report._text import runs_table
        from ..topology._kernel.owner import read_records

        if as_json:
            from ..report._views import runs_document
            from ._probe import _write_json

            _write_json(runs_document(read_records()), "-")
            return
        _console().print(runs_table(read_records()))
