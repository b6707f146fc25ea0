"""Human-readable output of the commands: rich tables and short summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from .._capabilities import Capability
from ..check._base import Check
from ..check._registry import Registration
from ..check._result import Result
from ..topology._kernel.cleanup import CleanReport
from ..topology._kernel.inspect import HostView
from ..topology._kernel.owner import RunRecord, is_alive
from ..topology._model.spec import Spec

_STYLE = {
    "PASS": "green",
    "FAIL": "red",
    "INCONCLUSIVE": "yellow",
    "SKIP": "cyan",
    "ERROR": "magenta",
}


def doctor_table(found: Sequence[Capability], *, root: bool) -> Any:
    """`netprobe doctor`'s table: each capability, present or not, with its remedy."""
    table = Table(title="netprobe doctor" + ("" if root else " (not root: kernel not probed)"))
    for column in ("kind", "name", "status", "detail / remedy"):
        table.add_column(column)
    for cap in found:
        if cap.present:
            status = "[green]present[/]"
        else:
            status = (
                "[yellow]not probed[/]"
                if cap.detail.startswith("not probed")
                else "[red]missing[/]"
            )
        note = cap.detail if cap.present else f"{cap.detail}\n→ {cap.remedy or ''}"
        table.add_row(cap.kind, cap.name, status, note)
    return table


def clean_summary(report: CleanReport) -> str:
    """What `netprobe clean` removed (dead runs, trace instances), as text."""
    lines = []
    trace_instances = report.removed_trace_instances
    if report.removed_runs:
        lines.append(
            f"removed {len(report.removed_runs)} dead run(s): "
            f"{len(report.removed_namespaces)} namespaces, "
            f"{len(report.removed_links)} links, {len(report.stopped_daemons)} daemons"
        )
        removed = report.removed_namespaces + report.removed_links + report.stopped_daemons
        lines += [f"  - {name}" for name in removed]
    if trace_instances:
        lines.append(f"removed {len(trace_instances)} trace instance(s) of dead runs")
        lines += [f"  - tracefs instance {name}" for name in trace_instances]
    lines += reverted_lines(report)
    if not report.removed_runs and not trace_instances:
        lines.append("nothing to clean")
    if report.kept_live:
        lines.append(f"left alone: {len(report.kept_live)} run(s) still in progress")
    if report.kept_persistent:
        lines.append(
            "left up (persistent; `--all` or `netprobe topo down NAME` removes): "
            + ", ".join(report.kept_persistent)
        )
    if report.unknown_namespaces:
        lines.append(
            "left alone, not recorded as netprobe's: " + ", ".join(report.unknown_namespaces)
        )
    return "\n".join(lines)


def reverted_lines(report: CleanReport) -> list[str]:
    """Per namespace netprobe does not own, which of its additions it removed there and
    what it put back: "removed from adopted namespace X: address 10.9.0.5/24 on eth0"."""
    lines = []
    tables = (("removed from", report.removed_additions), ("put back in", report.restored))
    for verb, table in tables:
        for ns, items in table.items():
            where = f"adopted namespace {ns}" if ns else "the root namespace"
            lines.append(f"{verb} {where}: {', '.join(items)}")
    return lines


def topo_up_summary(spec: Spec, record: RunRecord) -> str:
    """What `netprobe topo up` made, with how to enter each host and to remove it."""
    lines = [f"topology {spec.name} is up (remove it with: netprobe topo down {spec.name})"]
    width = max(len(h) for h in record.namespaces)
    for host, ns in record.namespaces.items():
        enter = f"ip netns exec {ns} bash" if ns else "(the root namespace)"
        lines.append(f"  {host:<{width}}  {enter}")
    return "\n".join(lines)


