"""The rootless check's Podman path: the same promises, kept by a container rootless Podman
starts (its own slirp4netns and rootlessport), with which Podman, runtime and network
mode ran in the evidence. Where Podman cannot run, the path is a SKIP with the reason."""

from __future__ import annotations

import secrets
import time

from netprobe.check import Context

from . import _podman as pm
from . import _rootless_neighbour as nb
from . import _usermode as um

STARTS = "podman: a container started by rootless Podman (uid 65534) comes up"


def podman_path(
    ctx: Context,
    listeners: tuple[um.Listener, um.Listener, um.Listener],
    ports: pm.Ports,
    *,
    publish: bool,
    host_loopback: bool,
) -> None:
    """The rootless check's Podman path: a real rootless Podman container on slirp4netns
    reaches the host's loopback and is reached through its published port (SKIP where
    Podman cannot run here)."""
    why = pm.refusal()
    if why is not None:
        ctx.skip(STARTS, why)
        return
    before = listeners[2].settled(ctx.topo)
    seen = None if before is None else len(before)
    with pm.private(ctx.topo.runid) as private:
        _run(ctx, pm.Podman(ctx.topo, private), listeners, ports, seen,
             publish=publish, host_loopback=host_loopback)  # fmt: skip


def _run(
    ctx: Context,
    podman: pm.Podman,
    listeners: tuple[um.Listener, um.Listener, um.Listener],
    ports: pm.Ports,
    seen: int | None,
    *,
    publish: bool,
    host_loopback: bool,
) -> None:
    name = f"netprobe-{ctx.topo.runid}"
    t0 = time.monotonic()
    try:
        done = podman.import_image()
        t1 = time.monotonic()
        if done.returncode == 0:
            nonce = secrets.token_hex(8)
            argv = pm.run_argv(name, ports, nonce, publish=publish, loopback=host_loopback)
            done = podman(*argv)
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or ["no message"])[-1]
            ctx.skip(STARTS, f"podman refuses to run here: {said} ({pm.REMEDY})")
            return
        said = podman.logs_until(name, "ready")
        timing = f"image import {t1 - t0:.1f} s, run until ready {time.monotonic() - t1:.1f} s"
        if not _started(ctx, podman, name, said, timing):
            return
        _promises(ctx, podman, name, said, listeners, ports, nonce, seen)
    finally:
        stopped = podman.remove(name)
        left = podman.marked()
        ctx.record(
            "podman: every process it left running is stopped",
            not left,
            f"podman rm -f, then by pid: {', '.join(stopped) or 'nothing left'}"
            + (f"; still running: {left}" if left else ""),
        )


def _started(ctx: Context, podman: pm.Podman, name: str, said: str, timing: str) -> bool:
    info = podman.inspect(name)
    host_config = info.get("HostConfig")
    mode = host_config.get("NetworkMode") if isinstance(host_config, dict) else None
    slirp = [c for c in podman.marked().values() if c.startswith("/usr/bin/slirp4netns")]
    detail = (
        f"podman {podman.version()}, runtime {info.get('OCIRuntime', '?')}, network "
        f"{mode or '?'}, cgroup manager cgroupfs, storage vfs, as uid {pm.NOBODY} with one "
        f"uid mapped; {timing}; Podman's slirp4netns: {slirp[0] if slirp else 'not found'}"
    )
    if "ready" in said.split():
        return ctx.record(STARTS, True, detail)
    ctx.diagnose(f"the Podman container never became ready: {said.strip()[-300:]}")
    return ctx.record(STARTS, False, f"{detail}; it said: {said.strip()[-300:]}")


def _promises(
    ctx: Context,
    podman: pm.Podman,
    name: str,
    said: str,
    listeners: tuple[um.Listener, um.Listener, um.Listener],
    ports: pm.Ports,
    nonce: str,
    seen: int | None,
) -> None:
    service = listeners[0]
    lines = {ln.split(":", 1)[0]: ln.split(":", 1)[1].strip() for ln in said.splitlines()
             if ":" in ln}  # fmt: skip
    got = lines.get("host", "no answer")
    step = f"podman: container → {pm.SLIRP_GW}:{ports.service} reaches the host's 127.0.0.1"
    if not ctx.record(step, service.nonce.decode() in got, f"the container read: {got}"):
        slirp = " ".join(c for c in podman.marked().values() if "slirp4netns" in c)
        if "--disable-host-loopback" in slirp:
            ctx.diagnose(
                "host loopback disabled: Podman's slirp4netns runs with "
                "--disable-host-loopback (--network slirp4netns:allow_host_loopback=false), so "
                f"{pm.SLIRP_GW} does not lead to the host's 127.0.0.1"
            )
    reply = um.fetch(ctx.topo, "host", "127.0.0.1", ports.published)
    step = f"podman: host 127.0.0.1:{ports.published} (published) → container:{ports.container}"
    ok = reply == f"{nonce}\n".encode()
    detail = "the container's nonce came back" if ok else str(reply)
    if not ctx.record(step, ok, f"{detail} ({nonce})"):
        mapped = podman("port", name).stdout.strip()
        if f":{ports.published}" not in mapped:
            ctx.diagnose(
                f"port forward missing: the Podman container publishes no host port "
                f"{ports.published} (podman port: {mapped or 'none'}; started without "
                f"-p 127.0.0.1:{ports.published}:{ports.container})"
            )
    _neighbour(ctx, lines, listeners, ports, seen)


def _neighbour(
    ctx: Context,
    lines: dict[str, str],
    listeners: tuple[um.Listener, um.Listener, um.Listener],
    ports: pm.Ports,
    seen: int | None,
) -> None:
    """The container's nc tried the neighbour, then the host's service again (the
    barrier), before it said ready."""
    service, _inside, neighbour = listeners
    outbound = service.nonce.decode() in lines.get("host", "")
    tried = lines.get("neighbour")
    again = lines.get("barrier", "not tried")
    barrier = "" if service.nonce.decode() in again else f"the container read: {again}"
    why = nb.unproven("podman", outbound, barrier)
    if tried is None:
        why = "the container's nc never tried the neighbour (it said nothing of it)"
    said = f"the container's nc: {tried or 'not tried'}"
    reached = tried is not None and neighbour.nonce.decode() in tried
    nb.judge(ctx, nb.Attempt("podman", ports.container, said, reached, why), neighbour, seen)
