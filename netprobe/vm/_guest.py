"""Checks in a guest: many cases in ONE boot, their Results rebuilt from JSON.

Inside the guest this module is the runner (``python -m netprobe.vm CASES.json OUT.json``);
each case's bug-report bundle and the pcaps of what did not pass land in the shared
directory and come back.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SetupError
from ._boot import GuestRun, bootable, run_in_vm

if TYPE_CHECKING:
    from ..check import Result



@dataclass(frozen=True)
class Case:
    """One check run in the guest. `topology`: a file the guest can read (None: the
    check's reference). `sabotage`: (host, argv) commands run on the built topology
    before the check, to break it on purpose. `setup`: a shell script run in the guest
    first (a network made by hand, which `topology` then adopts)."""

    label: str
    check: str
    topology: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    sabotage: tuple[tuple[str, tuple[str, ...]], ...] = ()
    setup: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The case as JSON, for the guest's command line."""
        return {
            "label": self.label,
            "check": self.check,
            "topology": self.topology,
            "params": dict(self.params),
            "sabotage": [[h, list(a)] for h, a in self.sabotage],
            "setup": self.setup,
        }


@dataclass(frozen=True)
class GuestChecks:
    """Results by case label, the pcaps of steps that did not pass, and the boot."""

    results: dict[str, Result]
    pcaps: dict[str, dict[str, str]]  # label → {"STEP/PORT": host path}
    run: GuestRun
    kernel: str  # `uname -r` in the guest


def run_checks_in_vm(
    cases: Iterable[Case],
    *,
    kernel: Path | None = None,
    rwdir: Path | None = None,
    timeout: float = 900,
) -> GuestChecks:
    """Run every case in ONE guest; rebuild each Result from the guest's JSON."""
    todo = list(cases)
    labels = [c.label for c in todo]
    if len(set(labels)) != len(labels):
        raise ValueError("case labels must be unique")
    kernel = bootable(kernel)  # before cases.json is written
    with tempfile.TemporaryDirectory(prefix="netprobe-vm-") as scratch:
        where = Path(rwdir or scratch).resolve()
        where.mkdir(parents=True, exist_ok=True)
        (where / "cases.json").write_text(json.dumps([c.to_dict() for c in todo]))
        out = where / "result.json"
        out.unlink(missing_ok=True)
        run = run_in_vm(
            kernel,
            [sys.executable, "-m", "netprobe.vm", str(where / "cases.json"), str(out)],
            where,
            timeout=timeout,
        )
        if not out.exists():
            tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-20:])
            raise SetupError(
                f"the guest wrote no results (exit {run.returncode}):\n{tail}",
                remedy="run `python -m netprobe.vm CASES OUT` in the guest by hand",
            )
        data = json.loads(out.read_text())
    results = {label: result_from_dict(d) for label, d in data["results"].items()}
    keep = rwdir is not None  # pcaps in a scratch rwdir are gone: report none
    pcaps = {k: v for k, v in data.get("pcaps", {}).items() if keep}
    return GuestChecks(results, pcaps, run, str(data.get("kernel", "")))


def run_named_checks(
    names: list[str],
    topology: str | os.PathLike[str] | None = None,
    *,
    kernel: str | os.PathLike[str] = "auto",
    bundle_dir: str | os.PathLike[str] | None = None,
    archive: bool = False,
    **params: Any,
) -> list[Result]:
    """The named checks in ONE guest booted from `kernel` ("auto": the newest Debian
    kernel in /boot); their bundles come back under `bundle_dir`/vm-STAMP."""
    image = bootable(None if str(kernel) == "auto" else Path(kernel))  # before any mkdir
    where = str(Path(topology).resolve()) if topology is not None else None
    with tempfile.TemporaryDirectory(prefix="netprobe-vm-") as scratch:
        stamp = time.strftime("vm-%Y%m%dT%H%M%SZ", time.gmtime())
        rwdir = Path(bundle_dir).resolve() / stamp if bundle_dir else Path(scratch)
        cases = [Case(name, name, where, params) for name in names]
        made = not rwdir.exists()  # (a run in the same second may have made it)
        try:
            guest = run_checks_in_vm(cases, kernel=image, rwdir=rwdir)
        except BaseException:  # no results: what the guest left there belongs to no one
            if made:
                shutil.rmtree(rwdir, ignore_errors=True)
            raise
        results = [guest.results[name] for name in names]
    for result in results:
        if not bundle_dir:  # the scratch directory and the bundles in it are gone
            result.bundle = None
        elif archive and result.bundle and Path(result.bundle).is_dir():
            with tarfile.open(f"{result.bundle}.tar.gz", "w:gz") as tar:
                tar.add(result.bundle, arcname=Path(result.bundle).name)
    return results


