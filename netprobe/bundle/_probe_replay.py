"""Replaying a probe bundle: rebuild its network, send the same probe with netprobe, and
compare how it ends with how it ended when recorded."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TopologyError
from ..expect import ProbeResult
from ..expect import probe as send_probe
from ..topology import Topology, build, load
from ._live import add_neighbours
from ._probe_repro import LISTENER
from ._probe_write import write_probe_bundle


@dataclass(frozen=True)
class ProbeReplay:
    """A probe bundle's recording beside the same probe sent again on its rebuilt network;
    `bundle`: the new bundle, where the probe failed again and one was asked for."""

    recorded: dict[str, Any]
    result: ProbeResult
    bundle: str | None = None

    @property
    def matches(self) -> bool:
        """True when the probe ends the same way (the same ending; where may differ)."""
        return bool(self.result.ending.name == self.recorded["diagnosis"]["probe"]["ending"])

    def text(self) -> str:
        """Both endings, then the new probe's story, as `netprobe replay` prints them."""
        old = self.recorded["diagnosis"]["probe"]
        was = old["ending_text"] + (f" at {old['where']}" if old.get("where") else "")
        now = self.result.ending.value + (f" at {self.result.where}" if self.result.where else "")
        head = "the same ending" if self.matches else "differs from the recording"
        lines = [f"probe {self.result.sender} → {self.result.target}: recorded {was}, "
                 f"now {now}: {head}"]  # fmt: skip
        lines += ["  " + line for line in self.result.render().splitlines()]
        if self.bundle:
            lines.append(f"bug-report bundle: {self.bundle}")
        return "\n".join(lines)


def replay_probe(
    directory: Path, document: dict[str, Any], *, bundle_dir: str | Path | None = None
) -> ProbeReplay:
    """Build the bundle's topology (its neighbours added, a stand-in listening where a
    service listened), send its probe again and compare the endings."""
    probe = document["probe"]
    spec = load(directory / document["topology"])
    with build(spec) as topo:
        add_neighbours(topo, (document.get("rebuild") or {}).get("neighbours") or {})
        if document.get("listener"):
            _stand_in(topo, document["listener"], probe["to"])
        result = send_probe(
            topo, probe["from"], probe["to"], probe["proto"], probe.get("port"),
            timeout=float(probe.get("timeout") or 1.0), size=probe.get("size"),
        )  # fmt: skip
        bundle = None
        if bundle_dir is not None and not result.ok:
            diagnosis = {
                "ok": result.ok, "topology": spec.name, "hosts": list(topo.hosts),
                "probe": result.to_dict(), "explanation": None,
                "notes": [f"replayed from bundle {directory.name}"], "bundle": None,
            }  # fmt: skip
            bundle = str(
                write_probe_bundle(
                    diagnosis,
                    result.render(),
                    result,
                    topo,
                    bundle_dir,
                    size=probe.get("size"),
                    timeout=float(probe.get("timeout") or 1.0),
                    any_destination=bool(probe.get("any_destination")),
                )
            )
    return ProbeReplay(document, result, bundle)


def _stand_in(topo: Topology, listener: dict[str, Any], dst: str) -> None:
    """Start the stand-in listener in its host (stopped at teardown); wait until bound."""
    six = "6" if ":" in dst else "4"
    argv = [sys.executable, "-S", "-c", LISTENER, listener["proto"], str(listener["port"]), six]
    proc = topo.spawn(listener["host"], [*argv, "stay"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout is not None else ""
    if line.strip() != "ready":
        raise TopologyError(f"the stand-in listener in {listener['host']} did not start")


def probe_summary(document: dict[str, Any]) -> str:
    """The human summary of a probe bundle (`netprobe report`)."""
    probe, diagnosis = document["probe"], document["diagnosis"]
    seen = diagnosis["probe"]
    where = f" at {seen['where']}" if seen.get("where") else ""
    lines = [
        f"probe {probe['from']} → {probe['to']} {probe['service']}: "
        f"{seen['ending_text'].upper()}{where} — {seen['why']}",
        f"  recorded {document['created']} with netprobe {document['netprobe']} on "
        f"topology {diagnosis['topology']} ({', '.join(diagnosis['hosts'])})",
    ]
    causes = (diagnosis.get("explanation") or {}).get("causes") or []
    lines += [f"  why {n}: {c['text']}" for n, c in enumerate(causes, 1)]
    lines += [f"  note: {n}" for n in diagnosis.get("notes") or []]
    lines.append("  replay: netprobe replay DIR, or sudo sh DIR/repro.sh without netprobe")
    return "\n".join(lines)
