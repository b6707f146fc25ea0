"""The `netprobe` command. Thin: it parses, calls the library, and renders.

Exit codes: 0 success, 1 a check failed or was inconclusive, 2 bad input or environment.
A NetprobeError becomes one readable message; a bug in netprobe keeps its traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from ._version import __version__
from .errors import NetprobeError, SpecError

if TYPE_CHECKING:
    from .topology import Spec

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])
EXIT_BAD_INPUT = 2


@contextmanager
def _errors() -> Iterator[None]:
    """NetprobeError → one message on stderr and exit 2; Ctrl-C → exit 130."""
    try:
        yield
    except NetprobeError as exc:
        click.echo(f"netprobe: error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        click.echo("netprobe: interrupted", err=True)
        sys.exit(130)


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="netprobe")
def cli() -> None:
    """Prove what a Linux virtual network's data path does, with packet evidence."""


@cli.command("list")
@click.argument("names", nargs=-1)
def list_checks(names: tuple[str, ...]) -> None:
    """List the checks: name, what it proves, what it needs and whether this machine has it.

    With NAMES: those checks in full, with their parameters (hosts and ports to use)."""
    with _errors():
        from .check import load_check, registered
        from .report._text import check_details, checks_table

        if not names:
            _console().print(checks_table(registered()))
            return
        for name in names:
            click.echo(check_details(load_check(name)))


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("names", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option(
    "--topology",
    "topology",
    type=click.Path(dir_okay=False, exists=True),
    help="Run on this topology file instead of the check's reference topology.",
)
@click.option(
    "--ruleset",
    type=click.Path(dir_okay=False, exists=True),
    help="Load this nft or iptables-restore file into the checked host (checks that take "
    "a ruleset: filter).",
)
@click.option(
    "--policy",
    type=click.Path(dir_okay=False, exists=True),
    help="The policy file to hold the host to (checks that take one: filter, exposure).",
)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A check parameter (hosts and ports to use); repeatable.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    help="Also write the results as JSON to this file.",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(dir_okay=False),
    help="Also write the results as JUnit XML to this file.",
)
@click.option(
    "--bundle",
    "bundle_dir",
    type=click.Path(file_okay=False),
    default="netprobe-reports",
    show_default=True,
    help="Where a failing or inconclusive check writes its bug-report bundle.",
)
@click.option("--no-bundle", is_flag=True, help="Write no bug-report bundle.")
@click.option(
    "--kernel",
    metavar="PATH|auto",
    help="Run the checks in ONE virtual machine booted from this kernel image (auto: the "
    "newest Debian kernel in /boot), for what this machine's kernel lacks (VLANs, bonds).",
)
@click.option("--archive", is_flag=True, help="Also pack each bundle as a .tar.gz.")
@click.option("-v", "--verbose", is_flag=True, help="Show the evidence of passing checks too.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; the exit code says it all.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="Checks run at once (each in a process of its own, on its own topology).",
)
def check(
    names: tuple[str, ...],
    topology: str | None,
    ruleset: str | None,
    policy: str | None,
    params: tuple[str, ...],
    json_path: str | None,
    junit_path: str | None,
    bundle_dir: str,
    no_bundle: bool,
    kernel: str | None,
    archive: bool,
    verbose: bool,
    quiet: bool,
    jobs: int,
) -> None:
    """Run checks by NAME (or `all`) and report PASS/FAIL/SKIP/INCONCLUSIVE/ERROR.

    Each check's own parameters (the hosts and ports it uses) are options too:
    `netprobe check nat --inside vm7:eth0 --public-ip 198.51.100.7`; `netprobe list NAME`
    shows them. A check that fails or is inconclusive leaves a bug-report bundle (see
    `replay`)."""
    with _errors():
        from .check import expand_names, registered
        from .check._suite import run_checks
        from .report._output import write_results

        names, extra = _split_check_options(names)
        chosen = list(registered()) if names == ("all",) else expand_names(names)
        kwargs: dict[str, Any] = {**_parse_params(params), **extra}
        kwargs.update({k: v for k, v in (("ruleset", ruleset), ("policy", policy)) if v})
        asked = click.get_current_context().get_parameter_source("bundle_dir")
        # the default folder is only wanted if a check fails (unwritable, the result says so)
        explicit = None if no_bundle or asked is ParameterSource.DEFAULT else bundle_dir
        spec = _refuse_bad_input(
            chosen, kwargs, topology, kernel, (json_path, junit_path, explicit)
        )
        console = _console()
        where = f"in one VM booted from {kernel} " if kernel else ""
        with contextlib.ExitStack() as stack:
            status = (
                None
                if quiet
                else stack.enter_context(console.status(f"running {len(chosen)} check(s) {where}…"))
            )
            keep = None if no_bundle else bundle_dir
            if kernel:
                from .vm import run_named_checks

                results = run_named_checks(
                    chosen, topology, kernel=kernel, bundle_dir=keep, archive=archive, **kwargs
                )
            else:
                from .bundle import BundleRecorder

                progress = status.update if status is not None else None
                results = run_checks(
                    chosen,
                    spec,  # the file parsed once, up front
                    jobs=jobs,
                    recorder=BundleRecorder(keep, archive=archive) if keep else None,
                    progress=progress,
                    **kwargs,
                )
        _show(results, console, quiet=quiet, verbose=verbose)
        problems = write_results(results, json_path, junit_path)
        if problems:  # the results are shown already; the files are said to be missing
            raise SpecError("; ".join(problems))
        sys.exit(_exit_code(results))


