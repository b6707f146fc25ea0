"""The hook commands a configuration runs (ifupdown's pre-up/up/post-up lines) → what they
set: routes, sysctls and firewall lines. Pure: nothing is run.

Only the forms a box's configuration uses are read (`ip route add|replace`, `route add`,
`echo V > /proc/sys/…`, `sysctl -w k=v`, `iptables…`, `ip6tables…`, `iptables-restore < F`,
`nft …`); any other command is listed by `unapplied` with the reason, never guessed at.
Down hooks (down, pre-down, post-down) shape nothing at boot, so they are neither applied
nor listed: a post-down `iptables -D …` only undoes its post-up twin.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from .hookroute import RouteError, parse_ip_route, parse_route
from .persistent import Command, FirewallLine, PersistentConfig, PersistentRoute, tool_name
from .shellwords import ShellError, Simple, split
from .sysctlfile import sysctl_name, sysctl_path

UP_HOOKS = ("pre-up", "up", "post-up")
_IPTABLES = {"iptables": "ip", "ip6tables": "ip6", "iptables-restore": "ip",
             "ip6tables-restore": "ip6"}  # fmt: skip
_NFT_FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
_PROC_SYS = "/proc/sys/"


@dataclass(frozen=True)
class HookEffects:
    """What the up-hook commands set, and those they cannot be read as setting."""

    routes: tuple[PersistentRoute, ...] = ()
    sysctls: tuple[tuple[str, str, str], ...] = ()  # (key, value, where)
    firewall: tuple[FirewallLine, ...] = ()
    unapplied: tuple[tuple[Command, str], ...] = ()


@dataclass
class _Found:
    routes: list[PersistentRoute] = field(default_factory=list)
    sysctls: list[tuple[str, str, str]] = field(default_factory=list)
    firewall: list[FirewallLine] = field(default_factory=list)
    unapplied: list[tuple[Command, str]] = field(default_factory=list)


def interpret(commands: Iterable[Command]) -> HookEffects:
    """What the up-hook commands among `commands` set, in the order they run."""
    found = _Found()
    for command in commands:
        if command.hook not in UP_HOOKS:
            continue
        try:
            simples = split(command.text, command.interface)
        except ShellError as exc:
            found.unapplied.append((command, str(exc)))
            continue
        for simple in simples:
            reason = _one(command, simple, found)
            if reason is not None:
                shown = " ".join(simple.argv) if len(simples) > 1 else ""
                found.unapplied.append((command, f"{shown}: {reason}" if shown else reason))
    return HookEffects(tuple(found.routes), tuple(found.sysctls), tuple(found.firewall),
                       tuple(found.unapplied))  # fmt: skip


def booted_commands(config: PersistentConfig) -> list[Command]:
    """The commands of `config` boot runs: those of the interfaces it brings up."""
    up = config.brought_up()
    return [c for c in config.commands if c.interface in up]


def with_hooks(config: PersistentConfig) -> PersistentConfig:
    """`config` with the routes, sysctls and firewall lines the up-hooks boot runs set,
    added after its own (a hook runs after the sysctl files are applied at boot, so it
    wins); the hooks of an interface boot does not bring up set nothing."""
    effects = interpret(booted_commands(config))
    return replace(config, routes=config.routes + effects.routes,
                   sysctls=config.sysctls + effects.sysctls,
                   firewall=config.firewall + effects.firewall)  # fmt: skip


def unapplied(config: PersistentConfig) -> list[tuple[Command, str]]:
    """The up-hook commands boot runs that this model cannot honour, each with the reason."""
    return list(interpret(booted_commands(config)).unapplied)


def _one(command: Command, simple: Simple, found: _Found) -> str | None:
    """Record what `simple` sets; the reason it cannot be honoured, or None."""
    if not simple.argv:
        return "redirects without a command"
    tool = tool_name(simple.argv[0])
    if tool in ("true", ":"):
        return None
    if simple.stdout is not None or tool == "echo":
        return _echo(command, simple, found)
    if tool in ("ip", "route"):
        try:
            parse = parse_ip_route if tool == "ip" else parse_route
            found.routes.append(parse(simple.argv[1:], command.where))
        except RouteError as exc:
            return str(exc)
        return None
    if tool == "sysctl":
        return _sysctl(command, simple.argv[1:], found)
    if tool in _IPTABLES or tool == "nft":
        return _firewall(command, simple, tool, found)
    return f"{tool} is not a route, sysctl or firewall command"


def _echo(command: Command, simple: Simple, found: _Found) -> str | None:
    target = simple.stdout or ""
    if tool_name(simple.argv[0]) != "echo" or not target.startswith(_PROC_SYS):
        return "writes a file other than a sysctl's under /proc/sys"
    words = [w for w in simple.argv[1:] if w != "-n"]
    if not words or any(w.startswith("-") for w in words):
        return "echoes no plain value"
    found.sysctls.append((sysctl_name(sysctl_path(target)), " ".join(words), command.where))
    return None


def _sysctl(command: Command, args: list[str], found: _Found) -> str | None:
    pairs = [a for a in args if not a.startswith("-")]
    flags = {a for a in args if a.startswith("-")}
    if flags - {"-w", "-q", "--write", "--quiet", "-e", "--ignore"}:
        return f"sysctl {' '.join(sorted(flags))}: only -w key=value is read (pass a sysctl " \
               "file to the configuration reader instead)"
    if not pairs or any("=" not in p for p in pairs):
        return "sysctl without key=value only reads"
    for pair in pairs:
        key, _, value = pair.partition("=")
        found.sysctls.append((sysctl_name(sysctl_path(key)), value.strip(), command.where))
    return None


def _firewall(command: Command, simple: Simple, tool: str, found: _Found) -> str | None:
    argv = tuple(simple.argv)
    if tool.endswith("-restore"):
        named = [a for a in argv[1:] if not a.startswith("-")]  # `iptables-restore FILE`
        rules = simple.stdin or (named[-1] if named else None)
        if rules is None:
            return f"{tool} reads its rules from standard input, which is not a file here"
        found.firewall.append(FirewallLine(command, argv, _IPTABLES[tool], rules))
        return None
    if tool == "nft":
        family, ruleset = _nft_target(argv)
        found.firewall.append(FirewallLine(command, argv, family, ruleset or simple.stdin))
        return None
    found.firewall.append(FirewallLine(command, argv, _IPTABLES[tool]))
    return None


def _nft_target(argv: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(family, ruleset file) of an nft command; a file's family is its own (None)."""
    for flag in ("-f", "--file"):
        if flag in argv[:-1]:
            return None, argv[argv.index(flag) + 1]
    words = [w for w in argv[1:] if not w.startswith("-")]
    # nft VERB OBJECT [FAMILY] TABLE …: the family is optional and defaults to ip
    if len(words) >= 3 and words[2] in _NFT_FAMILIES:
        return words[2], None
    return "ip", None
