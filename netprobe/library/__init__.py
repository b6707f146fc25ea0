"""netprobe's built-in checks: the library (the framework they are written with is
`netprobe.check`). Each sits beside its reference topology; the filter check, five
modules, is a package of its own. (`netprobe.checks.NAME` still imports them.)

Each check is a module registered under the "netprobe.checks" entry-point group, the
same way a third-party package adds its own.
"""

from __future__ import annotations

__all__: list[str] = []
