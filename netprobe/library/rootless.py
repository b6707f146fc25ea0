"""rootless: what a rootless container's network (Podman's way) promises. A user-mode
network program, slirp4netns (and pasta, side by side), serves the container's namespace
from the rootless user's own namespace ("host"): the container reaches a service on the
host's loopback (10.0.2.2 with slirp4netns, the gateway with pasta), a published port on the
host's loopback reaches a listener in the container (slirp4netns: add_hostfwd through its
API socket; pasta: -t), the container cannot reach the host's other namespaces, and no
kernel bridge or change to the host side's links, routes or sysctls is involved. Then the
same with real rootless Podman (a container it starts as uid 65534, with its own
slirp4netns), or a SKIP saying why Podman cannot run here (_rootless_podman.py).

`netprobe check rootless` runs without root: netprobe then creates a user namespace for
itself and builds the topology inside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from netprobe.check import Check, Context, Param
from netprobe.topology import Topology

from . import _podman as pm
from . import _rootless_neighbour as nb
from . import _usermode as um
from ._rootless_podman import podman_path

__all__ = ["CHECK", "run"]

ENGINES = ("slirp4netns", "pasta", "podman")
_REMEDY = {"slirp4netns": "apt-get install slirp4netns", "pasta": "apt-get install passt"}


def body(
    ctx: Context,
    *,
    engines: str = "slirp4netns,pasta,podman",
    service_port: int = 8000,
    published: int = 8080,
    container_port: int = 80,
    publish: bool = True,
    host_loopback: bool = True,
    slirp_api: str = "",
) -> None:
    """For each engine: start it for the container (or adopt the slirp4netns serving
    `slirp_api`), then prove the four promises."""
    chosen = [e.strip() for e in engines.split(",") if e.strip()]
    topo = ctx.topo
    service = um.listen(topo, "host", "127.0.0.1", service_port)
    inside = um.listen(topo, "container", "0.0.0.0", container_port)
    neighbour = um.listen(topo, "neighbour", nb.NEIGHBOUR, container_port)
    for engine in chosen:
        if engine == "podman":
            before = um.host_state(topo, "host")
            ports = pm.Ports(service_port, published, container_port)
            podman_path(ctx, (service, inside, neighbour), ports,
                        publish=publish, host_loopback=host_loopback)  # fmt: skip
            _unchanged(ctx, engine, before)
            continue
        if shutil.which(engine) is None:
            ctx.skip(
                f"{engine}: the container's network",
                f"{engine} is not installed: {_REMEDY.get(engine, 'install it')}",
            )
            continue
        if not _bridge_free(ctx, engine):
            continue
        adopting = bool(slirp_api) and engine == "slirp4netns"  # its TAP is open already
        if not adopting and (why := um.tun_refusal(f"{engine} run as this user")) is not None:
            ctx.skip(f"{engine}: the container's network", why)
            continue
        before = um.host_state(topo, "host")
        with tempfile.TemporaryDirectory(prefix="netprobe-rootless-") as private:
            proc, api = (
                _adopt(ctx, slirp_api)
                if adopting
                else _start(
                    ctx,
                    engine,
                    private,
                    published,
                    container_port,
                    publish=publish,
                    host_loopback=host_loopback,
                )
            )
            if proc is None:
                continue
            _promises(
                ctx,
                engine,
                proc,
                api,
                (service, inside, neighbour),
                (service_port, published, container_port),
            )
            _stop(topo, proc)
        _unchanged(ctx, engine, before)


def _unchanged(ctx: Context, engine: str, before: dict[str, object]) -> None:
    changed = um.state_diff(before, um.host_state(ctx.topo, "host"))
    ctx.record(
        f"{engine}: the host side's links, routes and sysctls are unchanged",
        not changed,
        "identical before and after" if not changed else f"changed: {', '.join(changed)}",
    )


def _bridge_free(ctx: Context, engine: str) -> bool:
    """The container has no kernel link to the host: no veth (to a bridge or not)."""
    live = ctx.topo.live("container").interfaces
    # a TAP is served by a user-mode program (an adopted slirp4netns's tap0), not the kernel
    links = [i for i in live if i.name != "lo" and i.kind not in ("tap", "tun")]
    name = f"{engine}: the container has no kernel link (no veth, no bridge)"
    if not links:
        taps = [i.name for i in live if i.kind in ("tap", "tun")]
        return ctx.record(
            name,
            True,
            f"only lo and {', '.join(taps)} (a TAP, served from user space)"
            if taps
            else "only lo before the user-mode network starts",
        )
    described = []
    for link in links:
        peer = ctx.topo.peer(f"container:{link.name}")
        master = None
        if peer is not None:
            far = ctx.topo.live(peer.host).interface(peer.ifname)
            master = far.master if far is not None else None
        described.append(
            f"container:{link.name}"
            + (f" (veth to {peer}" if peer else "")
            + (f", a port of bridge {master})" if master else ")" if peer else "")
        )
    ctx.diagnose(
        "the container is wired to a kernel bridge, not by user-mode networking: "
        + "; ".join(described)
        + " (rootless containers get no kernel link)"
    )
    return ctx.record(name, False, "; ".join(described))


def _start(
    ctx: Context,
    engine: str,
    private: str,
    published: int,
    cport: int,
    *,
    publish: bool,
    host_loopback: bool,
) -> tuple[subprocess.Popen[bytes] | None, str | None]:
    topo = ctx.topo
    path = um.ns_path(topo, "container")
    api = os.path.join(private, "slirp.sock")
    if engine == "slirp4netns":
        argv = [
            "slirp4netns",
            "--configure",
            "--mtu=65520",
            "--api-socket",
            api,
            "--netns-type=path",
            path,
            "tap0",
        ]
        if not host_loopback:
            argv.insert(1, "--disable-host-loopback")
    else:  # pasta copies the host side's address and route; -f: stays in the foreground
        argv = [
            "pasta",
            "-f",
            "--runas",
            "0",
            "--config-net",
            "-4",
            "-u",
            "none",
            "-T",
            "none",
            "-U",
            "none",
            "-t",
            f"{published}:{cport}" if publish else "none",
        ]
        if not host_loopback:
            argv.append("--no-map-gw")
        argv += ["--netns", path]
    log = os.path.join(private, "log")
    with open(log, "wb") as sink:
        proc = topo.spawn("host", argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
    ifname = "tap0" if engine == "slirp4netns" else _pasta_if(topo)
    addr = um.wait_addr(topo, "container", ifname) if ifname else None
    name = f"{engine}: the container's network comes up"
    if addr is None:
        with open(log, "rb") as src:
            said = src.read().decode(errors="replace").strip().splitlines()[-3:]
        ctx.record(
            name,
            False,
            f"{' '.join(argv[:1])} gave the container no address "
            f"({um.exited(proc) or 'still running'}): {' / '.join(said)}",
        )
        if um.exited(proc) is not None:
            ctx.diagnose(
                f"{engine} is not running ({um.exited(proc)}): nothing serves the "
                "container's network"
            )
        _stop(topo, proc)
        return None, None
    ctx.record(
        name,
        True,
        f"{ifname} {addr} in the container, served by {engine} (pid {proc.pid}) from the host side",
    )
    if engine == "slirp4netns" and publish:
        um.api(
            api,
            {
                "execute": "add_hostfwd",
                "arguments": {
                    "proto": "tcp",
                    "host_addr": "127.0.0.1",
                    "host_port": published,
                    "guest_port": cport,
                },
            },
        )
    return proc, api if engine == "slirp4netns" else None


def _adopt(ctx: Context, api: str) -> tuple[um.Program | None, str | None]:
    """A slirp4netns started by hand for the container: found by its API socket, its
    configuration and port forwards taken as they are."""
    proc = um.find_slirp(api)
    addr = um.wait_addr(ctx.topo, "container", "tap0", timeout=3) if proc else None
    name = "slirp4netns: the container's network comes up"
    if proc is None or addr is None:
        what = (
            f"no slirp4netns runs with --api-socket {api}"
            if proc is None
            else (f"slirp4netns (pid {proc.pid}) gave the container's tap0 no address")
        )
        ctx.diagnose(f"{what}: nothing serves the container's network")
        ctx.record(name, False, what)
        return None, None
    ctx.record(name, True, f"tap0 {addr} in the container, served by slirp4netns (pid "
               f"{proc.pid}, started by hand: adopted through {api})")  # fmt: skip
    return proc, api


def _pasta_if(topo: Topology) -> str | None:
    """pasta names the container's interface after the host side's (up0)."""
    names = [i.name for i in topo.live("container").interfaces if i.name != "lo"]
    return names[0] if names else "up0"


def _promises(
    ctx: Context,
    engine: str,
    proc: um.Program,
    api: str | None,
    listeners: tuple[um.Listener, um.Listener, um.Listener],
    ports: tuple[int, int, int],
) -> None:
    service, inside, _ = listeners
    sport, published, cport = ports
    topo = ctx.topo
    gw = um.SLIRP_GW if engine == "slirp4netns" else um.gateway(topo, "container")
    got = um.fetch(topo, "container", gw or um.SLIRP_GW, sport)
    name = f"{engine}: container → {gw}:{sport} reaches the host's 127.0.0.1:{sport}"
    outbound = ctx.record(name, got == service.nonce, _said(got, service))
    if not outbound:
        _why(ctx, engine, proc, "the host's loopback service")
    got = um.fetch(topo, "host", "127.0.0.1", published)
    name = f"{engine}: host 127.0.0.1:{published} (published) → container:{cport}"
    if not ctx.record(name, got == inside.nonce, _said(got, inside)):
        _why(ctx, engine, proc, "the published port", api=api, published=published)
    _neighbour(ctx, engine, gw or um.SLIRP_GW, outbound, listeners, ports)


def _neighbour(
    ctx: Context,
    engine: str,
    gw: str,
    outbound: bool,
    listeners: tuple[um.Listener, um.Listener, um.Listener],
    ports: tuple[int, int, int],
) -> None:
    """The container tries the neighbour; then the host's service again (the barrier)."""
    service, _inside, neighbour = listeners
    sport, _published, cport = ports
    before = neighbour.settled(ctx.topo)
    got = um.fetch(ctx.topo, "container", nb.NEIGHBOUR, cport, timeout=3)
    again = um.fetch(ctx.topo, "container", gw, sport) if outbound else b""
    said = "read the neighbour's nonce" if got == neighbour.nonce else str(got)
    barrier = "" if again == service.nonce else _said(again, service)
    attempt = nb.Attempt(engine, cport, said, got == neighbour.nonce,
                         nb.unproven(engine, outbound, barrier))  # fmt: skip
    nb.judge(ctx, attempt, neighbour, None if before is None else len(before))


