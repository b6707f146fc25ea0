"""`netprobe topo exec|shell|capture`: working inside a lab `topo up` left running.

The lab is found by its name from any directory. `exec` and `shell` become the command
(exec(2), through `ip netns exec`), so its exit code, stdin, terminal and signals are the
user's own; `capture` reads the interface in this process and stops cleanly on Ctrl-C.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, BinaryIO

import click

from ..errors import SpecError
from ._app import _errors
from ._topo import topo

if TYPE_CHECKING:
    from ..topology._kernel.labs import LabHost
    from ..traffic._capture import Capture

EXIT_NOT_FOUND = 127  # as a shell says of a command it cannot find


@topo.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("name")
@click.argument("host")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def topo_exec(name: str, host: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside HOST of the lab NAME (`topo exec NAME HOST -- CMD ARG…`):
    its stdin, output, terminal and exit code are its own."""
    with _errors():
        from ..topology._kernel.labs import lab_host

        if command[:1] == ("--",):  # click hands the separator on when it ends options
            command = command[1:]
        if not command:
            raise SpecError("say what to run: topo exec NAME HOST -- COMMAND [ARG...]")
        where = lab_host(name, host)
        if shutil.which(command[0]) is None:
            click.echo(f"netprobe: error: no such command: {command[0]}", err=True)
            sys.exit(EXIT_NOT_FOUND)
        _become(where.argv(list(command)), name, host)


@topo.command("shell")
@click.argument("name")
@click.argument("host")
def topo_shell(name: str, host: str) -> None:
    """Open a shell inside HOST of the lab NAME; its prompt names the lab and the host."""
    with _errors():
        from ..topology._kernel.labs import lab_host

        where = lab_host(name, host)
        argv, env = _shell(f"({name}:{host}) ")
        _become(where.argv(argv), name, host, env)


def _shell(prompt: str) -> tuple[list[str], dict[str, str]]:
    """bash with an rc file that reads the user's own, then names the host in the prompt
    (handed over as an open memory file: nothing to clean up); else sh, told by PS1."""
    bash = shutil.which("bash")
    if bash is None:
        return [shutil.which("sh") or "/bin/sh", "-i"], {"PS1": prompt + "# "}
    fd = os.memfd_create("netprobe-shell-rc", 0)  # inherited: bash opens /dev/fd/N
    rc = (
        '[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"\n'
        f'PS1={shlex.quote(prompt)}"${{PS1:-\\u@\\h:\\w\\$ }}"\n'
        f"exec {fd}<&-\n"
    )
    os.write(fd, rc.encode())
    return [bash, "--rcfile", f"/dev/fd/{fd}", "-i"], {}


def _become(argv: list[str], lab: str, host: str, extra: dict[str, str] | None = None) -> None:
    """Replace this process with `argv`, told where it is by NETPROBE_LAB/NETPROBE_HOST."""
    env = {**os.environ, "NETPROBE_LAB": lab, "NETPROBE_HOST": host, **(extra or {})}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        raise SpecError(f"cannot run {argv[0]}: {exc.strerror}") from None


@topo.command("capture")
@click.argument("name")
@click.argument("port", metavar="HOST:IF")
@click.argument("expression", nargs=-1)
@click.option("-w", "output", metavar="FILE",
              help="Write pcapng to FILE (`-w -`: to stdout, for `| wireshark -k -i -`) "
              "instead of a line per frame.")
@click.option("-c", "count", type=click.IntRange(min=1), help="Stop after COUNT frames.")
def topo_capture(name: str, port: str, expression: tuple[str, ...], output: str | None,
                 count: int | None) -> None:
    """Capture on interface IF of HOST of the lab NAME, frames that match EXPRESSION (a
    tcpdump filter) in both directions: a line per frame, or pcapng with -w. Ctrl-C ends
    it, saying how many frames it took and how many the kernel dropped."""
    with _errors():
        from ..traffic._follow import LineSink, PcapngSink, Sink, follow

        text = " ".join(expression)
        where, capture = _open_capture(name, port, text)
        try:
            out = _open_output(output)
        except BaseException:
            capture.close()
            raise
        sink: Sink = LineSink(sys.stdout) if out is None else PcapngSink(out, port)
        try:
            with _stopping() as stopped, _listed(name):  # then say it is listening
                click.echo(f"capturing on {port} of lab {name}" + (f": {text}" if text else ""),
                           err=True)
                done = follow(capture, sink, stop=stopped, gone=where.gone, count=count)
        finally:
            capture.close()
            if out is not None and out is not sys.stdout.buffer:
                out.close()
        if done.ended == "closed":
            _quiet_stdout()
        why = {"gone": f" (lab {name} was taken down)", "closed": " (the reader went)"}
        click.echo(f"{done.frames} frames captured, {done.drops} dropped by kernel"
                   + why.get(done.ended, ""), err=True)


def _open_capture(name: str, port: str, text: str) -> tuple[LabHost, Capture]:
    """The capture socket on HOST:IF of lab `name`, its filter compiled from `text`."""
    from ..topology._kernel.labs import lab_host, lab_interface
    from ..traffic._capture import Capture, compile_filter

    host, sep, ifname = port.partition(":")
    if not (sep and host and ifname):
        raise SpecError(f"say where to capture as HOST:IF, not {port!r}")
    where = lab_host(name, host)
    kernel_name = lab_interface(where, ifname)
    bpf = None
    if text:  # compiled for the live link where `ip netns exec` can reach it (not pid:N)
        named = not where.namespace.startswith("pid:")
        ns = where.namespace if named and where.namespace else None
        bpf = compile_filter(text, ns, kernel_name if named else None)
    fd = where.ns_fd()
    try:
        return where, Capture(port, fd, kernel_name, bpf=bpf, outgoing=True)
    finally:
        if fd is not None:
            os.close(fd)


def _open_output(path: str | None) -> BinaryIO | None:
    """The pcapng output, opened before capturing, so a bad path is said at once."""
    if path is None:
        return None
    if path == "-":
        return sys.stdout.buffer
    try:
        return open(path, "wb")
    except OSError as exc:
        raise SpecError(f"-w {path}: cannot write it: {exc.strerror}") from None


@contextmanager
def _stopping() -> Iterator[Callable[[], bool]]:
    """Ctrl-C (SIGINT), SIGTERM (`topo down`) and SIGHUP ask the capture to stop."""
    asked: list[int] = []

    def ask(signum: int, frame: FrameType | None) -> None:
        asked.append(signum)

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {s: signal.signal(s, ask) for s in signals}
    try:
        yield lambda: bool(asked)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


@contextmanager
def _listed(name: str) -> Iterator[None]:
    """While capturing, this process is listed in the lab's record: `topo down` stops it."""
    from ..topology._kernel.labs import forget_process, note_process

    note_process(name, "capture")
    try:
        yield
    finally:
        forget_process(name)


def _quiet_stdout() -> None:
    """The pipe's reader went: stop Python complaining when it flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
