"""Ownership: every object netprobe makes is traceable to a run, and every run to a process.

A run writes its record to /run/netprobe/RUNID.json *before* it creates anything, so a
run killed at any point leaves a record that names what to look for:

- namespaces it owns are named ``np-RUNID-HOST`` (RUNID never contains "-");
- links it makes in namespaces it does not own (the root namespace, adopted ones)
  carry the interface alias ``netprobe:RUNID``; links that were there before, which it
  only uses, are listed with their ifindex and never removed;
- daemons it starts (Open vSwitch's) are listed in the record as soon as they exist, and
  keep their files in its private directory /run/netprobe/ovs-RUNID.

The record also names the owning process (pid and its start time, so a recycled pid
is not mistaken for the owner) and whether the run is persistent (`netprobe topo up`).
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from typing import Any

RUN_DIR = "/run/netprobe"
NETNS_DIR = "/run/netns"
SESSION_ENV = "NETPROBE_SESSION"
NS_PREFIX = "np-"


@dataclass(frozen=True)
class RunRecord:
    """What a run owns and who owns the run."""

    runid: str
    pid: int
    start_time: int
    name: str
    persistent: bool = False
    adopted: tuple[str, ...] = ()
    root: bool = False
    spec_path: str | None = None
    namespaces: dict[str, str] = field(default_factory=dict)  # host → netns ("" = root)
    # In namespaces the run does not own ("" = root): links it creates, and how to undo
    # its other changes there (see undo.py). Written before each change is made.
    foreign_links: dict[str, list[str]] = field(default_factory=dict)
    undo: list[dict[str, Any]] = field(default_factory=list)
    # Links it uses there as they exist, name → ifindex: never removed, whatever their name.
    existing: dict[str, dict[str, int]] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    # Daemons the run started inside its hosts: host, name, pid, start_time, dir.
    daemons: list[dict[str, Any]] = field(default_factory=list)
    # Forked workers (`check all`): name, pid, start_time. (Processes it execs carry
    # NETPROBE_RUN=RUNID in their environment instead: see process.py.)
    processes: list[dict[str, Any]] = field(default_factory=list)
    # The test session (or other caller) the run belongs to: NETPROBE_SESSION, if set.
    session: str = ""


def process_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19])


def current_session() -> str:
    """The session new runs belong to (NETPROBE_SESSION), so that a test session can
    tell its own leftovers from those of other sessions and labs on the machine. A
    session started inside another is named OUTER/INNER: it belongs to both."""
    return os.environ.get(SESSION_ENV, "")


def in_session(record: RunRecord, session: str) -> bool:
    """Whether the run belongs to `session` (or to a session nested in it)."""
    return record.session == session or record.session.startswith(session + "/")


def current_owner() -> tuple[int, int]:
    """This process's pid and start time, which identify it as a run's owner."""
    pid = os.getpid()
    start = process_start_time(pid)
    assert start is not None
    return pid, start


def is_alive(record: RunRecord) -> bool:
    """True while `record`'s owner runs (same pid and start time: not a reused pid)."""
    return process_start_time(record.pid) == record.start_time


def new_runid() -> str:
    """A fresh id for an ephemeral run: 6 hex digits not used by any live record."""
    taken = {r.runid for r in read_records()}
    while True:
        runid = secrets.token_hex(3)
        if runid not in taken:
            return runid


def persistent_runid(name: str) -> str:
    """Persistent runs use the topology's name, so `ip netns` shows np-redblue-red."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def ns_prefix(runid: str) -> str:
    """The prefix of every namespace of run `runid`."""
    return f"{NS_PREFIX}{runid}-"


def ns_name(runid: str, host: str) -> str:
    """The namespace name of `host` in run `runid`: np-RUNID-HOST."""
    return f"{ns_prefix(runid)}{host}"


def runid_of(namespace: str) -> str | None:
    """RUNID of a namespace named np-RUNID-HOST (run ids never contain "-"), else None."""
    if not namespace.startswith(NS_PREFIX):
        return None
    runid, sep, _host = namespace.removeprefix(NS_PREFIX).partition("-")
    return runid if sep else None


def link_tag(runid: str) -> str:
    """The alias that marks a root-namespace link as run `runid`'s."""
    return f"netprobe:{runid}"


