"""Checks: named, composable units that build a topology, probe it and give a verdict."""

from __future__ import annotations

from .registry import GROUP, Registration, load_check, registered

__all__ = ["GROUP", "Registration", "load_check", "registered"]
