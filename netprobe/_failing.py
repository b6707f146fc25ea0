"""Hooks shown a failed result just before its CheckFailed is raised, while what it was
decided on (the topology, the state a test set up) still stands: the pytest plugin
explains failing expectations this way. Cheap to import, as the plugin registers at start.
"""

from __future__ import annotations

from collections.abc import Callable

Hook = Callable[[object], None]

_hooks: list[Hook] = []


def register(hook: Hook) -> Callable[[], None]:
    """Show every failed result to `hook` from now on; returns what unregisters it."""
    _hooks.append(hook)

    def remove() -> None:
        if hook in _hooks:
            _hooks.remove(hook)

    return remove


def failing(result: object) -> None:
    """Show `result`, about to be raised in a CheckFailed, to every hook."""
    for hook in list(_hooks):
        try:
            hook(result)
        except Exception:  # a hook's error must never replace the failure
            continue