def root_ifname(runid: str, name: str) -> str:
    """Links made in the root namespace get a run-specific prefix: np + 4 hex digits."""
    digest = hashlib.sha1(runid.encode()).hexdigest()[:4]
    return f"np{digest}{name}"


def private_dir(runid: str) -> str:
    """The run's own directory for daemons' sockets, databases and logs."""
    return os.path.join(RUN_DIR, f"ovs-{runid}")


def _record_path(runid: str) -> str:
    return os.path.join(RUN_DIR, f"{runid}.json")


def register(record: RunRecord) -> None:
    """Write the record atomically; refuse if the run id is taken."""
    os.makedirs(RUN_DIR, mode=0o755, exist_ok=True)
    path = _record_path(record.runid)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as out:
        json.dump(asdict(record), out)
    try:
        os.link(tmp, path)  # fails if another run holds this id
    finally:
        os.unlink(tmp)


def update(record: RunRecord) -> None:
    """Replace an existing record (a run that becomes persistent changes its owner)."""
    path = _record_path(record.runid)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as out:
        json.dump(asdict(record), out)
    os.replace(tmp, path)


def unregister(runid: str) -> None:
    """Remove run `runid`'s record (gone already is fine), not while `locked` holds it."""
    with locked(runid), suppress(FileNotFoundError):
        os.unlink(_record_path(runid))


@contextmanager
def locked(runid: str) -> Iterator[bool]:
    """Run `runid`'s record held for a read-modify-write (an exclusive flock): yields
    whether there is a record."""
    fd = _lock(_record_path(runid))
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def _lock(path: str) -> int | None:
    # Writes replace the file: the lock counts only on the file still there once held.
    while True:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        fcntl.flock(fd, fcntl.LOCK_EX)
        with suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        os.close(fd)  # replaced or removed while this waited: lock what is there now


def stale_temporaries() -> list[str]:
    """Half-written records (RUNID.json.PID.tmp) of processes that are gone: a run
    killed between writing its record and putting it in place."""
    stale = []
    for path in glob.glob(os.path.join(RUN_DIR, "*.json.*.tmp")):
        pid = path.rsplit(".", 2)[-2]
        if pid.isdigit() and process_start_time(int(pid)) is None:
            stale.append(path)
    return sorted(stale)


def read_records() -> list[RunRecord]:
    """Every run record in the run directory, by run id (unreadable ones left out)."""
    try:
        names = sorted(os.listdir(RUN_DIR))
    except FileNotFoundError:
        return []
    records = []
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(RUN_DIR, name)) as src:
                raw = json.load(src)
            if not isinstance(raw, dict):
                continue
            raw["adopted"] = tuple(raw.get("adopted", ()))
            raw["namespaces"] = dict(raw.get("namespaces", {}))
            raw["foreign_links"] = dict(raw.get("foreign_links", {}))
            raw["undo"] = list(raw.get("undo", []))
            raw["existing"] = dict(raw.get("existing", {}))
            raw["daemons"] = list(raw.get("daemons", []))
            raw["processes"] = list(raw.get("processes", []))
            records.append(RunRecord(**raw))
        except (OSError, ValueError, TypeError, AttributeError):
            continue  # being written, or not ours: never act on what we cannot read
    return records


@contextmanager
def scratch_run(purpose: str) -> Iterator[str]:
    """A short-lived run for probes (doctor, feature tests): registered, then removed."""
    pid, start = current_owner()
    runid = new_runid()
    register(
        RunRecord(
            runid=runid, pid=pid, start_time=start, name=purpose, session=current_session()
        )
    )
    try:
        yield runid
    finally:
        # A namespace it made and could not remove (interrupted on the way) keeps the
        # record, so that `netprobe clean` still knows whose it is.
        if not glob.glob(os.path.join(NETNS_DIR, glob.escape(ns_prefix(runid)) + "*")):
            unregister(runid)