def _refuse_bad_input(
    chosen: list[str],
    params: dict[str, Any],
    topology: str | None,
    kernel: str | None,
    outputs: tuple[str | None, str | None, str | None],
) -> Spec | None:
    """Everything that can be wrong with the command line, found before any check runs:
    names, parameters, files read and written, privileges. The topology file's Spec."""
    from ._privilege import require_root
    from .topology import load

    for name in chosen:
        _validate(name, params)  # unknown names, bad parameters
    spec = load(topology) if topology is not None else None  # a bad topology file, once
    _check_inputs(params.get("ruleset"), params.get("policy"))
    if not kernel:  # a guest runs its checks as root whoever boots it
        require_root()
    _check_outputs(*outputs)
    return spec


def _check_inputs(ruleset: str | None, policy: str | None) -> None:
    """Input files are regular, of sane size, and text, before any check runs."""
    from ._inputfile import read_input

    if policy:
        read_input(policy, "policy")
    for path in ruleset.split(",") if ruleset else ():
        read_input(path.strip(), "ruleset")


def _check_outputs(json_path: str | None, junit_path: str | None, bundle: str | None) -> None:
    """Every file and directory asked for can be written, before any check runs."""
    from .report._output import ensure_writable_dir, ensure_writable_file

    for option, path in (("--json", json_path), ("--junit", junit_path)):
        if path:
            ensure_writable_file(path, option)
    if bundle:
        ensure_writable_dir(bundle, "--bundle")


def _validate(name: str, params: dict[str, Any]) -> None:
    """An unknown check, or a parameter it does not take or cannot parse: SpecError. A
    check whose module breaks on import is left to its own run (an ERROR result)."""
    from .check import load_check

    try:
        check = load_check(name)
    except NetprobeError:
        raise
    except Exception:
        return
    check.parse_params(params)


def _show(results: list[Any], console: Any, *, quiet: bool, verbose: bool) -> None:
    from .report._text import result_details, results_table

    if quiet:
        return
    console.print(results_table(results))
    for result in results:
        if verbose or not result.passed:
            console.print(result_details(result), soft_wrap=True)


def _split_check_options(words: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, str]]:
    """Check names, and the checks' own options: `--NAME VALUE` or `--NAME=VALUE`."""
    names: list[str] = []
    options: dict[str, str] = {}
    rest = list(words)
    while rest:
        word = rest.pop(0)
        if not word.startswith("--"):
            names.append(word)
            continue
        key, sep, value = word[2:].partition("=")
        if not sep:
            if not rest or rest[0].startswith("--"):
                raise click.BadParameter(f"{word} needs a value", param_hint=word)
            value = rest.pop(0)
        options[key.replace("-", "_")] = value
    if not names:
        raise click.UsageError("name at least one check, or all")
    return tuple(names), options