def host_view_text(view: HostView) -> str:
    """One host's links, addresses and routes, as `netprobe topo show` prints them. In an
    adopted namespace a leading `+` marks what netprobe added (its links, the addresses
    and routes it gave to what was there); the rest was there before."""
    note = ", adopted: + marks what netprobe added" if view.adopted else ""
    lines = [f"{view.host}  ({view.namespace}{note})"]
    for link in view.links:
        state = "UP" if link.up else "DOWN"
        state += "" if link.carrier or not link.up else " no-carrier"
        master = f" master {link.master}" if link.master else ""
        mine = view.is_mine(link)
        addrs = " ".join(
            ("+" if view.is_added(f"{a} on {link.name}") else "") + a for a in link.addresses
        )
        qdisc = f"  qdisc {link.qdisc}" if link.qdisc else ""
        lines.append(
            f"{'+' if mine else ' '} {link.name:<15} {link.kind:<8} {state:<14} {link.mac} "
            f"mtu {link.mtu}{master}  {addrs}{qdisc}".rstrip()
        )
    lines += [f"{'+' if view.is_added(r) else ' '} route {r}" for r in view.routes]
    return "\n".join(lines)


def runs_table(records: Sequence[RunRecord]) -> Any:
    """`netprobe topo list`'s table: each topology run, its state and owner."""
    table = Table(title="netprobe topologies")
    for column in ("name", "run id", "state", "hosts", "owner pid"):
        table.add_column(column)
    for rec in records:
        state = "persistent" if rec.persistent else ("running" if is_alive(rec) else "dead")
        table.add_row(rec.name, rec.runid, state, str(len(rec.namespaces)), str(rec.pid))
    return table


def checks_table(registrations: Mapping[str, Registration]) -> Any:
    """The registered checks, what they prove, and whether this machine has what they need."""
    from .._capabilities import probe
    from ..check import load_check

    table = Table(title="netprobe checks")
    for column in ("check", "proves", "needs", "here"):
        table.add_column(column)
    for name, reg in registrations.items():
        try:
            check = load_check(name)
        except Exception as exc:  # a broken third-party entry point must not hide the rest
            table.add_row(name, f"cannot load {reg.target}: {exc}", "", "[red]broken[/]")
            continue
        missing = [c.name for c in probe(check.requires) if not c.present]
        missing += [f"reference topology {check.reference}"] if _no_reference(check) else []
        here = "[green]yes[/]" if not missing else f"[red]no: {', '.join(missing)}[/]"
        table.add_row(name, check.summary, ", ".join(check.requires), here)
    return table


def _no_reference(check: Check) -> bool:
    from ..errors import NetprobeError

    try:
        check.reference_file()
    except NetprobeError:
        return True
    return False


def check_details(check: Check) -> str:
    """One check in full: what it proves, its reference topology, needs and parameters."""
    from .._capabilities import probe

    missing = [c.name for c in probe(check.requires) if not c.present]
    lines = [
        f"{check.name}: {check.summary}",
        f"  reference topology: {check.reference}"
        + (" (not found: the check cannot run)" if _no_reference(check) else ""),
        f"  needs: {', '.join(check.requires) or 'nothing special'}"
        + (f" (missing here: {', '.join(missing)})" if missing else ""),
    ]
    taken = check.parameters()
    if taken:
        lines.append("  parameters (--KEY VALUE or -p KEY=VALUE):")
        width = max(len(k) for k in taken)
        lines += [f"    {k:{width}}  {v}" for k, v in taken.items()]
    else:
        lines.append("  parameters: none")
    return "\n".join(lines)


def results_table(results: Sequence[Result]) -> Any:
    """One row per check: its verdict, time and summary."""
    table = Table(title="netprobe check results")
    for column in ("check", "verdict", "time", "summary"):
        table.add_column(column)
    for result in results:
        style = _STYLE[result.status.value]
        table.add_row(
            result.check,
            f"[{style}]{result.status.value}[/]",
            f"{result.duration:.2f} s",
            result.summary,
        )
    return table


def result_details(result: Result) -> Any:
    """A result's evidence, for printing below the table."""
    from rich.text import Text

    return Text(result.evidence() + "\n")
