"""What a bundle rebuilds of namespaces netprobe did not make: read them now, as they are.

Hosts adopted by the topology (not the root namespace, whose state stays private) are
discovered while the bundle is written, and made into owned hosts that rebuild them
(topology/_model/rebuild.py), so that replay and repro.sh rebuild what was really there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..topology import Spec, Topology, discover
from ..topology._model.dump import dump
from ..topology._model.rebuild import Rebuilt, rebuild


@dataclass(frozen=True)
class Live:
    """The rebuilt spec, and the discovered one it came from (None: nothing adopted)."""

    rebuilt: Rebuilt
    discovered: Spec | None


def read_live(topo: Topology, spec: Spec) -> Live:
    """`spec` (the topology's, as found) with its adopted hosts read from their kernels
    and rebuilt as owned ones."""
    adopted = [h.adopt for h in spec.hosts if h.adopt is not None and not h.root]
    if not adopted:
        return Live(Rebuilt(spec), None)
    names = [a for a in adopted if not a.startswith("pid:")]
    pids = [int(a[4:]) for a in adopted if a.startswith("pid:")]
    found = discover(names=names, pids=pids, name=spec.name)
    return Live(rebuild(spec, found), found)


def neighbours_document(live: Live) -> dict[str, list[dict[str, str]]]:
    """The permanent neighbours to add after building, as result.json keeps them."""
    return {
        host: [{"ip": n.ip, "mac": n.mac, "dev": n.dev} for n in entries]
        for host, entries in live.rebuilt.neighbours.items()
    }


def rebuild_document(live: Live) -> dict[str, Any] | None:
    """What result.json says of the rebuild (None when nothing was adopted)."""
    if live.discovered is None:
        return None
    return {
        "hosts": list(live.rebuilt.rebuilt),
        "discovered": "topology-discovered.yaml",
        "neighbours": neighbours_document(live),
        "notes": list(live.rebuilt.notes),
    }


def discovered_text(live: Live) -> str | None:
    """topology-discovered.yaml: the spec discovery gave, for reference."""
    return dump(live.discovered) if live.discovered is not None else None


def add_neighbours(topo: Topology, neighbours: dict[str, list[dict[str, str]]]) -> None:
    """The permanent neighbour entries a bundle recorded, added by host once it is built."""
    for host, entries in neighbours.items():
        for n in entries:
            argv = ["ip", "neigh", "replace", n["ip"], "lladdr", n["mac"], "dev", n["dev"]]
            topo.run(host, [*argv, "nud", "permanent"], check=True)
