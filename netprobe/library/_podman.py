"""Real rootless Podman for the rootless check: a container Podman starts as uid 65534
(runc, the cgroupfs cgroup manager, vfs storage, `--network slirp4netns`, one uid
mapped: no /etc/subuid entry), from a busybox-static image made with `podman import`
(nothing is pulled).

All of Podman's state (storage, runroot, containers.conf through CONTAINERS_CONF, the XDG
directories) lives in a directory of its own inside the run's private directory, removed
after (and by `netprobe clean` after a kill). Every
process Podman leaves running (its pause process, conmon, slirp4netns, rootlessport)
inherits NETPROBE_RUN and a NETPROBE_PODMAN mark naming that directory: after `podman rm
-f` what still carries the mark is stopped by pid.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

from netprobe import _userns
from netprobe.topology import RunResult, Topology
from netprobe.topology._kernel import owner, process

from ._usermode import ns_path, tun_refusal

NOBODY = 65534
IMAGE = "localhost/netprobe-busybox"
BUSYBOX = "/bin/busybox"  # busybox-static: runs in an image with nothing else in it
MARK = "NETPROBE_PODMAN"
REMEDY = "apt-get install podman runc uidmap busybox-static"
_CONF = """[containers]
netns = "slirp4netns"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"""


def refusal() -> str | None:
    """Why rootless Podman cannot run here (with the remedy), or None."""
    missing = [t for t in ("podman", "runc", "slirp4netns", "setpriv") if not shutil.which(t)]
    if missing:
        return f"{', '.join(missing)} not installed: {REMEDY}"
    if not os.path.exists(BUSYBOX):
        return f"no static busybox ({BUSYBOX}) to make the image from: {REMEDY}"
    if _userns.inside() or os.geteuid() != 0:
        return (
            "netprobe runs unprivileged in a user namespace of its own here (one uid "
            "mapped), so it cannot start Podman as another unprivileged user: run the "
            "check as root for the Podman path (Podman itself runs as uid 65534)"
        )
    return tun_refusal("rootless Podman's slirp4netns (uid 65534)", others=True)


@dataclass
class Podman:
    """Podman run as uid 65534 in the topology's `host`, its state all under `private`."""

    topo: Topology
    private: str

    def __post_init__(self) -> None:
        for sub in ("home", "config", "data", "run", "storage"):
            os.makedirs(os.path.join(self.private, sub), mode=0o700, exist_ok=True)
        with open(os.path.join(self.private, "containers.conf"), "w") as dst:
            dst.write(_CONF)
        with open(os.path.join(self.private, "storage.conf"), "w") as dst:
            dst.write(
                f'[storage]\ndriver = "vfs"\nrunroot = "{self.private}/run/containers"\n'
                f'graphroot = "{self.private}/storage"\n'
                f'rootless_storage_path = "{self.private}/storage"\n'
            )
        _chown_tree(self.private)

    def env(self) -> dict[str, str]:
        """Podman's whole environment: nothing of the caller's (its HOME, its config)."""
        p = self.private
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": f"{p}/home",
            "XDG_RUNTIME_DIR": f"{p}/run", "XDG_CONFIG_HOME": f"{p}/config",
            "XDG_DATA_HOME": f"{p}/data", "CONTAINERS_CONF": f"{p}/containers.conf",
            "CONTAINERS_STORAGE_CONF": f"{p}/storage.conf", MARK: p,
        }  # fmt: skip

    def __call__(self, *args: str, timeout: float = 120) -> RunResult:
        """`podman ARGS` as uid 65534 in the host side's network namespace. nsenter, not
        `ip netns exec`: that mounts a sysfs of its own, without the cgroup hierarchies
        Podman's first command gives the pause process every later one joins."""
        argv = [
            "nsenter", f"--net={ns_path(self.topo, 'host')}", "--", "setpriv",
            f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "podman", *args,
        ]  # fmt: skip
        try:
            done = process.run(argv, runid=self.topo.runid, env=self.env(), capture_output=True,
                               text=True, timeout=timeout, cwd="/")  # fmt: skip
        except subprocess.TimeoutExpired:
            return RunResult(124, "", f"podman {args[0]} did not finish in {timeout:.0f} s")
        return RunResult(done.returncode, done.stdout, done.stderr)

    def import_image(self) -> RunResult:
        """The busybox-static image: a tarball of busybox and its applets' links."""
        tar = os.path.join(self.private, "rootfs.tar")
        applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout
        with tarfile.open(tar, "w") as out:
            for name in ("bin", "tmp"):
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
                out.addfile(info)
            out.add(BUSYBOX, "bin/busybox")
            for applet in applets.split():
                if applet != "busybox":
                    info = tarfile.TarInfo(f"bin/{applet}")
                    info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                    out.addfile(info, io.BytesIO())
        os.chown(tar, NOBODY, NOBODY)
        return self("import", tar, IMAGE)

    def version(self) -> str:
        """Podman's version (its client's)."""
        out = self("version", "--format", "json").stdout
        try:
            return str(json.loads(out)["Client"]["Version"])
        except (ValueError, KeyError, TypeError):
            return "unknown"

    def inspect(self, name: str) -> dict[str, object]:
        """`podman inspect NAME`: the container's state, as Podman reports it."""
        out = self("inspect", name).stdout
        try:
            found = json.loads(out)
        except ValueError:
            return {}
        return found[0] if isinstance(found, list) and found else {}

    def logs_until(self, name: str, marker: str, timeout: float = 20.0) -> str:
        """The container's output once it says `marker` (or all of it at the deadline)."""
        deadline = time.monotonic() + timeout
        while True:
            done = self("logs", name)
            said = done.stdout + done.stderr
            if marker in said.split() or time.monotonic() > deadline:
                return said
            time.sleep(0.2)

    def marked(self) -> dict[int, str]:
        """pid → command line of every process carrying this directory's mark."""
        mark = f"{MARK}={self.private}".encode()
        return {pid: _cmdline(pid) for pid in process.tagged(self.topo.runid) if _has(pid, mark)}

    def remove(self, name: str) -> list[str]:
        """`podman rm -f -t 0`, then stop by pid whatever of Podman's still runs."""
        self("rm", "-f", "-t", "0", name)
        left = self.marked()
        stopped, problems = process.stop({pid: cmd.split(" ")[0] for pid, cmd in left.items()})
        return stopped + problems


