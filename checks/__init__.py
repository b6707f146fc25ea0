"""netprobe's built-in checks, installed as `netprobe.checks`.

Each check is a module registered under the "netprobe.checks" entry-point group, the
same way a third-party package adds its own.
"""

from __future__ import annotations

__all__: list[str] = []
