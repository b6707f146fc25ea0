"""Undoing what a run did in namespaces it does not own (adopted ones, the root one).

Everything needed is in the run's record, written *before* each change, so the same code
serves a normal teardown, `netprobe topo down` and `netprobe clean` after a kill:

- `foreign_links`: the kernel names of links the run creates there. Each is tagged with
  the alias netprobe:RUNID right after creation; a link is removed if it carries the tag,
  or if it is on the list and untagged (created, then killed before it was tagged).
- `existing`: links that were there before and that the run only uses; never removed.
- `undo`: old sysctl values to write back, routes to delete, addresses it added to
  existing links, the mtu and up state those had before the run changed them, and nft
  tables to delete (an explanation's trace table: `{"ns": …, "nft_table": [family, name]}`).

What was undone comes back in words, by namespace, so the caller can say which of its
additions it took away from a namespace that is not its own.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

from .._model.spec import Route
from . import netns, owner
from .links import IFF_UP, address_message, raise_up, route_message
from .netlink import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_NEWLINK,
    NetlinkError,
    Rtnl,
    link_msg,
)

_GONE = (2, 3, 19, 99)  # ENOENT, ESRCH, ENODEV, EADDRNOTAVAIL: gone already, or by hand


@dataclass
class Reverted:
    """What undoing a run's changes did, by namespace ("" = root)."""

    removed: dict[str, list[str]] = field(default_factory=dict)  # what it had added
    restored: dict[str, list[str]] = field(default_factory=dict)  # what it put back
    links: list[str] = field(default_factory=list)  # "NS:NAME" ("root:NAME") of links removed
    problems: list[str] = field(default_factory=list)


def revert(record: owner.RunRecord) -> Reverted:
    """Undo the run's changes in foreign namespaces."""
    done = Reverted()
    tag = owner.link_tag(record.runid)
    places = {*record.foreign_links, *(e["ns"] for e in record.undo)}
    for ns in sorted(places):
        if ns and not netns.exists(ns):
            continue  # an adopted namespace deleted by its owner: nothing left to undo
        fd = netns.open_fd(ns) if ns else netns.open_current()
        try:
            with Rtnl(fd) as nl:
                entries = [e for e in record.undo if e["ns"] == ns]
                for entry in reversed(entries):
                    _undo_entry(nl, fd, entry, done)
                names = record.foreign_links.get(ns, [])
                keep = record.existing.get(ns, {})
                for name in _remove_links(nl, tag, names, keep):
                    done.links.append(f"{ns or 'root'}:{name}")
                    done.removed.setdefault(ns, []).append(f"link {name}")
        finally:
            os.close(fd)
    return done


def _undo_entry(nl: Rtnl, fd: int, entry: dict[str, Any], done: Reverted) -> None:
    try:
        removed, words = _apply(nl, fd, entry)
    except NetlinkError as exc:
        if exc.code not in _GONE:
            done.problems.append(f"undoing {entry}: {exc}")
        return
    except FileNotFoundError:
        return  # a per-interface sysctl of a link that is gone
    except OSError as exc:
        done.problems.append(f"undoing {entry}: {exc.strerror}")
        return
    (done.removed if removed else done.restored).setdefault(entry["ns"], []).append(words)


def _apply(nl: Rtnl, fd: int, entry: dict[str, Any]) -> tuple[bool, str]:
    """Undo one entry: (whether it removed an addition, what it did in words)."""
    if "route" in entry:
        route = Route(**entry["route"])
        oif = nl.index(route.dev) if route.dev else None
        nl.request(route_message(route, oif), RTM_DELROUTE)
        return True, "route " + route_words(route)
    if "nft_table" in entry:
        family, name = entry["nft_table"]
        problems = _delete_table(fd, entry["nft_table"])
        if problems:
            raise OSError(0, problems[0])
        return True, f"nft table {family} {name}"
    if "address" in entry:
        addr = ipaddress.ip_interface(entry["address"])
        nl.request(address_message(nl.index(entry["dev"]), addr, dad=True), RTM_DELADDR)
        return True, f"address {addr} on {entry['dev']}"
    if "link" in entry:
        msg = link_msg(0, IFLA_IFNAME=entry["link"])
        if "mtu" in entry:
            msg["attrs"].append(("IFLA_MTU", entry["mtu"]))
            nl.request(msg, RTM_NEWLINK)
            return False, f"mtu {entry['mtu']} on {entry['link']}"
        nl.request(raise_up(msg) if entry["up"] else _lower(msg), RTM_NEWLINK)
        return False, f"{entry['link']} {'up' if entry['up'] else 'down'}"
    with netns.entered(fd), open(entry["sysctl"], "w") as out:
        out.write(entry["value"])
    key = entry["sysctl"].removeprefix("/proc/sys/").replace("/", ".")
    return False, f"{key} = {entry['value']}"


def _lower(msg: Any) -> Any:
    msg["change"] = IFF_UP  # and IFF_UP cleared in the flags
    return msg


def route_words(route: Route) -> str:
    """A route as `ip route` would write it: "10.1.0.0/16 via 10.9.0.1 dev eth0"."""
    to = route.to if route.to in ("default", "default6") else str(
        ipaddress.ip_network(route.to, strict=False)
    )
    words = [to]
    words += [f"via {route.via}"] if route.via else []
    words += [f"dev {route.dev}"] if route.dev else []
    words += [f"metric {route.metric}"] if route.metric is not None else []
    return " ".join(words)


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


def _remove_links(nl: Rtnl, tag: str, names: list[str], keep: dict[str, int]) -> list[str]:
    removed = []
    kept = set(keep.values())
    for name, link in nl.link_states().items():
        if name in keep or link.index in kept:
            continue  # it was there before the run: never netprobe's to remove
        if link.alias == tag or (name in names and not link.alias):
            try:
                nl.request(link_msg(link.index), RTM_DELLINK)
                removed.append(name)
            except NetlinkError as exc:
                if exc.code not in _GONE:  # a veth's peer goes with it
                    raise
    return removed

