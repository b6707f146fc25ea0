"""Reading bug-report bundles back: their summary for a person, and their replay.

`replay` rebuilds the bundle's topology, runs its check again with its parameters and
compares the outcome with the recorded one, step by step: each recorded step with the
same step of the new run (by its id), not the one in the same place.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..check import Result, Step, load_check
from ..errors import SpecError
from ..topology import build, load
from ._live import add_neighbours
from ._probe_replay import ProbeReplay, probe_summary, replay_probe
from ._probe_write import DOCUMENT, PROBE_KIND
from ._recorder import run_check
from ._write import FORMAT, VERSION


def _directory(path: str | Path) -> Path:
    path = Path(path)
    if path.is_file() and path.name == "result.json":
        path = path.parent
    elif path.is_file() and tarfile.is_tarfile(path):  # made with --archive
        path = _unpack(path)
    if path.is_file() and path.name == DOCUMENT:
        path = path.parent
    if not any((path / name).is_file() for name in _DOCUMENTS):
        raise SpecError(f"{path} is not a netprobe bundle (it has no result.json)")
    return path


_DOCUMENTS = ("result.json", DOCUMENT)  # a check's bundle; a probe's


def _unpack(archive: Path) -> Path:
    """The bundle inside `archive`, unpacked into a temporary directory."""
    target = Path(tempfile.mkdtemp(prefix="netprobe-bundle-"))
    atexit.register(shutil.rmtree, target, True)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # refuses links and paths out of the target
            tar.extractall(target, filter="data")
        else:
            members = [m for m in tar.getmembers() if _safe_member(m)]
            tar.extractall(target, members=members)  # members checked above
    inner = [p for p in target.iterdir() if any((p / n).is_file() for n in _DOCUMENTS)]
    if len(inner) != 1:
        raise SpecError(f"{archive} holds no netprobe bundle")
    return inner[0]


def _safe_member(member: tarfile.TarInfo) -> bool:
    """A plain file or directory whose path stays inside the target."""
    parts = Path(member.name).parts
    return (
        (member.isfile() or member.isdir())
        and not member.name.startswith("/")
        and (".." not in parts)
    )


def read_bundle(path: str | Path) -> dict[str, Any]:
    """A bundle's result.json (a probe bundle's diagnosis.json), checked for its format
    and version."""
    directory = _directory(path)
    source = directory / "result.json"
    if not source.is_file():
        source = directory / DOCUMENT
    try:
        document: Any = json.loads(source.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"cannot read the bundle's result: {exc}", file=str(source)) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SpecError("not a netprobe bundle result", file=str(source))
    if document.get("version") != VERSION:
        raise SpecError(
            f"bundle format version {document.get('version')!r}; this netprobe reads {VERSION}",
            file=str(source),
        )
    return document


def bundle_summary(path: str | Path) -> str:
    """The human summary of a bundle: verdict, diagnosis, each step, failing evidence."""
    document = read_bundle(path)
    if document.get("kind") == PROBE_KIND:
        return probe_summary(document)
    result = document["result"]
    lines = [f"{result['check']}: {result['status']} — {result['summary']}"]
    if result.get("diagnosis"):
        lines.append(f"  diagnosis: {result['diagnosis']}")
    lines += [f"  recorded {document['created']} with netprobe {document['netprobe']}"]
    if document.get("params"):
        lines.append(
            "  parameters: " + ", ".join(f"{k}={v}" for k, v in document["params"].items())
        )
    for step in result["steps"]:
        lines.append(f"  [{step['status']}] {step['name']}: {step['detail']}".rstrip(": "))
        if step["status"] != "PASS" and step.get("evidence"):
            lines += ["      " + line for line in step["evidence"].splitlines()]
    if result.get("not_run"):
        lines.append(f"  {len(result['not_run'])} not run: {', '.join(result['not_run'])}")
    for number, cause in enumerate(result.get("explanation") or [], 1):
        lines.append(f"  why {number}: {cause['text']}")
    lines.append("  replay: netprobe replay DIR, or sudo sh DIR/repro.sh without netprobe")
    return "\n".join(lines)


@dataclass(frozen=True)
class StepMatch:
    """One step by name: its verdict in the recording and in this run."""

    name: str
    recorded: str | None  # None: the step is new in this run
    now: str | None  # None: this run did not take the step

    @property
    def same(self) -> bool:
        """True when the step has the same verdict in both runs."""
        return self.recorded == self.now

    @property
    def mark(self) -> str:
        """same, DIFFERS, NEW (not recorded) or MISSING (recorded, not taken now)."""
        if self.same:
            return "same"
        return "NEW" if self.recorded is None else "MISSING" if self.now is None else "DIFFERS"


@dataclass(frozen=True)
class Replay:
    """A bundle's recorded result beside the result of running its check again."""

    recorded: dict[str, Any]
    result: Result
    steps: list[StepMatch]

    @property
    def matches(self) -> bool:
        """The same verdict and the same verdict for every step."""
        same_verdict = self.recorded["result"]["status"] == self.result.status.value
        return same_verdict and all(s.same for s in self.steps)

    def text(self) -> str:
        """Both verdicts and each step's, as `netprobe replay` prints them."""
        recorded = self.recorded["result"]["status"]
        head = "reproduced" if self.matches else "differs from the recording"
        lines = [
            f"{self.result.check}: recorded {recorded}, now {self.result.status.value}: {head}"
        ]
        for step in self.steps:
            lines.append(
                f"  {step.mark:7} {step.recorded or '-':12} → {step.now or '-':12} {step.name}"
            )
        return "\n".join(lines)