def _parse_params(params: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--param")
        out[key.replace("-", "_")] = value
    return out


def _exit_code(results: list[Any]) -> int:
    statuses = {r.status.value for r in results}
    if "ERROR" in statuses:
        return EXIT_BAD_INPUT
    return 1 if statuses & {"FAIL", "INCONCLUSIVE"} else 0


@cli.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.option(
    "--bundle",
    "bundle_dir",
    type=click.Path(file_okay=False),
    help="Write a new bundle here if the check fails again.",
)
def replay(bundle: str, bundle_dir: str | None) -> None:
    """Rebuild BUNDLE's topology, run its check again and compare, step by step.

    BUNDLE is its directory or its .tar.gz. Exit 0 when the outcome matches the recorded
    one, 1 when it differs, 2 when the check cannot run here (SKIP or ERROR)."""
    with _errors():
        from .bundle import replay as do_replay

        outcome = do_replay(bundle, bundle_dir=bundle_dir)
        click.echo(outcome.text())
        if outcome.result.status.value in ("SKIP", "ERROR"):  # not run: neither same nor not
            click.echo(f"netprobe: cannot replay here: {outcome.result.summary}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        sys.exit(0 if outcome.matches else 1)


@cli.command()
@click.argument("bundle", type=click.Path(exists=True))
def report(bundle: str) -> None:
    """Print the human summary of a bug-report BUNDLE."""
    with _errors():
        from .bundle import bundle_summary

        click.echo(bundle_summary(bundle))


@cli.command()
def doctor() -> None:
    """Report which kernel features and tools this machine has, with remedies."""
    with _errors():
        from ._capabilities import probe
        from ._privilege import is_root
        from .report._text import doctor_table

        _console().print(doctor_table(probe(), root=is_root()))


@cli.command()
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Also remove persistent topologies (made by `topo up`).",
)
def clean(everything: bool) -> None:
    """Remove what killed netprobe runs left behind, and nothing else."""
    with _errors():
        from .explain._tracefs import remove_stale
        from .report._text import clean_summary
        from .topology import clean as do_clean

        click.echo(clean_summary(do_clean(all=everything), remove_stale()))


@cli.group()
def topo() -> None:
    """Bring topologies up and down, and look inside them."""


@topo.command("up")
@click.argument("file", type=click.Path(dir_okay=False))
def topo_up(file: str) -> None:
    """Build FILE and leave it up, under the topology's name."""
    with _errors():
        from .report._text import topo_up_summary
        from .topology import build, load

        spec = load(file)
        topology = build(spec, persistent=True)
        topology.keep()
        click.echo(topo_up_summary(spec, topology.record))


@topo.command("down")
@click.argument("name")
def topo_down(name: str) -> None:
    """Remove the topology NAME left up by `topo up`."""
    with _errors():
        from .report._text import reverted_lines
        from .topology import down

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
def topo_show(name: str, fmt: str) -> None:
    """Print the links, addresses and routes of each host of topology NAME (or of the
    adopted hosts of a topology file, such as `topo discover` writes), or draw it."""
    with _errors():
        if fmt != "text":
            from .topology import load
            from .topology._kernel.inspect import recorded_spec
            from .topology._model import picture

            spec = load(name) if os.path.isfile(name) else recorded_spec(name)
            click.echo(getattr(picture, fmt)(spec), nl=False)
            return
        from .report._text import host_view_text
        from .topology._kernel.inspect import describe_spec, describe_topology

        if os.path.isfile(name):  # a topology file: the hosts that exist without it
            from .topology import load

            views = describe_spec(load(name))
        else:
            views = describe_topology(name)
        for view in views:
            click.echo(host_view_text(view))


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
        from .topology import discover
        from .topology._model.dump import dump

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


@topo.command("list")
def topo_list() -> None:
    """List the topologies left up, and runs in progress."""
    with _errors():
        from .report._text import runs_table
        from .topology._kernel.owner import read_records

        _console().print(runs_table(read_records()))


def main() -> None:
    """The `netprobe` command's entry point."""
    cli(prog_name="netprobe")


if __name__ == "__main__":
    main()
