"""The rootless check's negative step: the container does not reach the neighbour
namespace. A failed connect proves nothing alone (the program serving the container may be
dead, or slow), so the step is judged only once the same engine has carried the container
to the host's loopback service, and then by evidence: after the attempt, a second fetch of
that service through the same engine (a barrier: the program has handled the attempt), then
the neighbour's listener's count, settled, and the host side's own route to the neighbour."""

from __future__ import annotations

from dataclasses import dataclass

from netprobe.check import Context

from . import _usermode as um

NEIGHBOUR = "10.89.0.2"


@dataclass(frozen=True)
class Attempt:
    """How the container's try at the neighbour went, through one engine."""

    engine: str
    port: int
    said: str  # what the container's connect ended with (or read)
    reached: bool  # the container read the neighbour's nonce
    barrier: str | None  # None: the fetch of the host's service after it came back


def name(engine: str, port: int) -> str:
    """The step's name."""
    return f"{engine}: container ✗ neighbour {NEIGHBOUR}:{port} (another namespace)"


def route(ctx: Context) -> str:
    """The host side's verdict on the neighbour: `ip route get NEIGHBOUR` there."""
    done = ctx.topo.run("host", ["ip", "route", "get", NEIGHBOUR])
    said = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines()
    return " ".join(said[0].split()) if said else f"exit status {done.returncode}"


def judge(ctx: Context, attempt: Attempt, neighbour: um.Listener, seen: int | None) -> None:
    """Record the step: INCONCLUSIVE unless the outbound path is shown working before and
    after the attempt, else FAIL if the neighbour was reached."""
    step = name(attempt.engine, attempt.port)
    host_side = f"host side: ip route get {NEIGHBOUR}: {route(ctx)}"
    if attempt.barrier is not None:
        ctx.inconclusive(step, f"the container's attempt: {attempt.said}; proves nothing: "
                         f"{attempt.barrier}; {host_side}")  # fmt: skip
        return
    accepted = neighbour.settled(ctx.topo)
    if accepted is None or seen is None:
        ctx.inconclusive(step, f"the container's attempt: {attempt.said}; the neighbour's "
                         f"listener did not answer its own probe; {host_side}")  # fmt: skip
        return
    new = accepted[seen:]
    reached = attempt.reached or bool(new)
    ctx.record(
        step,
        not reached,
        f"the container's attempt: {attempt.said}; then the host's service came back "
        f"through {attempt.engine} (a barrier); the neighbour's listener accepted "
        f"{len(new)} connection(s){' from ' + ', '.join(new) if new else ''}; {host_side}",
    )
    if reached:
        ctx.diagnose(
            f"the host side routes to {NEIGHBOUR}: the container reaches it through "
            f"{attempt.engine} ({host_side}), so another namespace is open to it"
        )


def unproven(engine: str, outbound: bool, barrier: str) -> str | None:
    """Why a failed attempt proves nothing (None: it does): the engine carried nothing to
    the host's service before it, or no longer after it."""
    if not outbound:
        return (
            f"{engine} carried nothing to the host's loopback service before the attempt "
            "(that step failed), so a failed connect says nothing of the neighbour"
        )
    if barrier:
        return (
            f"the container's fetch of the host's service through {engine} after the "
            f"attempt failed ({barrier}), so {engine} may not have handled the attempt"
        )
    return None