def result_from_dict(data: Mapping[str, Any]) -> Result:
    """A Result rebuilt from `Result.to_dict()` output; each step keeps its evidence text."""
    from ..check import Result, Status

    step = _guest_step_class()
    steps = [
        step(
            name=s["name"],
            status=Status(s["status"]),
            detail=s.get("detail") or "",
            key=s["id"] if s.get("id", s["name"]) != s["name"] else None,
            text=s.get("evidence"),
        )
        for s in data.get("steps", [])
    ]
    return Result(
        check=data["check"],
        status=Status(data["status"]),
        summary=data.get("summary", ""),
        steps=steps,
        diagnosis=data.get("diagnosis"),
        duration=float(data.get("duration") or 0.0),
        topology=data.get("topology"),
        bundle=data.get("bundle"),  # in rwdir: the same path on both sides
        not_run=list(data.get("not_run", [])),
    )


@functools.lru_cache(maxsize=1)
def _guest_step_class() -> Any:  # built on first use: importing netprobe.check is heavy
    from ..check import Step

    @dataclass
    class GuestStep(Step):
        """A step as the guest reported it: its expectation's evidence kept as text."""

        text: str | None = None

        def evidence_text(self) -> str | None:
            return self.text

    return GuestStep


# -- the runner, inside the guest ----------------------------------------------------------


def _run_case(case: Mapping[str, Any], bundles: Path) -> Result:
    """Run one case; a failing one leaves its bug-report bundle under `bundles`."""
    from ..bundle import BundleRecorder
    from ..check import load_check
    from ..topology import as_spec, build

    check = load_check(case["check"])
    params = case.get("params") or {}
    if case.get("setup"):  # the guest is this run's alone: its namespaces are too
        made = subprocess.run(["sh", "-ec", case["setup"]], capture_output=True, text=True)
        if made.returncode:
            raise RuntimeError(f"the hand-made network failed: {made.stderr.strip()[-400:]}")
    if not case.get("sabotage"):
        return check.run(case.get("topology"), recorder=BundleRecorder(bundles), **params)
    with build(as_spec(case.get("topology") or check.reference_file())) as topo:
        for host, argv in case["sabotage"]:
            topo.run(host, argv, check=True)
        return check.run(topo, recorder=BundleRecorder(bundles), **params)


def _save_pcaps(result: Result, directory: Path) -> dict[str, str]:
    saved: dict[str, str] = {}
    for index, step in enumerate(result.steps):
        if step.outcome is None or step.status.value == "PASS":
            continue
        for port, path in step.outcome.save_pcaps(str(directory / str(index))).items():
            saved[f"{step.name}/{port}"] = path
    return saved


def guest_main(argv: Sequence[str]) -> int:
    """Run the cases in `argv[0]` (JSON) and write results to `argv[1]`; pcaps beside it."""
    from ..check import Result, Status

    cases_path, out_path = Path(argv[0]), Path(argv[1])
    results: dict[str, Any] = {}
    pcaps: dict[str, dict[str, str]] = {}
    for case in json.loads(cases_path.read_text()):
        label = case["label"]
        try:
            result = _run_case(case, out_path.parent / "bundles" / _safe(label))
        except Exception as exc:  # one broken case must not lose the others' results
            result = Result(case["check"], Status.ERROR, f"{type(exc).__name__}: {exc}")
        results[label] = result.to_dict()
        pcaps[label] = _save_pcaps(result, out_path.parent / "pcaps" / _safe(label))
        print(f"{label}: {result.status.value}", flush=True)
    kernel = os.uname().release
    out_path.write_text(json.dumps({"results": results, "pcaps": pcaps, "kernel": kernel}))
    return 0


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label)
