"""Diagnosing a network netprobe did not build: `probe` (can A reach B, and where does it
die), on namespaces discovered and adopted, or on a topology given."""

from __future__ import annotations

from ._diagnosis import Diagnosis
from ._run import probe
from ._scope import reachable
from ._service import Service, parse_service

__all__ = ["Diagnosis", "Service", "parse_service", "probe", "reachable"]
