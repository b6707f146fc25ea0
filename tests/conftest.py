"""Shared paths. (The leak guard is the plugin's: netprobe_leak_check in pyproject.toml.)"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

pytest_plugins = ["pytester"]
