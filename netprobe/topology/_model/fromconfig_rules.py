"""The firewall lines a box runs as its interfaces come up (`iptables …`, `ip6tables …`,
`nft …` in post-up hooks) → the ruleset files a lab host loads: one iptables-restore file
per family, a section per table, and one nft file.

The iptables lines are replayed in boot order on a model of each table, so a later -I, -D,
-F or -P does at the lab what it does at boot; a line iptables would refuse at boot (a chain
that does not exist yet, an unknown table) is not applied, as it would not be. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .persistent import FirewallLine

BUILTIN = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}
_VERBS = {
    "-A": "append", "--append": "append", "-I": "insert", "--insert": "insert",
    "-D": "delete", "--delete": "delete", "-R": "replace", "--replace": "replace",
    "-N": "new", "--new-chain": "new", "-X": "remove", "--delete-chain": "remove",
    "-F": "flush", "--flush": "flush", "-P": "policy", "--policy": "policy",
    "-Z": "zero", "--zero": "zero", "-L": "list", "--list": "list", "-S": "list",
    "--list-rules": "list", "-C": "list", "--check": "list",
}  # fmt: skip
_NFT_KEPT = ("add", "insert", "create", "replace", "flush")
_NFT_INERT = ("list", "monitor", "describe", "get")


@dataclass(frozen=True)
class Rulesets:
    """Ruleset texts by loader (iptables, ip6tables, nft), and the lines left out
    (the line, why)."""

    texts: dict[str, str]
    skipped: tuple[tuple[FirewallLine, str], ...]


@dataclass
class _Table:
    policies: dict[str, str]
    chains: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    @classmethod
    def fresh(cls, name: str) -> _Table:
        return cls({c: "ACCEPT" for c in BUILTIN[name]}, {c: [] for c in BUILTIN[name]})


def rulesets(lines: Iterable[FirewallLine]) -> Rulesets:
    """The ruleset files `lines` (in boot order) leave behind."""
    tables: dict[str, dict[str, _Table]] = {"iptables": {}, "ip6tables": {}}
    nft: list[str] = []
    skipped: list[tuple[FirewallLine, str]] = []
    for line in lines:
        if line.file is not None:
            why: str | None = f"it loads {line.file}, a file of the box the lab does not read"
        elif line.tool == "nft":
            why = _nft(line, nft)
        elif line.tool in tables:
            why = _iptables(line, tables[line.tool])
        else:
            why = f"{line.tool} is not iptables, ip6tables or nft"
        if why:
            skipped.append((line, why))
    texts = {family: _restore_text(t) for family, t in tables.items() if t}
    if nft:
        texts["nft"] = "".join(nft)
    return Rulesets(texts, tuple(skipped))


def _nft(line: FirewallLine, out: list[str]) -> str | None:
    args = list(line.argv[1:])
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("-f", "--file") or flag.startswith("--file="):
            return "it loads a file of the box, which the lab does not have"
        if flag in ("-c", "--check"):
            return None  # checks only: changes nothing at boot
        if flag in ("-I", "--includepath"):
            args = args[1:]
    if not args:
        return "no nft command"
    text = " ".join(args)
    verb = text.split()[0]
    if verb in _NFT_INERT:
        return None
    if verb not in _NFT_KEPT:
        return f"`nft {verb}` is not reproduced (only add, insert, create, replace, flush)"
    out.append(f"# {line.command.where}: {line.command.text}\n{text}\n")
    return None


def _iptables(line: FirewallLine, tables: dict[str, _Table]) -> str | None:
    table, args = _options(list(line.argv[1:]))
    if table not in BUILTIN:
        return f"unknown table {table!r}"
    found = [i for i, a in enumerate(args) if a in _VERBS]
    if len(found) != 1:
        return "not one iptables command (-A, -I, -D, -N, -P, -F …)"
    at = found[0]
    verb, rest = _VERBS[args[at]], args[at + 1:]
    rule_before = tuple(args[:at])
    state = tables.setdefault(table, _Table.fresh(table))
    why = _apply(state, verb, rest, rule_before)
    source = f"# {line.command.where}: {line.command.text}"
    if why is None and verb not in ("list", "zero") and source not in state.sources:
        state.sources.append(source)
    return why


def _options(args: list[str]) -> tuple[str, list[str]]:
    """The table, and the arguments without -t/--table and -w/--wait (which change
    nothing in a ruleset)."""
    table, out = "filter", []
    while args:
        arg = args.pop(0)
        if arg in ("-t", "--table") and args:
            table = args.pop(0)
        elif arg.startswith("--table="):
            table = arg.partition("=")[2]
        elif arg in ("-w", "--wait", "-W", "--wait-interval"):
            if args and args[0].isdigit():
                args.pop(0)
        elif not arg.startswith(("--wait=", "--wait-interval=")):
            out.append(arg)
    return table, out


def _apply(state: _Table, verb: str, rest: list[str], before: tuple[str, ...]) -> str | None:
    chain = rest[0] if rest and not rest[0].startswith("-") else None
    args = rest[1:] if chain else rest
    if verb in ("list", "zero"):
        return None
    if verb in ("flush", "remove"):
        return _flush(state, verb, chain)
    if chain is None:
        return "no chain named"
    if verb == "new":
        if chain in state.chains:
            return f"chain {chain} exists already"
        state.chains[chain] = []
        return None
    if chain not in state.chains:
        return f"chain {chain} does not exist at that point of the boot"
    if verb == "policy":
        if chain not in state.policies or len(args) != 1:
            return f"-P takes a built-in chain and ACCEPT or DROP, not {' '.join(rest)}"
        state.policies[chain] = args[0]
        return None
    return _rule(state.chains[chain], verb, before, args)


def _rule(rules: list[tuple[str, ...]], verb: str, before: tuple[str, ...],
          args: list[str]) -> str | None:
    number = int(args[0]) if args and args[0].isdigit() else None
    rule = before + tuple(args[1:] if number is not None else args)
    if verb == "append":
        rules.append(rule)
    elif verb == "insert":
        rules.insert((number or 1) - 1, rule)
    elif number is not None and not 1 <= number <= len(rules):
        return f"there is no rule {number} in that chain at that point of the boot"
    elif verb == "replace":
        if number is None:
            return "-R needs a rule number"
        rules[number - 1] = rule
    elif number is not None:
        del rules[number - 1]
    elif rule in rules:
        rules.remove(rule)
    # else: -D of a rule that is not there fails at boot and changes nothing
    return None


def _flush(state: _Table, verb: str, chain: str | None) -> str | None:
    names = [chain] if chain else list(state.chains)
    if chain and chain not in state.chains:
        return f"chain {chain} does not exist at that point of the boot"
    for name in names:
        if verb == "flush":
            state.chains[name] = []
        elif name not in state.policies:
            del state.chains[name]
        elif chain:
            return f"{name} is a built-in chain"
    return None


def _restore_text(tables: dict[str, _Table]) -> str:
    lines = []
    for name, state in tables.items():
        lines += state.sources
        lines.append(f"*{name}")
        lines += [f":{c} {state.policies.get(c, '-')} [0:0]" for c in state.chains]
        lines += [f"-A {c} {' '.join(map(_quote, rule))}".rstrip()
                  for c, rules in state.chains.items() for rule in rules]  # fmt: skip
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _quote(token: str) -> str:
    """A token as iptables-restore reads it back (it splits on blanks, keeps "…")."""
    if token and not any(c.isspace() or c in "\"'#" for c in token):
        return token
    return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'
