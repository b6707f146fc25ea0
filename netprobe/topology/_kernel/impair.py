"""Impairments on a link's sending side, with the `tc` tool: netem (delay, jitter, loss,
duplicate, reorder) as the root qdisc with tbf (the rate limit and its queue) beneath it,
or tbf alone. A kernel without netem gets one line saying so, with the remedy.

Qdiscs go with their link: a namespace netprobe owns takes them away when it goes.
Only links netprobe made are impaired: an existing link's qdisc is its owner's.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...errors import SetupError, SpecError, TopologyError
from .._model.impair import Impair
from . import netns, owner

if TYPE_CHECKING:
    from .live import Topology

NETEM_REMEDY = (
    "load sch_netem (modprobe sch_netem; a kernel built with CONFIG_NET_SCH_NETEM), or run "
    "where the kernel has it: the full-kernel VM tier (`make vm-test`, netprobe.vm)"
)
NO_QDISC = ("Specified qdisc kind is unknown", "Unknown qdisc")
_NONE_TO_DELETE = ("handle of zero", "Invalid handle", "No such file")


def commands(dev: str, imp: Impair) -> list[list[str]]:
    """The tc commands (after `tc`) that give `dev` the impairments `imp`."""
    netem, tbf = imp.tc_netem(), imp.tc_tbf()
    if netem and tbf:
        return [
            ["qdisc", "replace", "dev", dev, "root", "handle", "1:", "netem", *netem],
            ["qdisc", "replace", "dev", dev, "parent", "1:1", "handle", "10:", "tbf", *tbf],
        ]
    kind, args = ("netem", netem) if netem else ("tbf", tbf)
    return [["qdisc", "replace", "dev", dev, "root", "handle", "1:", kind, *args]]


def _tc(ns: str, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    argv = ["tc", *args]
    try:
        return subprocess.run(netns.exec_argv(ns, argv) if ns else argv, capture_output=True,
                              text=True, timeout=30, check=False)  # fmt: skip
    except FileNotFoundError:
        raise SetupError("impairing a link needs the tc tool",
                         remedy="apt-get install iproute2") from None  # fmt: skip


def apply(ns: str, dev: str, imp: Impair, where: str) -> None:
    """Give `dev` in namespace `ns` ("": this one) the impairments `imp`, replacing any
    it had; `where` (HOST:IF) names it in errors."""
    clear(ns, dev, where)
    for args in commands(dev, imp):
        done = _tc(ns, args)
        if done.returncode == 0:
            continue
        error = done.stderr.strip().removeprefix("Error: ")
        if "netem" in args and any(s in error for s in NO_QDISC):
            missing = SetupError(  # one line: the remedy follows the fault
                f"impairing {where} with {imp.words()}: this kernel has no netem (delay, "
                f"jitter, loss, duplicate, reorder): {NETEM_REMEDY}")  # fmt: skip
            missing.remedy = NETEM_REMEDY
            raise missing
        clear(ns, dev, where)
        raise TopologyError(f"impairing {where} ({imp.words()}): tc {' '.join(args)}: {error}",
                            obj=where)  # fmt: skip


def clear(ns: str, dev: str, where: str) -> bool:
    """Remove `dev`'s root qdisc (the kernel's default comes back); False: it had none."""
    done = _tc(ns, ["qdisc", "del", "dev", dev, "root"])
    if done.returncode == 0:
        return True
    if any(s in done.stderr for s in _NONE_TO_DELETE):
        return False
    raise TopologyError(f"clearing the impairments of {where}: {done.stderr.strip()}", obj=where)


def shown(ns: str, dev: str) -> list[dict[str, object]]:
    """`dev`'s qdiscs as `tc -j qdisc show` reports them (kind, handle, options)."""
    done = _tc(ns, ["-j", "qdisc", "show", "dev", dev])
    if done.returncode != 0:
        return []
    found: list[dict[str, object]] = json.loads(done.stdout or "[]")
    return found


