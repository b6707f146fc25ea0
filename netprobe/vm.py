"""A full kernel on demand: run commands, and checks, inside a virtme-ng guest.

Some kernels lack what a check needs (802.1Q VLAN devices, bonding, VLAN-aware bridges).
`run_in_vm` boots a stock kernel with virtme-ng over this machine's own filesystem (read
only, with tmpfs overlays; `rwdir` is shared read-write) and runs one command there;
`run_checks_in_vm` runs many checks in ONE boot and brings their Results back, rebuilt
from JSON, with the pcaps of what did not pass.

When /dev/kvm cannot boot a stock kernel (no VMX/SVM in the CPU, or a paravirtual KVM
such as PVM) qemu's software emulation (TCG) is used: slower, but it boots.

Inside the guest this module is the runner: ``python -m netprobe.vm CASES.json OUT.json``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SetupError

if TYPE_CHECKING:
    from .check import Result

__all__ = [
    "Case",
    "GuestChecks",
    "GuestRun",
    "find_kernel",
    "kvm_usable",
    "result_from_dict",
    "run_checks_in_vm",
    "run_in_vm",
    "vng_command",
]

_BOOTED = ".netprobe-booted"  # written in rwdir by the guest's first command
_GUEST_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
_KERNEL_REMEDY = "apt-get install -y linux-image-amd64 (not the cloud kernel: it lacks 9p)"


@dataclass(frozen=True)
class GuestRun:
    """What came back from one boot: the guest command's exit code and output."""

    returncode: int
    stdout: str
    stderr: str
    wall: float  # seconds from starting vng to its exit
    boot: float | None  # seconds from starting vng until the guest ran the command
    accel: str  # "kvm" or "tcg"


def find_kernel(boot: Path = Path("/boot")) -> Path:
    """The newest /boot/vmlinuz-*-amd64 that is not the cloud kernel (it lacks 9p)."""
    found = [p for p in boot.glob("vmlinuz-*-amd64") if "-cloud-" not in p.name]
    if not found:
        raise SetupError(f"no full kernel image (vmlinuz-*-amd64) in {boot}", remedy=_KERNEL_REMEDY)
    return max(found, key=lambda p: [int(n) for n in re.findall(r"\d+", p.name)])


