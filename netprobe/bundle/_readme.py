"""A bundle's README.md: the failure told for a person who has only this directory."""

from __future__ import annotations

from typing import Any

from ..topology._model.rebuild import Rebuilt

_FILES = """\
| file | what it holds |
|---|---|
| `result.json` | the result, versioned (format `netprobe-bundle`, version {version}) |
| `topology.yaml` | the exact topology spec (adopted namespaces rebuilt from their live \
state: see `topology-discovered.yaml`, `topology-given.yaml`); `rulesets/` and `inputs/` \
beside it |
| `topology.mmd`, `topology.dot` | the picture above, as mermaid and Graphviz text |
| `path.svg`, `path.mmd` | a failed step's probe drawn on the topology, where it died, why |
| `injected.pcapng` | every frame netprobe sent, one interface per port |
| `pcaps/step-NN/` | what each watched port saw during step NN |
| `state/HOST.json` | each host's links, addresses, routes, neighbours, FDB, sysctls, \
rulesets and conntrack, read just after the failure |
| `environment.json` | kernel, distribution, libraries and capabilities |
| `repro.sh` | rebuilds the topology and replays the frames without netprobe |
"""


def readme(
    document: dict[str, Any],
    env: dict[str, Any],
    mermaid: str,
    *,
    ovs: bool = False,
    changes: list[str] | None = None,
    rebuilt: Rebuilt | None = None,
    path_mermaid: str | None = None,
) -> str:
    """The README text for a bundle's result.json `document` (`ovs`: the topology has
    Open vSwitch bridges, which repro.sh does not rebuild; `path_mermaid`: the failed
    step's path drawn on the topology)."""
    result = document["result"]
    lines = [
        f"# netprobe {result['check']}: {result['status']}",
        "",
        f"**{result['summary']}**",
        "",
    ]
    if result.get("diagnosis"):
        lines += [f"Diagnosis: {result['diagnosis']}", ""]
    lines += [
        f"Check `{result['check']}` ran on topology `{result.get('topology') or '?'}`"
        + _params(document["params"])
        + f" with netprobe {document['netprobe']}, on Linux {env['kernel']['release']} "
        f"({env['distribution']}), at {document['created']}.",
        "",
        "## Expected against observed",
        "",
        "| step | verdict | detail |",
        "|---|---|---|",
    ]
    lines += [f"| {s['name']} | {s['status']} | {_cell(s['detail'])} |" for s in result["steps"]]
    lines += _evidence(result["steps"])
    lines += _explanation(result)
    lines += _changes(changes or [])
    lines += rebuilt_section(rebuilt)
    if path_mermaid:
        lines += ["## Where it failed", "", "```mermaid", path_mermaid.rstrip(), "```", ""]
    lines += [
        "## The topology",
        "",
        "```mermaid",
        mermaid.rstrip(),
        "```",
        "",
        "## Replay",
        "",
        "- With netprobe: `netprobe replay .` in this directory rebuilds the topology, "
        "runs the check again and compares the outcome with this one, step by step.",
        _without_netprobe(result["steps"], ovs),
        "",
        "## Files",
        "",
        _FILES.format(version=document["version"]),
    ]
    return "\n".join(lines)


def _without_netprobe(steps: list[dict[str, Any]], ovs: bool) -> str:
    if ovs:
        return (
            "- Without netprobe: `repro.sh` cannot help here: it does not rebuild "
            "Open vSwitch bridges."
        )
    replayable = sum(1 for s in steps if s.get("expectation"))
    return (
        "- Without netprobe: `sudo sh repro.sh` (or `sudo PYTHON=/path/to/python3 sh "
        "repro.sh`) needs only iproute2, nft or iptables, and a python3 with scapy (it "
        "tries $PYTHON, each python3 on PATH and /usr/bin/python3, and exits 2 if none "
        "has scapy). It "
        "rebuilds the topology in fresh namespaces, sends the injected frames again and "
        "prints what came out where, with each step's verdict beside the recorded one. "
        f"It replays {replayable} of the {len(steps)} steps: the others sent no frames "
        "netprobe recorded (state read back, nmap scans; a DHCP server's answer, which "
        "carries no nonce, is judged by the xid and chaddr of the message it answers). "
        "A topology's DHCP servers and clients run again, dnsmasq and busybox udhcpc with "
        "netprobe's configuration. Changes made while the check ran "
        "(a link taken down, a timer waited for) are not replayed."
    )


def _changes(changes: list[str]) -> list[str]:
    if not changes:
        return []
    out = [
        "## Changed by hand before the check",
        "",
        "The topology was changed after it was built and before the check began. "
        "`topology.yaml` is the spec as found (replay and repro.sh rebuild that); "
        "`topology-given.yaml` is the one it was built from.",
        "",
    ]
    return out + [f"- {c}" for c in changes] + [""]


def rebuilt_section(rebuilt: Rebuilt | None) -> list[str]:
    """What was read of the adopted namespaces, and what of it is not rebuilt."""
    if rebuilt is None or not rebuilt.rebuilt:
        return []
    out = [
        "## Rebuilt from the live state",
        "",
        "These hosts were namespaces netprobe did not make (adopted): "
        + ", ".join(f"`{h}`" for h in rebuilt.rebuilt)
        + ". They were read as they were when this bundle was written (links, veth "
        "peers, bridges and their ports, TAPs, MACs, MTUs, addresses, routes not made by "
        "the kernel, permanent neighbours, the forwarding and rp_filter sysctls, the nft "
        "ruleset, which shows iptables-nft rules too), and `topology.yaml` makes them "
        "afresh: replay and repro.sh rebuild what was there. `topology-discovered.yaml` "
        "is what discovery read; `topology-given.yaml` the spec the run was given. The "
        "machine's own namespace, if the topology had it, is not read. A veth whose far "
        "end was in a namespace not read leads to a stub host with nothing else in it.",
        "",
    ]
    if rebuilt.neighbours:
        out += [
            "Permanent neighbour entries (added after the build, as a spec cannot say them): "
            + "; ".join(
                f"{h} {n.ip} at {n.mac} on {n.dev}"
                for h, entries in rebuilt.neighbours.items()
                for n in entries
            ),
            "",
        ]
    return out + [f"- {note}" for note in rebuilt.notes] + ([""] if rebuilt.notes else [])


def _params(params: dict[str, Any]) -> str:
    if not params:
        return ""
    return " with " + ", ".join(f"`{k}={v}`" for k, v in params.items())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:200]


def _evidence(steps: list[dict[str, Any]]) -> list[str]:
    out = [""]
    for step in steps:
        if step["status"] != "PASS" and step.get("evidence"):
            out += [f"### {step['name']}", "", "```text", step["evidence"], "```", ""]
    return out


def _explanation(result: dict[str, Any]) -> list[str]:
    causes = result.get("explanation") or []
    if not causes:
        return []
    out = ["## Why", ""]
    out += [f"{n}. {c['text']}" for n, c in enumerate(causes, 1)]
    return [*out, ""]
