"""`netprobe.clean`: everything killed runs left behind, as `netprobe clean` removes it."""

from __future__ import annotations

from ..topology import CleanReport
from ..topology import clean as clean_runs
from ._tracefs import remove_stale


def clean(*, all: bool = False) -> CleanReport:
    """Remove what killed netprobe runs left behind, and nothing else: their processes,
    daemons, namespaces, links and records (`topology.clean`; with `all`, persistent
    topologies too), then the drop-trace instances of processes that are gone (tracing
    sits above the topology layer, so it is done here)."""
    report = clean_runs(all=all)
    report.removed_trace_instances = remove_stale()
    return report
