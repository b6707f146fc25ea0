"""Undoing what a run did in namespaces it does not own (adopted ones, the root one).

Everything needed is in the run's record, written *before* each change, so the same code
serves a normal teardown, `netprobe topo down` and `netprobe clean` after a kill:

- `foreign_links`: the kernel names of links the run creates there. Each is tagged with
  the alias netprobe:RUNID right after creation; a link is removed if it carries the tag,
  or if it is on the list and untagged (created, then killed before it was tagged).
- `undo`: old sysctl values to write back, routes to delete, and nft tables to delete
  (an explanation's trace table: `{"ns": …, "nft_table": [family, name]}`).
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from .._model.spec import Route
from . import netns, owner
from .links import route_message
from .netlink import RTM_DELLINK, RTM_DELROUTE, NetlinkError, Rtnl, link_msg

_GONE = (2, 3, 19)  # ENOENT, ESRCH, ENODEV: already gone, with its link or by hand


def revert(record: owner.RunRecord) -> tuple[list[str], list[str]]:
    """Undo the run's changes in foreign namespaces: (links removed, problems)."""
    removed: list[str] = []
    problems: list[str] = []
    tag = owner.link_tag(record.runid)
    places = {*record.foreign_links, *(e["ns"] for e in record.undo)}
    for ns in places:
        if ns and not netns.exists(ns):
            continue  # an adopted namespace deleted by its owner: nothing left to undo
        fd = netns.open_fd(ns) if ns else netns.open_current()
        try:
            with Rtnl(fd) as nl:
                entries = [e for e in record.undo if e["ns"] == ns]
                problems += _undo_entries(nl, fd, reversed(entries))
                names = record.foreign_links.get(ns, [])
                removed += [f"{ns or 'root'}:{n}" for n in _remove_links(nl, tag, names)]
        finally:
            os.close(fd)
    return removed, problems


def _undo_entries(nl: Rtnl, fd: int, entries: Any) -> list[str]:
    problems = []
    for entry in entries:
        try:
            if "route" in entry:
                route = entry["route"]
                oif = nl.index(route["dev"]) if route.get("dev") else None
                nl.request(route_message(Route(**route), oif), RTM_DELROUTE)
            elif "nft_table" in entry:
                problems += _delete_table(fd, entry["nft_table"])
            else:
                with netns.entered(fd), open(entry["sysctl"], "w") as out:
                    out.write(entry["value"])
        except NetlinkError as exc:
            if exc.code not in _GONE:
                problems.append(f"undoing {entry}: {exc}")
        except FileNotFoundError:
            pass  # a per-interface sysctl of a link that is gone
        except OSError as exc:
            problems.append(f"undoing {entry}: {exc.strerror}")
    return problems


def _delete_table(fd: int, table: list[str]) -> list[str]:
    """Delete nft table (family, name) in the namespace `fd`, if it is still there."""
    family, name = table
    with netns.entered(fd):  # nft talks netlink in the caller's namespace
        listed = subprocess.run(["nft", "list", "table", family, name], capture_output=True)
        if listed.returncode != 0:
            return []  # gone already
        done = subprocess.run(["nft", "delete", "table", family, name], capture_output=True)
    err = done.stderr.decode(errors="replace").strip()
    return [f"deleting nft table {family} {name}: {err}"] if done.returncode else []


def _remove_links(nl: Rtnl, tag: str, names: list[str]) -> list[str]:
    removed = []
    for name, link in nl.link_states().items():
        if link.alias == tag or (name in names and not link.alias):
            try:
                nl.request(link_msg(link.index), RTM_DELLINK)
                removed.append(name)
            except NetlinkError as exc:
                if exc.code not in _GONE:  # a veth's peer goes with it
                    raise
    return removed
