"""Bug-report bundles of a failed `probe`: the network it met, rebuilt, and the same probe.

Written while the topology is still up, into DIR/probe-YYYYmmddTHHMMSSZ-RUNID/:

    README.md         what was probed, how it ended, the ranked causes, how to rerun
    diagnosis.json    the diagnosis (format netprobe-bundle, kind probe), with the probe
    topology.yaml     the network as owned hosts (adopted namespaces rebuilt from their
                      live state), rulesets/ beside it; topology-discovered.yaml is what
                      discovery read, topology-given.yaml the spec the probe ran on
    topology.mmd      the picture as mermaid and DOT text (topology.svg where Graphviz is)
    state/HOST.json   links, addresses, routes, neighbours, FDB, sysctls, rulesets
    environment.json  kernel, distribution, libraries, capabilities
    repro.sh          rebuild, send the same probe with plain tools, say how it ended
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .._version import __version__
from ..expect import ProbeResult
from ..topology import Topology
from ..topology._model import picture
from ._asfound import as_found
from ._live import read_live, rebuild_document
from ._probe_readme import probe_readme
from ._probe_repro import probe_repro_script
from ._write import (
    FORMAT,
    MINOR,
    VERSION,
    Paths,
    macs_of,
    write_environment,
    write_file,
    write_picture,
    write_states,
    write_topology,
)

PROBE_KIND = "probe"
DOCUMENT = "diagnosis.json"


def write_probe_bundle(
    diagnosis: dict[str, Any],
    story: str,
    result: ProbeResult,
    topo: Topology,
    directory: str | os.PathLike[str],
    *,
    size: int | None = None,
    timeout: float = 1.0,
    any_destination: bool = False,
) -> Path:
    """Write the bundle of a failed probe; return its directory. `diagnosis`: the
    diagnosis as JSON data; `story`: it as text (what `netprobe probe` printed)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = Path(directory).resolve() / f"probe-{stamp}-{topo.runid}"
    path.mkdir(parents=True)
    secrets = Paths(path)
    if topo.spec.source:
        secrets.note(Path(topo.spec.source).resolve().parent, "")
    states = write_states(topo, path, secrets)
    found = as_found(topo, states)
    live = read_live(topo, found.spec)
    rulesets = write_topology(topo, found, live, path, secrets)
    spec = live.rebuilt.spec
    write_picture(spec, path)
    env = write_environment(path, secrets)
    probe = {
        "from": result.sender, "to": result.dst, "proto": result.proto, "port": result.port,
        "service": result.target.partition(" ")[2], "size": size, "timeout": timeout,
        "any_destination": any_destination,
    }  # fmt: skip
    document = {
        "format": FORMAT,
        "version": VERSION,
        "minor": MINOR,
        "kind": PROBE_KIND,
        "netprobe": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "probe": probe,
        "topology": "topology.yaml",
        "listener": _listener(topo, result),
        "diagnosis": diagnosis,
        "rebuild": rebuild_document(live),
    }
    document = json.loads(secrets.scrub(json.dumps(document)))
    write_file(path / DOCUMENT, json.dumps(document, indent=1))
    script = probe_repro_script(
        probe, document["diagnosis"]["probe"], spec, rulesets, macs_of(topo, states),
        live.rebuilt.neighbours, document["listener"],
    )  # fmt: skip
    write_file(path / "repro.sh", script, mode=0o755)
    text = probe_readme(document, env, picture.mermaid(spec), secrets.scrub(story), live.rebuilt)
    write_file(path / "README.md", secrets.scrub(text))
    return path


def _listener(topo: Topology, result: ProbeResult) -> dict[str, Any] | None:
    """The host holding the destination, where something listened on the probed tcp or
    udp port when the bundle was written (`ss`): repro.sh and replay stand one in."""
    if result.proto not in ("tcp", "udp") or result.port is None:
        return None
    held = topo.holder(result.dst)
    if held is None or topo.spec.host(held.host).root:
        return None
    flag = "-t" if result.proto == "tcp" else "-u"
    listening = topo.run(held.host, ["ss", "-Hln", flag, f"sport = :{result.port}"], timeout=10)
    if not listening.ok or not listening.stdout.strip():
        return None
    return {"host": held.host, "proto": result.proto, "port": result.port}
