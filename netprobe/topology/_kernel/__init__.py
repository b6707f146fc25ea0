"""The topology in the kernel: netlink, namespaces, links, TAPs, Open vSwitch and other
daemons, building a spec, the live view of a built one, ownership of what netprobe makes
(run records, processes) and cleanup."""

from __future__ import annotations