def replay(path: str | Path, *, bundle_dir: str | Path | None = None) -> Replay | ProbeReplay:
    """Run the bundle's check again on its topology; compare, step by step. A probe
    bundle's probe is sent again on its network: is the ending the same?"""
    directory = _directory(path)
    document = read_bundle(directory)
    if document.get("kind") == PROBE_KIND:
        return replay_probe(directory, document, bundle_dir=bundle_dir)
    name = document["check"]
    if document.get("check_file"):  # a check run from a file: the bundle's copy of it
        name = f"{directory / document['check_file']}:{name}"
    load_check(name)  # an unknown check fails here, with suggestions
    spec = load(directory / document["topology"])
    params = {k: _resolve(directory, v) for k, v in (document.get("params") or {}).items()}
    neighbours = (document.get("rebuild") or {}).get("neighbours")
    if not neighbours:
        result = run_check(name, spec, bundle_dir=bundle_dir, **params)
    else:  # what a spec cannot say is added once it is built
        with build(spec) as topo:
            add_neighbours(topo, neighbours)
            result = run_check(name, topo, bundle_dir=bundle_dir, **params)
    return Replay(document, result, _align(document["result"]["steps"], result))


def _resolve(directory: Path, value: Any) -> Any:
    """Parameters that name files in the bundle (inputs/...) become paths to them."""
    if isinstance(value, str) and value.startswith("inputs/"):
        return ",".join(str(directory / part) for part in value.split(","))
    return value


def _align(recorded: list[dict[str, Any]], result: Result) -> list[StepMatch]:
    """Steps paired by identity (a step's id, else its name; the n-th of an id with the
    n-th), in the recorded order, then the steps new in this run. A recorded step this
    run did not take, and a step it took that was not recorded, say so."""
    by_id: dict[str, list[Step]] = {}
    by_name: dict[str, list[Step]] = {}
    for step in result.steps:
        by_id.setdefault(step.id, []).append(step)
        by_name.setdefault(step.name, []).append(step)
    paired: set[int] = set()
    out = []
    for old in recorded:
        new = _take(by_id.get(old.get("id") or old["name"], []), paired) or _take(
            by_name.get(old["name"], []), paired
        )
        name = old["name"]
        if new is not None and new.name != name:  # a value in it changed (a MAC, a port)
            name += f" (now: {new.name})"
        out.append(StepMatch(name, old["status"], new.status.value if new else None))
    out += [StepMatch(s.name, None, s.status.value) for s in result.steps if id(s) not in paired]
    return out


def _take(candidates: list[Step], paired: set[int]) -> Step | None:
    for step in candidates:
        if id(step) not in paired:
            paired.add(id(step))
            return step
    return None
