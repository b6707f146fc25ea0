"""`netprobe topo impair NAME HOST:IF …`: a running lab's link rate-limited, delayed,
made lossy (tc tbf and netem), or given back its default queue (--clear)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ._app import _errors
from ._topo import topo

_OPTIONS = (
    ("rate", "RATE", "Rate limit (tbf), like 10mbit."),
    ("burst", "SIZE", "The rate limit's bucket, like 32kb (default: 10 ms of the rate)."),
    ("latency", "TIME", "Longest wait in the rate limit's queue, like 50ms (the default)."),
    ("limit", "SIZE", "The rate limit's queue in bytes, like 64kb (instead of --latency)."),
    ("delay", "TIME", "Delay each frame (netem), like 20ms."),
    ("jitter", "TIME", "Vary the delay by up to this, like 5ms."),
    ("loss", "PCT", "Drop this share of frames, like 1%."),
    ("duplicate", "PCT", "Duplicate this share of frames, like 0.1%."),
    ("reorder", "PCT", "Send this share at once, ahead of the delayed ones, like 5%."),
)


def _with_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for key, metavar, text in reversed(_OPTIONS):
        function = click.option(f"--{key}", key, metavar=metavar, help=text)(function)
    return function


@topo.command("impair")
@click.argument("name")
@click.argument("port", metavar="HOST:IF")
@click.option("--clear", is_flag=True, help="Remove the impairments (the default queue again).")
@_with_options
def topo_impair(name: str, port: str, clear: bool, **given: str | None) -> None:
    """Impair what HOST:IF of the running lab NAME sends: a rate limit and its queue
    (tc tbf), delay, jitter, loss, duplication, reordering (tc netem, where the kernel has
    it). Replaces what the interface had; --clear removes it.

    \b
      netprobe topo impair lab a:eth0 --rate 10mbit --delay 20ms --loss 1%
      netprobe topo impair lab a:eth0 --clear
    """
    with _errors():
        from ..errors import SpecError
        from ..topology._kernel.impair import impair_lab
        from ..topology._model.impair import Impair

        values = {k: v for k, v in given.items() if v is not None}
        if clear and values:
            raise SpecError("--clear takes no impairments: give one or the other")
        if not clear and not values:
            raise SpecError("say what to impair (--rate, --delay, --loss …) or --clear")
        click.echo(impair_lab(name, port, None if clear else Impair(**values)))
