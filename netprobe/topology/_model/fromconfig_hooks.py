"""The hook commands a box runs as its interfaces come up at boot (pre-up, up, post-up) →
what a lab can do of them: firewall commands, sysctls; the rest is listed as not applied.
Pure: the commands are read, never run.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass

from .fromconfig_rules import FirewallCommand
from .persistent import Command, PersistentConfig

BOOT_HOOKS = ("pre-up", "up", "post-up")
_SHELL = ("|", "||", "&&", ";", "&", "<", ">>", "2>", "2>&1")
_FIREWALLS = {"iptables": "iptables", "ip6tables": "ip6tables", "nft": "nft"}


@dataclass(frozen=True)
class Hooks:
    """What the boot hooks of the brought-up interfaces do, as far as a lab follows."""

    firewall: tuple[FirewallCommand, ...]
    sysctls: tuple[tuple[str, str, str], ...]  # (key, value, where)
    skipped: tuple[tuple[Command, str], ...]  # (command, why)


def boot_hooks(config: PersistentConfig, up: set[str]) -> Hooks:
    """The boot hooks of the interfaces in `up`, in the order they are written."""
    firewall, sysctls, skipped = [], [], []
    for cmd in config.commands:
        if cmd.hook not in BOOT_HOOKS or cmd.interface not in up:
            continue  # down hooks, and hooks of what boot does not bring up, never run
        try:
            words = shlex.split(cmd.text, comments=False)
        except ValueError as exc:
            skipped.append((cmd, f"the shell cannot read it ({exc})"))
            continue
        sysctl = _sysctl(words)
        program = _program(words[0]) if words else None
        if sysctl is not None:
            sysctls.append((*sysctl, cmd.where))
        elif program is not None and not any(w in _SHELL for w in words):
            firewall.append(FirewallCommand(program, tuple(words[1:]), cmd.where, cmd.text))
        elif words and words[0] in ("true", ":"):
            continue
        else:
            skipped.append((cmd, _why(words, program)))
    return Hooks(tuple(firewall), tuple(sysctls), tuple(skipped))


def _program(word: str) -> str | None:
    """iptables, ip6tables or nft, by the command's name (iptables-nft, /sbin/iptables…)."""
    name = os.path.basename(word).removesuffix("-legacy").removesuffix("-nft")
    return _FIREWALLS.get(name)


def _why(words: list[str], program: str | None) -> str:
    if program is not None:
        return "a shell construct around a firewall command (pipe, list, redirection)"
    return "not a firewall or sysctl command: the lab does not run it"


def _sysctl(words: list[str]) -> tuple[str, str] | None:
    """`echo V > /proc/sys/A/B` and `sysctl [-w] A.B=V` → ("A.B", "V")."""
    if len(words) == 4 and words[0] == "echo" and words[2] == ">" and (
        words[3].startswith("/proc/sys/")
    ):
        path = words[3].removeprefix("/proc/sys/")
        return path if "." in path else path.replace("/", "."), words[1]  # vmbr0.5 keeps /
    if words and os.path.basename(words[0]) == "sysctl":
        pairs = [w for w in words[1:] if not w.startswith("-")]
        if len(pairs) == 1 and "=" in pairs[0] and set(words[1:]) - set(pairs) <= {"-w", "-q"}:
            key, _, value = pairs[0].partition("=")
            return key.strip().replace("/", "."), value.strip()
    return None
