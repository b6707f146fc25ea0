"""A topology's one drop trace, for whoever needs the kernel's drop reasons there.

Making a trace instance and removing it costs tens of milliseconds (ring buffers are
allocated and freed per CPU), far more than the probe it serves. So a topology has one
instance, whoever uses it (an explanation's probe, a late expectation's twin): made on
first use, recording only while it is held (tracing off and its buffer emptied in
between), its device filter following the topology's devices, removed with the topology
and at exit for topologies left up. A killed run's instance is removed by the next one,
or `netprobe clean`, by its pid. Each use empties the buffer it reads, so one use at a
time: a lock per topology.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import weakref
from collections.abc import Iterator

from ..errors import SetupError
from ..topology import Topology
from ._droptrace import DropTrace, Wiring


class _Shared:
    """One topology's trace, its lock, and why there is none (tracefs unusable)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.trace: DropTrace | None = None
        self.broken: str | None = None

    def close(self) -> None:
        if self.trace is not None:
            self.trace.close()
            self.trace = None


_cache: weakref.WeakKeyDictionary[Topology, _Shared] = weakref.WeakKeyDictionary()
_guard = threading.Lock()  # over _cache


@contextlib.contextmanager
def drop_trace(topo: Topology, wiring: Wiring, *, wait: bool = True) -> Iterator[DropTrace]:
    """`topo`'s drop trace, recording `wiring`'s devices for the duration. SetupError or
    OSError when tracefs is unusable (nothing is kept, and later uses fail at once with
    the same message), or, with `wait=False`, when another use holds it."""
    shared = _shared(topo)
    if not shared.lock.acquire(blocking=wait):
        raise SetupError("the topology's drop trace is in use by another probe")
    try:
        trace = _opened(topo, shared, wiring)
        try:
            trace.begin(wiring)
        except BaseException:
            shared.close()  # the next use makes a fresh one
            raise
        try:
            yield trace
        finally:
            trace.end()
    finally:
        shared.lock.release()


def _shared(topo: Topology) -> _Shared:
    with _guard:
        shared = _cache.get(topo)
        if shared is None:
            shared = _cache[topo] = _Shared()
            topo.add_cleanup(lambda: _close(topo))
        return shared


def _opened(topo: Topology, shared: _Shared, wiring: Wiring) -> DropTrace:
    if shared.broken is not None:
        raise SetupError(shared.broken)
    if shared.trace is None:
        trace = DropTrace(wiring, runid=topo.runid)
        try:
            trace.open()
        except (SetupError, OSError) as exc:
            shared.broken = str(exc)
            raise
        shared.trace = trace
    return shared.trace


def held_instances() -> list[str]:
    """The trace instances the live topologies hold (each removed at its teardown)."""
    with _guard:
        shared = list(_cache.values())
    return [s.trace.instance.name for s in shared if s.trace is not None]


def _close(topo: Topology) -> None:
    with _guard:
        shared = _cache.pop(topo, None)
    if shared is not None:
        with shared.lock:
            shared.close()


@atexit.register
def _close_all() -> None:
    with _guard:
        topos = list(_cache.keys())
    for topo in topos:
        _close(topo)
