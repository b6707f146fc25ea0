"""One drop trace per topology, made on its first explanation and kept until teardown.

Making a trace instance and removing it costs tens of milliseconds (ring buffers are
allocated and freed per CPU), far more than an explanation's own work. So a topology's
instance is made once, records only while an explanation's probe is out (tracing off and
its buffer emptied in between), and is removed with the topology; at exit too, for
topologies left up. A killed run's instance is removed by the next one, or `netprobe
clean`, by its pid.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import weakref
from collections.abc import Iterator

from ..topology import Topology
from ..traffic._droptrace import DropTrace, Wiring

_cache: weakref.WeakKeyDictionary[Topology, DropTrace] = weakref.WeakKeyDictionary()
_lock = threading.Lock()  # one probe at a time per instance: each empties the buffer


@contextlib.contextmanager
def drop_trace(topo: Topology, wiring: Wiring) -> Iterator[DropTrace]:
    """`topo`'s drop trace, recording for the duration (SetupError or OSError when
    tracefs is unusable; nothing is kept then)."""
    with _lock:
        tracer = _cache.get(topo)
        if tracer is None:
            tracer = DropTrace(wiring, runid=topo.runid)
            tracer.open()
            _cache[topo] = tracer
            topo.add_cleanup(lambda: _close(topo))
        try:
            tracer.begin(wiring)
            yield tracer
        finally:
            tracer.end()


def _close(topo: Topology) -> None:
    with _lock:
        tracer = _cache.pop(topo, None)
    if tracer is not None:
        tracer.close()


@atexit.register
def _close_all() -> None:
    for topo in list(_cache.keys()):
        _close(topo)