def described(ns: str, dev: str) -> str | None:
    """`dev`'s egress qdiscs in tc's words (`tc qdisc show`, one a line, "qdisc" and its
    refcnt left out, joined by "; "); "" where the root one is the kernel's own (handle
    0:); None where tc cannot say (missing, failing, too slow)."""
    try:
        done = _tc(ns, ["qdisc", "show", "dev", dev])
    except (SetupError, OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.split() for line in done.stdout.splitlines()]
    egress = [w for w in lines if w[:1] == ["qdisc"] and len(w) > 2 and w[1] not in _INGRESS]
    root = next((w for w in egress if "root" in w), None)
    if done.returncode != 0 or root is None:
        return None
    return "" if root[2] == "0:" else "; ".join(_words(w) for w in egress)


_INGRESS = ("ingress", "clsact")  # what arrives, not the queue of what is sent


def _words(line: list[str]) -> str:
    out = line[1:]
    if "refcnt" in out:
        at = out.index("refcnt")
        del out[at : at + 2]
    return " ".join(out)


def apply_spec(topo: Topology) -> None:
    """Every impairment the spec gives, on the links just built."""
    for host in topo.spec.hosts:
        for iface in host.interfaces:
            if iface.impair is not None:
                ns = topo.hosts[host.name].ns or ""
                apply(ns, topo.ifname(host.name, iface.name), iface.impair,
                      f"{host.name}:{iface.name}")  # fmt: skip


def impair_lab(name: str, port: str, imp: Impair | None) -> str:
    """Give HOST:IF of the running lab `name` (a `topo up` name, or a run id) the
    impairments `imp`, or clear them (None). Returns what was done, in words."""
    from ..._privilege import require_root
    from .named import find_shown

    require_root()
    host, _, dev = port.partition(":")
    if not host or not dev:
        raise SpecError(f"say which interface as HOST:IF, not {port!r}")
    record = find_shown(name)
    if host not in record.namespaces:
        raise TopologyError(f"lab {name!r} has no host {host!r} (its hosts: "
                            f"{', '.join(sorted(record.namespaces))})", obj=host)  # fmt: skip
    ns = record.namespaces[host]
    if not ns:
        raise TopologyError(f"{host} is the machine's own (root) namespace: impair the far "
                            "end of its link instead", obj=host)  # fmt: skip
    links = _link_aliases(ns)
    if dev not in links:
        raise TopologyError(f"host {host!r} of lab {name!r} has no interface {dev!r} (it has: "
                            f"{', '.join(sorted(links))})", obj=port)  # fmt: skip
    if not _made_by(record, ns, links[dev]):
        # its qdisc is its owner's: deleting it could not be undone
        raise TopologyError(f"{port} of lab {name!r} is not a link netprobe made: it is in "
                            f"adopted namespace {ns!r} and was not made by the lab, so "
                            "netprobe leaves its queue alone", obj=port)  # fmt: skip
    if imp is None:
        had = clear(ns, dev, port)
        return f"{port}: impairments removed" if had else f"{port}: had no impairments"
    apply(ns, dev, imp, port)
    return f"{port}: {imp.words()}"


def _made_by(record: owner.RunRecord, ns: str, alias: str | None) -> bool:
    """Whether a link of `ns` with alias `alias` is the run's: every link of a namespace
    the run owns is; in an adopted one, only those carrying the run's tag."""
    if ns not in record.adopted and owner.runid_of(ns) == record.runid:
        return True
    return alias == owner.link_tag(record.runid)


def _link_aliases(ns: str) -> dict[str, str | None]:
    """The links of `ns` (loopback aside), name → alias."""
    from .netlink import Rtnl

    fd = netns.open_fd(ns)
    try:
        with Rtnl(fd) as nl:
            return {n: s.alias for n, s in nl.link_states().items() if n != "lo"}
    finally:
        os.close(fd)
