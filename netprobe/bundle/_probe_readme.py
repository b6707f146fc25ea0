"""A probe bundle's README.md: the failed probe told for a person who has only this
directory."""

from __future__ import annotations

from typing import Any

from ..topology._model.rebuild import Rebuilt
from ._probe_repro import SEEN_AS
from ._readme import rebuilt_section

_FILES = """\
| file | what it holds |
|---|---|
| `diagnosis.json` | the probe and its diagnosis (format `netprobe-bundle`, version {version}, \
kind `probe`) |
| `topology.yaml` | the network as hosts netprobe makes (adopted namespaces rebuilt from \
their live state); `rulesets/` beside it |
| `topology-discovered.yaml`, `topology-given.yaml` | what discovery read; the spec the \
probe ran on |
| `topology.mmd`, `topology.dot` | the picture above, as mermaid and Graphviz text |
| `path.svg`, `path.mmd` | the probe drawn on the topology: its path, where it died, why |
| `state/HOST.json` | each host's links, addresses, routes, neighbours, FDB, sysctls, \
rulesets and conntrack, read just after the probe |
| `environment.json` | kernel, distribution, libraries and capabilities |
| `repro.sh` | rebuilds the network and sends the same probe with plain tools |
"""


def probe_readme(
    document: dict[str, Any], env: dict[str, Any], mermaid: str, story: str, rebuilt: Rebuilt
) -> str:
    """The README text of a probe bundle's `document` (diagnosis.json)."""
    probe, diagnosis = document["probe"], document["diagnosis"]
    seen = diagnosis["probe"]
    where = f" at {seen['where']}" if seen.get("where") else ""
    command = _command(probe)
    lines = [
        f"# netprobe probe {probe['from']} → {probe['to']} {probe['service']}: "
        f"{seen['ending_text'].upper()}",
        "",
        f"**{seen['ending_text']}{where}: {seen['why']}**",
        "",
        f"`{command}` was sent from {probe['from']}'s own stack on topology "
        f"`{diagnosis['topology']}` (hosts: {', '.join(diagnosis['hosts'])}) with netprobe "
        f"{document['netprobe']}, on Linux {env['kernel']['release']} "
        f"({env['distribution']}), at {document['created']}.",
        "",
        "## How it ended",
        "",
        "```text",
        story.rstrip(),
        "```",
        "",
    ]
    lines += _causes(diagnosis)
    lines += rebuilt_section(rebuilt)
    lines += ["## The topology", "", "```mermaid", mermaid.rstrip(), "```", ""]
    lines += _rerun(document, command)
    lines += ["## Files", "", _FILES.format(version=document["version"])]
    return "\n".join(lines)


def _command(probe: dict[str, Any]) -> str:
    size = f" --size {probe['size']}" if probe.get("size") else ""
    anyway = " --any-destination" if probe.get("any_destination") else ""
    return f"netprobe probe {probe['from']} {probe['to']} {probe['service']}{size}{anyway}"


def _causes(diagnosis: dict[str, Any]) -> list[str]:
    causes = (diagnosis.get("explanation") or {}).get("causes") or []
    if not causes:
        return []
    out = ["## Why", ""]
    out += [f"{n}. [{c['score']:.2f}] {c['text']}" for n, c in enumerate(causes, 1)]
    return [*out, ""]


def _rerun(document: dict[str, Any], command: str) -> list[str]:
    probe, ending = document["probe"], document["diagnosis"]["probe"]["ending"]
    tool = "`ping`" if probe["proto"] == "icmp" else "python3 -S with the socket module only"
    listener = document.get("listener")
    stand_in = (
        f" Something listened on {listener['proto']}/{listener['port']} in {listener['host']} "
        "when this was written: a stand-in listens there (tcp: accepts and closes; udp: "
        "sends each datagram back), which is all it knows of that service."
        if listener
        else ""
    )
    return [
        "## Rerun",
        "",
        "- With netprobe: `netprobe replay .` in this directory rebuilds the network from "
        "`topology.yaml`, sends the same probe with netprobe and says whether it ends the "
        "same way (exit 0 when it does, 1 when not).",
        f"- Without netprobe: `sudo sh repro.sh` rebuilds the network with `ip`, `nft` and "
        f"`sysctl` in fresh namespaces and sends the same probe from {probe['from']} with "
        f"{tool}.{stand_in} It prints the ending it saw (answered, refused, unreachable, not "
        "sent, timed out): plain tools see this one as "
        f"{' or '.join(SEEN_AS.get(ending, ('?',)))}. It exits 1 while the probe does not get "
        "through, 0 once it does, 2 when it cannot run. A udp service that does not answer "
        "looks timed out to it.",
        f"- On the network itself: `{command}`.",
        "",
    ]