@contextlib.contextmanager
def private(runid: str) -> Iterator[str]:
    """Podman's directory, in the run's own (removed with the run, and by `netprobe clean`
    after a kill, once it has stopped the processes that carry the run's tag); removed
    after. The run's directory lets others through (0o711, not list it): Podman runs as
    uid 65534."""
    top = owner.private_dir(runid)
    os.makedirs(top, mode=0o700, exist_ok=True)
    os.chmod(top, 0o711)
    path = tempfile.mkdtemp(prefix="netprobe-podman-", dir=top)
    try:
        yield path
    finally:
        _remove(path)


def _remove(path: str, within: float = 5.0) -> None:
    """Remove Podman's directory. A process of Podman's (its cleanup after `rm`) may still
    be finishing a write in its storage: retry until the directory is gone."""
    deadline = time.monotonic() + within
    while True:
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _has(pid: int, mark: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as src:
            return mark in src.read().split(b"\0")
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as src:
            return src.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _chown_tree(top: str) -> None:
    os.chown(top, NOBODY, NOBODY)
    for where, dirs, files in os.walk(top):
        for name in dirs + files:
            os.chown(os.path.join(where, name), NOBODY, NOBODY, follow_symlinks=False)


@dataclass(frozen=True)
class Ports:
    """The loopback ports one Podman run uses."""

    service: int  # on the host's loopback
    published: int  # on the host's loopback, published to the container
    container: int  # the container's listener


def script(ports: Ports, nonce: str) -> str:
    """The container's command: fetch the host's service (retrying while Podman's
    slirp4netns comes up), try the neighbour once, then serve its nonce on `container`."""
    return (
        "i=0; while [ $i -lt 50 ]; do "
        f"nc {SLIRP_GW} {ports.service} </dev/null >/tmp/got 2>/tmp/err && [ -s /tmp/got ] "
        "&& break; i=$((i+1)); sleep 0.1; done; "
        'echo "host: $(cat /tmp/got /tmp/err | tr "\\n" " ")"; '
        f"nc -w 2 10.89.0.2 {ports.container} </dev/null >/tmp/nb 2>&1; "
        'echo "neighbour: exit $? $(cat /tmp/nb | tr "\\n" " ")"; '
        # the barrier: once the host's service answers again, slirp4netns has handled
        # the attempt at the neighbour
        f"nc {SLIRP_GW} {ports.service} </dev/null >/tmp/again 2>&1; "
        'echo "barrier: exit $? $(cat /tmp/again | tr "\\n" " ")"; '
        f"echo {nonce} >/tmp/nonce; echo ready; "
        f"exec nc -ll -p {ports.container} -e cat /tmp/nonce"
    )


def run_argv(name: str, ports: Ports, nonce: str, *, publish: bool, loopback: bool) -> list[str]:
    """`podman run` arguments for the container (published port and host loopback per
    the flags; its nc answers with `nonce`)."""
    network = f"slirp4netns:allow_host_loopback={'true' if loopback else 'false'}"
    argv = ["run", "-d", "--name", name, "--network", network]
    if publish:
        argv += ["-p", f"127.0.0.1:{ports.published}:{ports.container}"]
    return [*argv, IMAGE, "/bin/sh", "-c", script(ports, nonce)]


SLIRP_GW = "10.0.2.2"
