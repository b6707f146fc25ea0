"""pytester for the plugin's tests. (Shared paths and helpers: tests/support. The leak guard is
the plugin's: netprobe_leak_check in pyproject.toml.)"""

from __future__ import annotations

pytest_plugins = ["pytester"]
