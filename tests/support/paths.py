"""Where the repository's files are, for tests that read them."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"  # the reference topologies, rulesets and example checks
CAPTURES = ROOT / "captures"  # pcaps made on real topologies (captures/README.md)
