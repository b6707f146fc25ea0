"""The topology as a description: specs (frozen dataclasses), loading them from YAML,
validating, dumping back, and drawing. Pure: nothing here touches the kernel."""

from __future__ import annotations

