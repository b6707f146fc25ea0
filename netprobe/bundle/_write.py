"""Bug-report bundles: everything someone else needs to see a failure for themselves.

Written while the topology is still up (the state dumps read the live kernel), into
DIR/CHECK-YYYYmmddTHHMMSSZ-RUNID/ (the run id keeps parallel runs apart):

    README.md        what was checked, expected against observed, the diagnosis, replay
    result.json      the Result, versioned (docs/json.md)
    topology.yaml    the exact spec, with rulesets/ and inputs/ beside it; adopted
                     namespaces rebuilt from their live state (topology-discovered.yaml
                     is what discovery read, topology-given.yaml the spec given)
    topology.mmd     the picture as mermaid and DOT text (topology.svg where Graphviz is)
    path.svg         a failed step's probe drawn on it, where it died and why (path.mmd too)
    injected.pcapng  every frame netprobe sent, one interface per port
    pcaps/           what each watched port saw, per step
    state/HOST.json  links, addresses, routes, neighbours, FDB, sysctls, rulesets, conntrack
    environment.json kernel, distribution, libraries, capabilities
    repro.sh         rebuild and replay without netprobe

Paths of the machine it was made on are rewritten relative to the bundle.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from ..check import Result
from ..errors import SetupError
from ..topology import Spec, Topology
from ..topology._kernel import ovs
from ..topology._model import picture
from ..topology._model.dump import dump
from ..traffic._pcap import write_pcap_ports
from ._asfound import AsFound, as_found
from ._environment import environment
from ._live import Live, discovered_text, read_live, rebuild_document
from ._pathpicture import failing_path, write_path_picture
from ._readme import readme
from ._repro import repro_script
from ._state import topology_state

FORMAT = "netprobe-bundle"
VERSION = 1
MINOR = 2  # fields added within version 1 (docs/json.md)


def write_bundle(
    result: Result,
    topo: Topology,
    directory: str | os.PathLike[str],
    *,
    params: Mapping[str, Any],
    archive: bool = False,
    before: dict[str, dict[str, Any]] | None = None,
    check_file: Path | None = None,
) -> Path:
    """Write the bundle of `result`; return its directory (the .tar.gz is beside it).
    `before`: the hosts' state read before the check began, for a topology that may have
    been changed by hand since it was built (see asfound). `check_file`: the file the
    check came from, when it is not a registered one (copied in, replay runs the copy)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = Path(directory).resolve() / f"{result.check}-{stamp}-{topo.runid}"
    path.mkdir(parents=True)
    secrets = Paths(path)
    if topo.spec.source:  # the topology file's own directory, e.g. the installed examples
        secrets.note(Path(topo.spec.source).resolve().parent, "")
    found = as_found(topo, before) if before else AsFound(topo.spec)
    live = read_live(topo, found.spec)
    rulesets = write_topology(topo, found, live, path, secrets)
    inputs = _copy_inputs(params, path, secrets)
    _write_pcaps(result, path)
    spec = live.rebuilt.spec
    write_picture(spec, path)
    drawn = failing_path(result, topo)
    path_text = write_path_picture(drawn, spec, path) if drawn is not None else None
    states = write_states(topo, path, secrets)
    env = write_environment(path, secrets)
    result.bundle = str(path)
    document = _document(result, inputs)
    if live.discovered is not None:
        document["rebuild"] = rebuild_document(live)
    if check_file is not None:
        (path / "check").mkdir()
        shutil.copy(check_file, path / "check" / check_file.name)
        document["check_file"] = f"check/{check_file.name}"
    text = secrets.scrub(json.dumps(document, indent=1))
    write_file(path / "result.json", text)
    document = json.loads(text)
    steps = document["result"]["steps"]
    macs = macs_of(topo, states)
    script = repro_script(result.check, spec, steps, rulesets, macs, live.rebuilt.neighbours)
    write_file(path / "repro.sh", script, mode=0o755)
    has_ovs = any(ovs.has_ovs(h) for h in topo.spec.hosts)
    text = readme(
        document, env, picture.mermaid(spec), ovs=has_ovs, changes=found.changes,
        rebuilt=live.rebuilt, path_mermaid=path_text,
    )  # fmt: skip
    write_file(path / "README.md", secrets.scrub(text))
    if archive:
        with tarfile.open(f"{path}.tar.gz", "w:gz") as tar:
            tar.add(path, arcname=path.name)
    return path


def _document(result: Result, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "minor": MINOR,
        "netprobe": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "check": result.check,
        "params": inputs,
        "topology": "topology.yaml",
        "result": result.to_dict(),
    }


