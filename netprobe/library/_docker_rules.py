"""Docker's iptables rules as a person reads them: `iptables-save` lines, found in the
ruleset or named from an nft trace (iptables-nft rules are nft rules underneath: the rule
at position N of an nft chain is the Nth `-A CHAIN` line iptables-save prints)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from netprobe.check import Context, Step

if TYPE_CHECKING:
    from netprobe.explain import TraceStep

_HANDLE = re.compile(r"# handle (\d+)\s*$")


def saved(ctx: Context, host: str, table: str) -> list[str]:
    """`iptables-save -t TABLE` of `host`, line by line (none when it fails)."""
    out = ctx.topo.run(host, ["iptables-save", "-t", table])
    return out.stdout.splitlines() if out.ok else []


def direct_drop(
    ctx: Context, host: str, ip: str, bridge: str, port: int | None = None
) -> str | None:
    """Docker 28's raw rule that drops traffic to container `ip` entering by other than
    its `bridge`: per container since 28.2, per published port (-p/--dport) in 28.0-28.1
    (with `port`: only one that covers it)."""
    for line in saved(ctx, host, "raw"):
        words = line.split()
        if not line.startswith("-A PREROUTING ") or words[-2:] != ["-j", "DROP"]:
            continue
        if f"-d {ip}/32" not in line or f"! -i {bridge}" not in line:
            continue
        dport = words[words.index("--dport") + 1] if "--dport" in words else None
        if dport is None or port is None or dport == str(port):
            return line
    return None


def as_saved(ctx: Context, host: str, step: TraceStep) -> str:
    """A traced rule or policy (a `TraceStep`) as iptables-save prints it, with its table
    and chain ("raw PREROUTING: -A PREROUTING -d …"); its nft text when it is not an
    iptables-nft rule."""
    where = f"{step.table} {step.chain}"
    if step.kind == "policy":
        return f"the policy of {where} (:{step.chain} {str(step.verdict).upper()})"
    listing = ctx.topo.run(host, ["nft", "-a", "list", "chain", step.family, step.table,
                                  step.chain])
    handles = [int(m.group(1)) for line in listing.stdout.splitlines()
               if (m := _HANDLE.search(line)) and not line.strip().startswith("chain ")]
    lines = [line for line in saved(ctx, host, step.table)
             if line.startswith(f"-A {step.chain} ")] if step.family == "ip" else []
    if step.handle in handles and len(lines) == len(handles):
        return f'{where}: "{lines[handles.index(step.handle)]}"'
    return f"{where}: `{step.rule}`"


def traced_verdict(ctx: Context, host: str, explained: Step, verdict: str) -> str | None:
    """The rule of `host` that decided the traced probe of `explained`, as iptables-save
    prints it: the drop that stopped it, or the last accept of the filter table (the one
    that let it through); None when nothing was traced there."""
    explanation = explained.explanation
    reports = [r for r in (explanation.nft if explanation else ()) if r.host == host]
    decided = [s for r in reports for s in r.steps
               if s.kind in ("rule", "policy") and s.verdict == verdict
               and (verdict == "drop" or s.table == "filter")]
    if not decided:
        return None
    return as_saved(ctx, host, decided[0] if verdict == "drop" else decided[-1])
