"""Find and remove what netprobe runs left behind, and nothing else.

A run's objects are removed only when its record says so: the owning process is gone
(a killed run), or the run is persistent and the user asked (`--all`, `topo down`).
Namespaces that look like netprobe's but have no record are reported, never touched.
"""

from __future__ import annotations

import glob
import os
from contextlib import suppress
from dataclasses import dataclass, field

from ..._privilege import require_root
from ...errors import TopologyError
from . import daemon, netns, ovs, owner, process, undo
from .named import find_persistent
from .netlink import Rtnl


@dataclass
class CleanReport:
    """What `clean` (or a teardown, or `topo down`) did and what it deliberately left alone.

    `removed_additions` and `restored` say, per namespace netprobe does not own (adopted
    ones; "" is the root namespace), which of its additions it took away there (links,
    addresses on existing links, routes) and what it put back as it was (sysctls, the mtu
    and up state of existing links), in words: "address 10.9.0.5/24 on eth0".
    """

    removed_runs: list[str] = field(default_factory=list)
    removed_namespaces: list[str] = field(default_factory=list)
    removed_links: list[str] = field(default_factory=list)
    stopped_daemons: list[str] = field(default_factory=list)
    removed_additions: dict[str, list[str]] = field(default_factory=dict)
    restored: dict[str, list[str]] = field(default_factory=dict)
    kept_live: list[str] = field(default_factory=list)
    kept_persistent: list[str] = field(default_factory=list)
    unknown_namespaces: list[str] = field(default_factory=list)
    removed_trace_instances: list[str] = field(default_factory=list)  # netprobe.clean's


def clean(*, all: bool = False) -> CleanReport:
    """Remove the leftovers of dead runs; with `all`, persistent topologies too."""

    require_root()
    report = CleanReport()
    _stop_orphans(report)
    names = netns.list_names()  # listed before the records: a record precedes its objects
    records = owner.read_records()
    for record in records:
        if record.persistent:  # its owner was `topo up`, long gone by design
            if all:
                remove_run(record, names, report)
            else:
                report.kept_persistent.append(record.name)
        elif owner.is_alive(record):
            report.kept_live.append(record.runid)
        else:
            remove_run(record, names, report)
    for path in owner.stale_temporaries():
        with suppress(FileNotFoundError):
            os.unlink(path)
    prefixes = tuple(owner.ns_prefix(r.runid) for r in records)
    report.stopped_daemons = list(dict.fromkeys(report.stopped_daemons))  # workers: once
    report.unknown_namespaces = [
        n for n in names if n.startswith(owner.NS_PREFIX) and not n.startswith(prefixes)
    ]
    return report


def _stop_orphans(report: CleanReport) -> None:
    """First the processes of dead runs: a worker of a killed `check all` still owns
    the topology it is running, and tears it down when told to (it is waited for)."""
    for record in owner.read_records():
        if not record.persistent and not owner.is_alive(record):
            stopped, _problems = process.stop_recorded(
                record.processes, grace=process.WORKER_GRACE
            )
            report.stopped_daemons += stopped


def down(name: str) -> CleanReport:
    """Remove the persistent topology `name` (`netprobe topo down`)."""

    require_root()
    record = find_persistent(name)  # exactly this name: never a look-alike's lab
    report = CleanReport()
    remove_run(record, netns.list_names(), report)
    return report


def remove_run(record: owner.RunRecord, names: list[str], report: CleanReport) -> None:
    """Stop the run's processes (its workers first: they tear down what they built when
    told to), then its daemons and remove their directory, undo its changes where it does
    not own the namespace, delete the namespaces it owns, then its record."""
    stopped, problems = process.stop_recorded(record.processes, grace=process.WORKER_GRACE)
    more, problems_tagged = process.stop_tagged(record.runid)
    stopped += more
    problems += problems_tagged
    more, problems_daemons = daemon.stop_recorded(
        [*record.daemons, *ovs.pidfile_daemons(record.runid)]
    )
    report.stopped_daemons += stopped + more
    problems += problems_daemons
    problems += ovs.remove_dirs(record.runid) if not problems else []
    problems += note_reverted(report, undo.revert(record))
    if problems:
        raise TopologyError(f"cleaning run {record.runid}: " + "; ".join(problems))
    prefix = owner.ns_prefix(record.runid)
    mine = [name for name in names if name.startswith(prefix)]
    failed = netns.delete_many(mine)
    report.removed_namespaces += [name for name in mine if name not in failed]
    if failed:  # the record is how a later `clean` finds what is left
        raise TopologyError(f"cleaning run {record.runid}: " + "; ".join(failed.values()))
    owner.unregister(record.runid)
    report.removed_runs.append(record.runid)


def note_reverted(report: CleanReport, done: undo.Reverted) -> list[str]:
    """Add what undoing a run did to `report`; returns the problems met."""
    report.removed_links += done.links
    pairs = ((report.removed_additions, done.removed), (report.restored, done.restored))
    for mine, theirs in pairs:
        for ns, items in theirs.items():
            mine.setdefault(ns, []).extend(items)
    return done.problems


def leftovers(session: str | None = None) -> list[str]:
    """Every netprobe object on the machine: records, np-* namespaces, tagged root links,
    daemons' private directories, processes tagged with a run id. With `session`, only
    the runs of that session (NETPROBE_SESSION) and what they made, and objects no
    record owns at all (ownerless: whose they were cannot be told)."""
    records = owner.read_records()
    every = {r.runid for r in records}
    mine = every if session is None else {r.runid for r in records if owner.in_session(r, session)}

    def counted(runid: str | None) -> bool:
        return runid in mine or runid not in every

    found = [f"record {r.runid} ({r.name})" for r in records if r.runid in mine]
    found += [f"half-written record {path}" for path in owner.stale_temporaries()]
    for directory in sorted(glob.glob(owner.private_dir("*"))):
        if counted(os.path.basename(directory).removeprefix("ovs-")):
            found.append(f"directory {directory}")
    for name in netns.list_names():
        if name.startswith(owner.NS_PREFIX) and counted(owner.runid_of(name)):
            found.append(f"namespace {name}")
    with Rtnl() as nl:
        for name, link in nl.links().items():
            alias = link.get_attr("IFLA_IFALIAS") or ""
            if alias.startswith("netprobe:") and counted(alias.removeprefix("netprobe:")):
                found.append(f"root link {name} ({alias})")
    found += [f"process {pid} of run {r}" for r in sorted(mine) for pid in process.tagged(r)]
    if session is not None:  # processes of the session's runs that are over
        found += [
            f"process {pid} of run {runid} (no longer recorded)"
            for pid, runid in process.tagged_in_session(session)
            if runid not in every
        ]
    return found

