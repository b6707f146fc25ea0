"""Bug-report bundles: written when a check fails (BundleRecorder, run_check) or a probe
does (write_probe_bundle), read back, summarised and replayed (replay), and rebuilt
without netprobe (their repro.sh). Namespaces adopted from elsewhere are rebuilt from
their live state."""

from __future__ import annotations

from ._probe_replay import ProbeReplay
from ._probe_write import write_probe_bundle
from ._recorder import BundleRecorder, run_check
from ._replay import Replay, bundle_summary, read_bundle, replay
from ._write import FORMAT, VERSION, write_bundle

__all__ = [
    "FORMAT",
    "VERSION",
    "BundleRecorder",
    "ProbeReplay",
    "Replay",
    "bundle_summary",
    "read_bundle",
    "replay",
    "run_check",
    "write_bundle",
    "write_probe_bundle",
]
