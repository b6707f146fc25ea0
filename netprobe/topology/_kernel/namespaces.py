"""Which network namespaces exist, and what to call them: discovery's first step.

Named namespaces are the files of /run/netns; a container's namespace often has no name
and is reached through one of its processes, /proc/PID/ns/net. Both are nsfs files, and
one namespace can be reached by many (every process of a container, and a name too), so
namespaces are told apart by inode. A container is named after what its runtime says
(the cgroup path holds Docker's, Podman's and containerd's container id and LXC's
container name; `docker`/`podman inspect` turn an id into a name where the CLI is
installed), else after the command its process runs and the pid.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ...errors import TopologyError
from . import netns

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # what a host name may be (validate)
_CGROUP_IDS = (  # (runtime, pattern of its container's id or name in a cgroup path)
    ("docker", re.compile(r"(?:docker-|/docker/)([0-9a-f]{64})")),
    ("podman", re.compile(r"libpod-(?:conmon-)?([0-9a-f]{64})")),
    ("containerd", re.compile(r"cri-containerd-([0-9a-f]{64})")),
    ("lxc", re.compile(r"(?:lxc\.payload\.|/lxc/)([^/\s]+)")),
)
_INSPECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Found:
    """A namespace to adopt: the host name it gets, what `adopt` says (a name, "pid:PID";
    None for the root namespace), where it came from, and its nsfs path."""

    host: str
    adopt: str | None
    origin: str
    path: str


def find(
    names: Sequence[str] = (), pids: Sequence[int] = (), *, every: bool = False,
    root: bool = False,
) -> list[Found]:
    """The namespaces asked for: `names` in /run/netns, those of `pids`, or `every` one
    (every name, then every process's namespace that has none); the root namespace (the
    one netprobe runs in) only with `root`. Each namespace once."""
    root_ino = _inode("/proc/thread-self/ns/net")
    named = _named(root_ino)
    out: dict[tuple[int, int], Found] = {}
    if root:
        out[root_ino] = Found("root", None, "root namespace", "/proc/thread-self/ns/net")
    for name in names:
        ino = named.get(name) or _missing(name)
        out.setdefault(ino, Found(name, name, f"netns {name}", f"{netns.NETNS_DIR}/{name}"))
    by_inode = {ino: name for name, ino in named.items()}
    wanted = [(pid, _pid_inode(pid)) for pid in pids]
    if every:
        out.update({ino: _by_name(n) for n, ino in named.items() if ino not in out})
        wanted += sorted(_processes(), key=lambda p: p[0])
    unnamed = []
    for pid, ino in wanted:
        if ino == root_ino and not root:
            if pid in pids:
                raise TopologyError(
                    f"process {pid} is in the root namespace: give --root to discover it"
                )
            continue
        if ino in out:
            continue
        if ino in by_inode:
            out[ino] = _by_name(by_inode[ino])
        else:
            out[ino] = Found("", f"{netns.PID_PREFIX}{pid}", "", f"/proc/{pid}/ns/net")
            unnamed.append((ino, pid))
    for (ino, _pid), (host, origin) in zip(unnamed, _names([p for _, p in unnamed]), strict=True):
        out[ino] = Found(host, out[ino].adopt, origin, out[ino].path)
    return _unique(list(out.values()))


def _by_name(name: str) -> Found:
    return Found(name, name, f"netns {name}", f"{netns.NETNS_DIR}/{name}")


def _inode(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _named(root_ino: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """Every /run/netns name that holds a namespace (a file left by a namespace that is
    gone is no nsfs file), and can be adopted by name."""
    out = {}
    for name in netns.list_names():
        try:
            ino = _inode(f"{netns.NETNS_DIR}/{name}")
        except OSError:
            continue
        if ino[0] == root_ino[0] and _NAME.match(name):
            out[name] = ino
    return out


def _missing(name: str) -> tuple[int, int]:
    if netns.exists(name) and not _NAME.match(name):
        raise TopologyError(f"namespace {name!r}: netprobe adopts names of letters, digits, _.-")
    raise TopologyError(f"no namespace named {name!r} (see `ip netns list`)")


def _pid_inode(pid: int) -> tuple[int, int]:
    try:
        return _inode(f"/proc/{pid}/ns/net")
    except FileNotFoundError:
        raise TopologyError(f"no process {pid}") from None
    except OSError as exc:
        raise TopologyError(
            f"cannot read the network namespace of process {pid}: {exc.strerror}"
        ) from None


def _processes() -> Iterable[tuple[int, tuple[int, int]]]:
    """(pid, namespace inode) of every process that can be read (others come and go)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                yield int(entry), _inode(f"/proc/{entry}/ns/net")
            except OSError:
                continue


def _names(pids: list[int]) -> list[tuple[str, str]]:
    """(host name, origin) for the process `pid` of each unnamed namespace."""
    containers = [_container(pid) for pid in pids]
    known = _inspect(containers)
    out = []
    for pid, container in zip(pids, containers, strict=True):
        if container is None:
            comm = _read(f"/proc/{pid}/comm").strip() or "process"
            out.append((f"{comm}-{pid}", f"process {pid} ({comm})"))
            continue
        runtime, ident = container
        name = known.get(ident) or (ident[:12] if runtime != "lxc" else ident)
        out.append((name, f"{runtime} container {name}, pid {pid}"))
    return out


def _container(pid: int) -> tuple[str, str] | None:
    """(runtime, container id or name) from the process's cgroup path, or its
    environment's `container=` (what LXC and Podman set); None: no container."""
    cgroup = _read(f"/proc/{pid}/cgroup")
    for runtime, pattern in _CGROUP_IDS:
        match = pattern.search(cgroup)
        if match:
            return runtime, match.group(1)
    environ = _read(f"/proc/{pid}/environ").split("\0")
    runtime = next((v[10:] for v in environ if v.startswith("container=")), "")
    return (runtime, f"{runtime}-{pid}") if runtime else None


def _inspect(containers: list[tuple[str, str] | None]) -> dict[str, str]:
    """Container id → name, from `docker inspect` / `podman inspect` where installed
    (read-only; a CLI that does not answer in time names nothing)."""
    out: dict[str, str] = {}
    for runtime in ("docker", "podman"):
        ids = sorted({c[1] for c in containers if c is not None and c[0] == runtime})
        if not ids or shutil.which(runtime) is None:
            continue
        try:
            proc = subprocess.run(
                [runtime, "inspect", "--format", "{{.Id}} {{.Name}}", *ids],
                capture_output=True, text=True, timeout=_INSPECT_TIMEOUT, check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in proc.stdout.splitlines():
            ident, _, name = line.partition(" ")
            if name.strip("/ "):
                out[ident] = name.strip("/ ")
    return out


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _unique(found: list[Found]) -> list[Found]:
    """Host names made valid (letters, digits, _.-; 64 at most) and unique."""
    seen: set[str] = set()
    out = []
    for item in found:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", item.host).lstrip("_.-")[:60] or "host"
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}-{n}"
        seen.add(name)
        out.append(Found(name, item.adopt, item.origin, item.path))
    return out
