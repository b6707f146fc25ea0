"""`netprobe doctor` and `netprobe clean`: this machine, and what runs left on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._app import _console, _errors, cli

if TYPE_CHECKING:
    pass


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON (docs/json.md).")
def doctor(as_json: bool) -> None:
    """Report which kernel features and tools this machine has, with remedies."""
    with _errors():
        from .._capabilities import probe
        from .._privilege import is_root
        from ..report._text import doctor_table

        if as_json:
            from ..report._views import doctor_document
            from ._probe import _write_json

            _write_json(doctor_document(probe(), root=is_root()), "-")
            return
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
        from ..report._text import clean_summary
        from ..traffic import clean as do_clean

        click.echo(clean_summary(do_clean(all=everything)))
