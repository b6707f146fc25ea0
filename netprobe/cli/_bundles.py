"""`netprobe replay` and `netprobe report`: what a bug-report bundle holds."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ._app import EXIT_BAD_INPUT, _errors, cli

if TYPE_CHECKING:
    pass


@cli.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.option(
    "--bundle",
    "bundle_dir",
    type=click.Path(file_okay=False),
    help="Write a new bundle here if the check fails again.",
)
def replay(bundle: str, bundle_dir: str | None) -> None:
    """Rebuild BUNDLE's topology, run its check again and compare, step by step (a probe
    bundle: send its probe again, and compare how it ends).

    BUNDLE is its directory or its .tar.gz. Exit 0 when the outcome matches the recorded
    one, 1 when it differs, 2 when the check cannot run here (SKIP or ERROR)."""
    with _errors():
        from ..bundle import Replay
        from ..bundle import replay as do_replay

        outcome = do_replay(bundle, bundle_dir=bundle_dir)
        click.echo(outcome.text())
        if isinstance(outcome, Replay) and outcome.result.status.value in ("SKIP", "ERROR"):
            # not run: neither same nor not
            click.echo(f"netprobe: cannot replay here: {outcome.result.summary}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        sys.exit(0 if outcome.matches else 1)


@cli.command()
@click.argument("bundle", type=click.Path(exists=True))
def report(bundle: str) -> None:
    """Print the human summary of a bug-report BUNDLE."""
    with _errors():
        from ..bundle import bundle_summary

        click.echo(bundle_summary(bundle))