def _said(got: bytes | str, listener: um.Listener) -> str:
    if got == listener.nonce:
        return f"the listener's nonce came back ({listener.nonce.decode()})"
    return got if isinstance(got, str) else f"a stranger answered: {got!r}"


def _why(
    ctx: Context,
    engine: str,
    proc: um.Program,
    what: str,
    *,
    api: str | None = None,
    published: int = 0,
) -> None:
    """Name the fault behind a failed promise."""
    ended = um.exited(proc)
    cmdline = _cmdline(proc.pid)
    if ended is not None:
        ctx.diagnose(
            f"{engine} is not running ({ended}): nothing serves the container's "
            "network, so neither its outbound nor its published ports work"
        )
    elif "--disable-host-loopback" in cmdline or "--no-map-gw" in cmdline:
        flag = "--disable-host-loopback" if engine == "slirp4netns" else "--no-map-gw"
        ctx.diagnose(
            f"host loopback disabled: {engine} runs with {flag}, so the gateway "
            "does not lead to the host's 127.0.0.1"
        )
    elif api is not None and what == "the published port":
        ports = um.forwarded(api)
        if published not in ports:
            ctx.diagnose(
                f"port forward missing: slirp4netns publishes no host port "
                f"{published} (list_hostfwd: {ports or 'none'}; add_hostfwd was "
                "not done)"
            )
    elif what == "the published port" and f"{published}:" not in cmdline:
        ctx.diagnose(f"port forward missing: pasta was started without -t {published}:...")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as src:
            return src.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _stop(topo: Topology, proc: um.Program) -> None:
    if isinstance(proc, subprocess.Popen) and proc.poll() is None:  # adopted: left running
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


CHECK = Check(
    name="rootless",
    summary="a rootless container's user-mode network (slirp4netns, pasta) reaches the host's "
    "loopback, publishes ports, and reaches no other namespace, with no kernel bridge",
    body=body,
    reference="rootless.yaml",
    requires=("veth",),
    params={
        "engines": Param(
            "user-mode networks to try, comma-separated (slirp4netns,pasta,podman: a "
            "container rootless Podman starts, with its own slirp4netns)"
        ),
        "service_port": Param("port of the service on the host's loopback"),
        "published": Param("host port published to the container"),
        "container_port": Param("port of the listener in the container"),
        "publish": Param("publish the port (no: the forward is left out)"),
        "host_loopback": Param("let the container reach the host's loopback"),
        "slirp_api": Param(
            "API socket of a slirp4netns already serving the container (started by hand): "
            "adopted, not started, its port forwards as they are"
        ),
    },
)


# run(topology=None, **params) -> Result: on the reference topology unless one is given
run = CHECK.run