def write_topology(
    topo: Topology, found: AsFound, live: Live, path: Path, secrets: Paths
) -> dict[str, str]:
    """topology.yaml (the spec as found, adopted hosts rebuilt from their live state),
    topology-given.yaml where that differs from the spec given, topology-discovered.yaml
    (what discovery read) and their rulesets; returns each ruleset's text by its path."""
    copied = _copy_rulesets(topo, path, secrets)
    made = found.rulesets | live.rebuilt.rulesets
    for name, text in made.items():
        write_file(path / name, text)

    def rename(spec_path: str) -> str:
        return copied[spec_path][0] if spec_path in copied else spec_path

    write_file(path / "topology.yaml", dump(live.rebuilt.spec, rename=rename))
    if found.changes or live.discovered is not None:
        write_file(path / "topology-given.yaml", dump(topo.spec, rename=rename))
    discovered = discovered_text(live)
    if discovered is not None:
        write_file(path / "topology-discovered.yaml", discovered)
    return {p: t for p, (_, t) in copied.items()} | made


def write_states(topo: Topology, path: Path, secrets: Paths) -> dict[str, dict[str, Any]]:
    """state/HOST.json of every host; the states by host."""
    states = topology_state(topo)
    for host, state in states.items():
        write_file(path / "state" / f"{host}.json", secrets.scrub(json.dumps(state, indent=1)))
    return states


def write_environment(path: Path, secrets: Paths) -> dict[str, Any]:
    """environment.json; the environment."""
    env = environment()
    write_file(path / "environment.json", secrets.scrub(json.dumps(env, indent=1)))
    return env


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file of the bundle (its directories made), with its permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


class Paths:
    """Absolute paths of this machine that must not appear in the bundle."""

    def __init__(self, bundle: Path) -> None:
        self.replace: dict[str, str] = {f"{bundle}/": "", str(bundle): "."}
        self.note(Path.cwd(), "")

    def note(self, directory: Path, relative: str) -> None:
        """Write `directory` (a path of this machine) as `relative` in the bundle."""
        self.replace.setdefault(f"{directory}/", relative)

    def scrub(self, text: str) -> str:
        """`text` with every noted path of this machine rewritten."""
        for old in sorted(self.replace, key=len, reverse=True):
            text = text.replace(old, self.replace[old])
        return text


def _copy_rulesets(topo: Topology, path: Path, secrets: Paths) -> dict[str, tuple[str, str]]:
    """Each ruleset file → (its name in the bundle, its text)."""
    out: dict[str, tuple[str, str]] = {}
    for host in topo.spec.hosts:
        for number, fw in enumerate(host.firewall, 1):
            name = f"rulesets/{host.name}-{number}{Path(fw.path).suffix or '.rules'}"
            text = Path(fw.path).read_text()
            write_file(path / name, text)
            out[fw.path] = (name, text)
            secrets.note(Path(fw.path).resolve().parent, "")
    return out


def _copy_inputs(params: Mapping[str, Any], path: Path, secrets: Paths) -> dict[str, Any]:
    """Parameters naming files (a policy, rulesets; a path, a comma-separated string or a
    list of them) point at numbered copies in inputs/; other values stay as they are."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        parts = _file_parts(value)
        if not parts:
            out[key] = value if _is_plain(value) else str(value)
            continue
        copies = []
        for part in parts:
            name = f"inputs/{len(list(_mkdir(path / 'inputs').iterdir())) + 1}-{Path(part).name}"
            shutil.copyfile(part, path / name)
            secrets.note(Path(part).resolve().parent, "")
            copies.append(name)
        out[key] = ",".join(copies)
    return out


def _file_parts(value: Any) -> list[str]:
    """The files a parameter value names, or [] when it is not (only) files."""
    if isinstance(value, (str, os.PathLike)):
        parts = os.fspath(value).split(",") if os.fspath(value) else []
    elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in value):
        parts = [os.fspath(v) for v in value]
    else:
        return []
    return parts if parts and all(os.path.isfile(p) for p in parts) else []


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, dict))


def _mkdir(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path


def macs_of(topo: Topology, states: dict[str, dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(host, interface) → its MAC, read from the state dumps."""
    out = {}
    for host in topo.spec.hosts:
        links = states[host.name].get("links")
        by_name = (
            {x.get("ifname"): x.get("address") for x in links if isinstance(x, dict)}
            if isinstance(links, list)
            else {}
        )
        for iface in host.interfaces:
            mac = by_name.get(topo.ifname(host.name, iface.name))
            if mac:
                out[(host.name, iface.name)] = str(mac)
    return out


def _write_pcaps(result: Result, path: Path) -> None:
    injected = []
    for number, step in enumerate(result.steps, 1):
        if step.outcome is None:
            continue
        step.outcome.save_pcaps(str(path / "pcaps" / f"step-{number:02d}"))
        injected += step.outcome.injected
    write_pcap_ports(path / "injected.pcapng", injected)


def write_picture(spec: Spec, path: Path) -> None:
    """topology.mmd, topology.dot and (with Graphviz) topology.svg."""
    write_file(path / "topology.mmd", picture.mermaid(spec))
    write_file(path / "topology.dot", picture.dot(spec))
    with contextlib.suppress(SetupError):  # without Graphviz the texts are the picture
        write_file(path / "topology.svg", picture.svg(spec))
