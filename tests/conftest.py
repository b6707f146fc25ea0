"""pytester for the plugin's tests; `handmade` (networks made by hand, tests/support/handmade.py)
for every test. (Shared paths and helpers: tests/support. The leak guard is the plugin's:
netprobe_leak_check in pyproject.toml.)"""

from __future__ import annotations

pytest_plugins = ["pytester", "support.handmade"]
