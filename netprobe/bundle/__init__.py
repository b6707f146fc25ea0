"""Bug-report bundles: written when a check fails (BundleRecorder, run_check), read back,
summarised and replayed (replay), and rebuilt without netprobe (their repro.sh)."""

from __future__ import annotations

from ._recorder import BundleRecorder, run_check
from ._replay import Replay, bundle_summary, read_bundle, replay
from ._write import FORMAT, VERSION, write_bundle

__all__ = [
    "FORMAT",
    "VERSION",
    "BundleRecorder",
    "Replay",
    "bundle_summary",
    "read_bundle",
    "replay",
    "run_check",
    "write_bundle",
]
