"""Networks made by hand: namespaces and links made with plain `ip`, `nft` and `sysctl`
commands, as a person, Docker or a CNI plugin would make them, never from a netprobe spec.
A test adopts them (`Handmade.spec`) to prove a check as strong there as on its own.

    def test_x(handmade: Handmade) -> None:
        handmade.netns("a", "b")
        handmade.run(
            "ip link add e0 netns {a} type veth peer name e0 netns {b}",
            "ip -n {a} addr add 10.9.0.1/24 dev e0",
            "ip -n {a} link set e0 up",
        )
        result = run_check("veth", handmade.spec("x"), a="a:e0", b="b:e0")

`{a}` in a command is the real name of the namespace made as "a". Names carry the test
process's id and a counter, so parallel test sessions never collide; every namespace made
is removed when the fixture ends (its links go with it). The `handmade` fixture is
registered for all tests by tests/conftest.py.
"""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from types import TracebackType

import pytest

from netprobe import Host, Spec

_counter = itertools.count(1)


class Handmade:
    """Namespaces made by hand for one test, removed by `close` (or on leaving `with`)."""

    def __init__(self) -> None:
        self.prefix = f"hm{os.getpid()}-{next(_counter)}"
        self.names: dict[str, str] = {}  # short name → real namespace name, in creation order

    def netns(self, *shorts: str) -> None:
        """Make a namespace for each short name (`ip netns add`), with loopback up."""
        for short in shorts:
            if short in self.names:
                raise ValueError(f"namespace {short!r} made twice")
            real = f"{self.prefix}-{short}"
            self.names[short] = real  # before it exists: a failure below still removes it
            self._exec(["ip", "netns", "add", real])
            self._exec(["ip", "-n", real, "link", "set", "lo", "up"])

    def __getitem__(self, short: str) -> str:
        """The real name of the namespace made as `short`."""
        return self.names[short]

    def run(self, *commands: str, input: str | None = None) -> None:
        """Run each command (its `{short}`s replaced by namespace names); one that fails
        raises with its stderr. `input` goes to every command's stdin (an nft ruleset)."""
        for command in commands:
            self._exec(shlex.split(command.format_map(self.names)), input=input)

    def output(self, command: str) -> str:
        """What a command (with `{short}`s replaced) prints."""
        return self._exec(shlex.split(command.format_map(self.names)))

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the links made can carry traffic: no link up with carrier still
        without its queue (the kernel attaches it up to a second after carrier comes up,
        and drops what is sent before), and no tentative IPv6 address (until duplicate
        address detection is over, IPv6 through a just-made link goes nowhere)."""
        deadline = time.monotonic() + timeout
        for real in self.names.values():
            while not self._settled(real):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the links of {real} are not ready after {timeout} s")
                time.sleep(0.02)

    def _settled(self, real: str) -> bool:
        links = self._exec(["ip", "-n", real, "-o", "link", "show", "up"]).splitlines()
        if any("LOWER_UP" in line and "qdisc noop" in line for line in links):
            return False
        return not self._exec(["ip", "-n", real, "-6", "-o", "addr", "show", "tentative"]).strip()

    def spec(self, name: str, *shorts: str) -> Spec:
        """A spec adopting the namespaces (all, or those named), each as a host called by
        its short name, with nothing added: what is there is all there is. Waits for the
        links to be ready first (`settle`)."""
        self.settle()
        wanted = shorts or tuple(self.names)
        return Spec(name, hosts=tuple(Host(s, adopt=self.names[s]) for s in wanted))

    def close(self) -> None:
        """Remove every namespace made (and so the links in them)."""
        for real in reversed(list(self.names.values())):
            subprocess.run(["ip", "netns", "del", real], capture_output=True, check=False)
        self.names.clear()

    def __enter__(self) -> Handmade:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @staticmethod
    def _exec(argv: list[str], input: str | None = None) -> str:
        done = subprocess.run(argv, input=input, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} failed: {done.stderr.strip()}")
        return done.stdout


@pytest.fixture
def handmade() -> Iterator[Handmade]:
    """An empty hand-made network, removed after the test."""
    with Handmade() as made:
        yield made
