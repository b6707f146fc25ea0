"""`netprobe list` and `netprobe check`: the checks, and running them."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from ..errors import NetprobeError, SpecError
from ._app import EXIT_BAD_INPUT, _console, _errors, cli

if TYPE_CHECKING:
    from ..topology import Spec


@cli.command("list")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON (docs/json.md).")
def list_checks(names: tuple[str, ...], as_json: bool) -> None:
    """List the checks: name, what it proves, what it needs and whether this machine has it.

    With NAMES: those checks in full, with their parameters (hosts and ports to use)."""
    with _errors():
        from ..check import load_check, registered
        from ..report._text import check_details, checks_table

        if as_json:
            from ..report._views import checks_document
            from ._probe import _write_json

            _write_json(checks_document(registered(), names), "-")
            return
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
    multiple=True,
    help="Load this nft or iptables-restore file into the checked host (checks that take "
    "a ruleset: filter); repeatable (ufw's rules for IPv4 and IPv6, say).",
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
    ruleset: tuple[str, ...],
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
        from ..check import expand_names, registered
        from ..check._suite import run_checks
        from ..report._output import write_results

        names, extra = _split_check_options(names)
        chosen = list(registered()) if names == ("all",) else expand_names(names)
        kwargs: dict[str, Any] = {**_parse_params(params), **extra}
        files = ",".join(ruleset)
        kwargs.update({k: v for k, v in (("ruleset", files), ("policy", policy)) if v})
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
                from ..vm import run_named_checks

                results = run_named_checks(
                    chosen, topology, kernel=kernel, bundle_dir=keep, archive=archive, **kwargs
                )
            else:
                from ..bundle import BundleRecorder

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
    from ..topology import load

    for name in chosen:
        _validate(name, params)  # unknown names, bad parameters
    spec = load(topology) if topology is not None else None  # a bad topology file, once
    _check_inputs(params.get("ruleset"), params.get("policy"))
    if not kernel:  # a guest runs its checks as root whoever boots it
        _privileges(chosen)
    _check_outputs(*outputs)
    return spec


_ROOTLESS = frozenset({"rootless"})  # checks that need no root: run in a user namespace


def _privileges(chosen: list[str]) -> None:
    """Root, or checks that need none: those run unprivileged in a user namespace
    netprobe creates (as a rootless container's network is); anything else needs root."""
    from .. import _userns
    from .._privilege import is_root, require_root

    if not is_root() and chosen and set(chosen) <= _ROOTLESS:
        _userns.enter()
    require_root()


def _check_inputs(ruleset: str | None, policy: str | None) -> None:
    """Input files are regular, of sane size, and text, before any check runs."""
    from .._inputfile import read_input

    if policy:
        read_input(policy, "policy")
    for path in ruleset.split(",") if ruleset else ():
        read_input(path.strip(), "ruleset")


def _check_outputs(json_path: str | None, junit_path: str | None, bundle: str | None) -> None:
    """Every file and directory asked for can be written, before any check runs."""
    from ..report._output import ensure_writable_dir, ensure_writable_file

    for option, path in (("--json", json_path), ("--junit", junit_path)):
        if path:
            ensure_writable_file(path, option)
    if bundle:
        ensure_writable_dir(bundle, "--bundle")


def _validate(name: str, params: dict[str, Any]) -> None:
    """An unknown check, or a parameter it does not take or cannot parse: SpecError. A
    check whose module breaks on import is left to its own run (an ERROR result)."""
    from ..check import load_check

    try:
        check = load_check(name)
    except NetprobeError:
        raise
    except Exception:
        return
    check.parse_params(params)


def _show(results: list[Any], console: Any, *, quiet: bool, verbose: bool) -> None:
    from ..report._text import result_details, results_table

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
