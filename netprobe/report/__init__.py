"""Rendering for people and machines: text tables, summaries (JSON and bundles come later)."""

from __future__ import annotations

__all__: list[str] = []