@functools.lru_cache(maxsize=1)
def kvm_usable() -> tuple[bool, str]:
    """(whether qemu may use /dev/kvm to boot a stock kernel, why). Reads sysfs and
    /proc/cpuinfo once (microseconds): a KVM that boots a guest kernel needs the CPU's
    VMX or SVM; a paravirtual one (PVM) has /dev/kvm without them and dies early."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is absent or not accessible"
    if Path("/sys/module/kvm_pvm").exists():
        return False, "/dev/kvm is PVM, a paravirtual KVM that cannot boot a stock kernel"
    try:
        flags = next(
            (
                line
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("flags")
            ),
            "",
        ).split()
    except OSError:
        flags = []
    if "vmx" not in flags and "svm" not in flags:
        return False, "the CPU shows neither vmx nor svm: /dev/kvm is not hardware KVM"
    return True, "/dev/kvm with hardware virtualisation"


def _tools() -> str:
    """The PATH vng runs with (it calls virtme-run from its own directory)."""
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    missing = [
        (tool, remedy)
        for tool, remedy in (
            ("vng", "pip install 'netprobe[vm]' (virtme-ng)"),
            ("qemu-system-x86_64", "apt-get install -y qemu-system-x86"),
            ("busybox", "apt-get install -y busybox-static"),
        )
        if shutil.which(tool, path=path) is None
    ]
    if missing:
        raise SetupError(
            f"cannot boot a kernel: {', '.join(t for t, _ in missing)} not found",
            remedy="; ".join(r for _, r in missing),
        )
    return path


def vng_command(
    kernel: Path,
    command: str,
    rwdir: Path,
    *,
    cpus: int = 2,
    memory: str = "512M",
    kvm: bool | None = None,
) -> list[str]:
    """The vng argv booting `kernel` to run the shell `command` (kvm=None: detect)."""
    use_kvm = kvm_usable()[0] if kvm is None else kvm
    argv = [
        "vng",
        "--run",
        str(kernel),
        "--force-9p",
        "--cpus",
        str(cpus),
        "--memory",
        memory,
        f"--rwdir={rwdir}",
    ]
    if not use_kvm:
        argv += ["--disable-kvm", "--qemu-opts=-accel tcg,tb-size=128"]
    return [*argv, "--exec", command]


def _guest_shell(argv: Sequence[str], rwdir: Path, env: Mapping[str, str]) -> str:
    marker = shlex.quote(str(rwdir / _BOOTED))
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in {**_GUEST_ENV, **env}.items())
    return (
        f"cat /proc/uptime > {marker}; cd {shlex.quote(os.getcwd())} && "
        f"exec env {exports} {shlex.join(argv)}"
    )


def run_in_vm(
    kernel: Path | None,
    argv: Sequence[str],
    rwdir: Path,
    *,
    timeout: float = 900,
    env: Mapping[str, str] | None = None,
    cpus: int = 2,
    memory: str = "512M",
) -> GuestRun:
    """Boot `kernel` (None: `find_kernel()`) and run `argv` in the guest, in this
    directory, as root. Files the guest writes under `rwdir` come back; its exit code is
    `returncode`. A guest that never reached the command raises SetupError."""
    kernel = kernel or find_kernel()
    if not kernel.is_file():
        raise SetupError(f"kernel image {kernel} not found", remedy=_KERNEL_REMEDY)
    rwdir = rwdir.resolve()
    rwdir.mkdir(parents=True, exist_ok=True)
    (rwdir / _BOOTED).unlink(missing_ok=True)
    path = _tools()
    use_kvm, _why = kvm_usable()
    command = vng_command(
        kernel, _guest_shell(argv, rwdir, env or {}), rwdir, cpus=cpus, memory=memory, kvm=use_kvm
    )
    done, wall, boot = _supervise(command, rwdir / _BOOTED, {**os.environ, "PATH": path}, timeout)
    if boot is None and not (rwdir / _BOOTED).exists():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise SetupError(
            f"the guest did not boot {kernel} (vng exited {done.returncode}):\n{tail}",
            remedy="run the vng command by hand to see the console: " + shlex.join(command),
        )
    return GuestRun(
        done.returncode, done.stdout, done.stderr, wall, boot, "kvm" if use_kvm else "tcg"
    )


def _supervise(
    command: list[str], marker: Path, env: Mapping[str, str], timeout: float
) -> tuple[subprocess.CompletedProcess[str], float, float | None]:
    """Run vng in its own process group, noting when the guest's marker appears; the
    group is killed on timeout or on any exception."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env),
            start_new_session=True,
            text=True,
        )
        boot: float | None = None
        try:
            while proc.poll() is None:
                if boot is None and marker.exists():
                    boot = time.perf_counter() - start
                if time.perf_counter() - start > timeout:
                    raise SetupError(
                        f"the guest did not finish within {timeout:g} s",
                        remedy="raise the timeout, or give the guest more CPUs",
                    )
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(command, proc.returncode, out.read(), err.read())
    return done, wall, boot


# -- checks in a guest --------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One check run in the guest. `topology`: a file the guest can read (None: the
    check's reference). `sabotage`: (host, argv) commands run on the built topology
    before the check, to break it on purpose."""

    label: str
    check: str
    topology: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    sabotage: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "check": self.check,
            "topology": self.topology,
            "params": dict(self.params),
            "sabotage": [[h, list(a)] for h, a in self.sabotage],
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


def result_from_dict(data: Mapping[str, Any]) -> Result:
    """A Result rebuilt from `Result.to_dict()` output; each step keeps its evidence text."""
    from .check import Result, Status

    step = _guest_step_class()
    steps = [
        step(
            name=s["name"],
            status=Status(s["status"]),
            detail=s.get("detail") or "",
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
    )


@functools.lru_cache(maxsize=1)
def _guest_step_class() -> Any:  # built on first use: importing netprobe.check is heavy
    from .check import Step

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
    from .check import Check, load_check, reference_path
    from .topology import build, load

    check = load_check(case["check"])
    if not isinstance(check, Check):
        raise TypeError(f"{case['check']} is not a netprobe Check")
    params = case.get("params") or {}
    if not case.get("sabotage"):
        return check.run(case.get("topology"), bundle_dir=bundles, **params)
    with build(load(case.get("topology") or reference_path(check.reference))) as topo:
        for host, argv in case["sabotage"]:
            topo.run(host, argv, check=True)
        return check.run(topo, bundle_dir=bundles, **params)


def _save_pcaps(result: Result, directory: Path) -> dict[str, str]:
    saved: dict[str, str] = {}
    for index, step in enumerate(result.steps):
        if step.outcome is None or step.status.value == "PASS":
            continue
        for port, path in step.outcome.save_pcaps(str(directory / str(index))).items():
            saved[f"{step.name}/{port}"] = path
    return saved


def _guest_main(argv: Sequence[str]) -> int:
    """Run the cases in `argv[0]` (JSON) and write results to `argv[1]`; pcaps beside it."""
    from .check import Result, Status

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


if __name__ == "__main__":
    raise SystemExit(_guest_main(sys.argv[1:]))
