"""The `netprobe` group, and how every command turns errors into exit codes.

Exit codes: 0 success, 1 a check failed or was inconclusive, 2 bad input or environment.
A NetprobeError becomes one readable message; a bug in netprobe keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from .._version import __version__
from ..errors import NetprobeError

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
