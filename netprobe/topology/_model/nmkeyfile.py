"""NetworkManager's keyfile profiles (nm-settings-keyfile(5)) → the persistent model."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import SpecError
from .persistent import PersistentConfig

_IGNORED_SUFFIXES = ("~", ".swp", ".swpx", ".bak", ".orig", ".rej", ".rpmnew", ".rpmsave",
                     ".tmp", ".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp")  # fmt: skip


def is_ignored_name(name: str) -> bool:
    """Whether NetworkManager skips a file of this name in its keyfile directory."""
    return name.startswith(".") or name.endswith(_IGNORED_SUFFIXES)


def looks_like_keyfile(text: str) -> bool:
    """Whether the first line of `text` that is not a comment opens a [group]."""
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            return line.startswith("[") and line.endswith("]")
    return False


def read_keyfiles(paths: Sequence[str]) -> PersistentConfig:
    """The profiles in the keyfiles at `paths`, masters resolved among them."""
    raise SpecError("NetworkManager keyfiles are not read yet", file=paths[0])
