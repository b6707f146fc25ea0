"""Diagnosing a network netprobe did not build: `probe` (can A reach B, and where does it
die), on namespaces discovered and adopted, or on a topology given; `drift` (what a reboot
would change: the persistent configuration against the live kernel)."""

from __future__ import annotations

from ._diagnosis import Diagnosis
from ._drift import DriftReport, drift, read_drift, read_persistent
from ._drift_item import Drift
from ._drift_live import LiveState, read_live
from ._run import probe
from ._scope import reachable
from ._service import Service, parse_service

__all__ = [
    "Diagnosis",
    "Drift",
    "DriftReport",
    "LiveState",
    "Service",
    "drift",
    "parse_service",
    "probe",
    "reachable",
    "read_drift",
    "read_live",
    "read_persistent",
]
