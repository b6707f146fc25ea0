"""Finding a topology by the name a user typed: exactly that name, never a look-alike.

A persistent topology's run id is its name made safe for namespace names (`relcol-a`
and `relcol.a` both become `relcol_a`), so the run id alone cannot say which name was
meant: a record is found by its recorded name, and a name that matches none is an
error that suggests the near ones.
"""

from __future__ import annotations

import difflib

from ...errors import TopologyError
from . import owner


def find_persistent(name: str, records: list[owner.RunRecord] | None = None) -> owner.RunRecord:
    """The record of the topology `topo up` made under exactly `name` (or whose
    `topo up` was killed while building); TopologyError naming near names otherwise."""
    records = owner.read_records() if records is None else records
    runid = owner.persistent_runid(name)
    for record in records:
        if record.name == name and record.runid == runid and _topo_up(record):
            return record
    raise _not_up(name, [r.name for r in records if r.runid == owner.persistent_runid(r.name)])


def find_shown(name: str, records: list[owner.RunRecord] | None = None) -> owner.RunRecord:
    """What `topo show NAME` shows: a persistent topology named exactly `name`, or the
    run whose run id is `name` (a check or a test in progress)."""
    records = owner.read_records() if records is None else records
    for record in records:
        if name == (record.name if record.persistent else record.runid):
            return record
    known = [r.name if r.persistent else r.runid for r in records]
    raise _not_up(name, known)


def _topo_up(record: owner.RunRecord) -> bool:
    # a `topo up` killed while building left a record that is not persistent yet
    return record.persistent or not owner.is_alive(record)


def _not_up(name: str, known: list[str]) -> TopologyError:
    runid = owner.persistent_runid(name)
    near = [k for k in known if k != name and owner.persistent_runid(k) == runid]
    near += [k for k in difflib.get_close_matches(name, known, n=3) if k not in near]
    hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
    return TopologyError(f"no topology named {name!r} is up{hint} (see `netprobe topo list`)")
