"""The kernel takes the drop trace's device filter of a 1,000-port topology (by name it
would refuse it: EINVAL, a page or more), and the trace then records those devices."""

from __future__ import annotations

import os

from netprobe.traffic._droptrace import EVENTS, DropTrace, Wiring


def test_a_thousand_device_filter_is_accepted_by_the_kernel() -> None:
    names = {"br0": ("switch",), "eth0": tuple(f"h{i}" for i in range(1000))}
    names |= {f"p{i}": ("switch",) for i in range(1000)}
    with DropTrace(Wiring(names, {}), runid=f"t{os.getpid():x}") as trace:  # EINVAL before
        for event in (e for e in EVENTS if e.startswith("net/")):
            if trace.instance.has_event(event):
                with open(os.path.join(trace.instance.path, f"events/{event}/filter")) as f:
                    assert 'name ~ "p[0-9]*"' in f.read()
