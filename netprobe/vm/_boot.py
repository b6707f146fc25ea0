"""Booting a full kernel: run one command inside a virtme-ng guest.

`run_in_vm` boots a stock kernel with virtme-ng over this machine's own filesystem (read
only, with tmpfs overlays; `rwdir` is shared read-write) and runs one command there.
When /dev/kvm cannot boot a stock kernel (no VMX/SVM in the CPU, or a paravirtual KVM
such as PVM) qemu's software emulation (TCG) is used: slower, but it boots.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import SetupError
from ..topology._kernel import owner, process

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


def bootable(kernel: Path | None) -> Path:
    """The kernel image to boot (None: `find_kernel()`), once it is known to exist and
    the tools to boot it are installed: callers ask before they make anything."""
    kernel = kernel or find_kernel()
    if not kernel.is_file():
        what = "is not a file" if kernel.exists() else "not found"
        raise SetupError(f"kernel image {kernel} {what}", remedy=_KERNEL_REMEDY)
    _tools()
    return kernel


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
    kernel = bootable(kernel)
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
    with (
        _guest_run() as runid,  # vng and qemu carry it: clean finds them
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
    ):
        proc = process.popen_group(  # qemu, vng's child, dies with netprobe too
            command,
            runid=runid,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env),
            text=True,
        )
        boot: float | None = None
        try:
            with _sigterm_raises():
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
            _stop_group(proc)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(command, proc.returncode, out.read(), err.read())
    return done, wall, boot


@contextlib.contextmanager
def _guest_run() -> Iterator[str]:
    """A run record for the guest's processes where records can be written (root); an
    unprivileged user's guest is still tagged, and dies with its owner."""
    if os.geteuid() != 0:
        yield f"guest-{os.getpid()}"  # no run id can look like it: they never contain "-"
        return
    with owner.scratch_run("vm guest") as runid:
        yield runid


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While a guest runs, SIGTERM (a CI cancel, `kill`) unwinds like Ctrl-C, so the
    guest is stopped rather than orphaned. Only the main thread may set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """vng and qemu: SIGTERM first (vng cleans up after itself), SIGKILL if they linger."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=3)
            return
        except subprocess.TimeoutExpired:
            continue
