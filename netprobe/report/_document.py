"""The JSON document of `netprobe check --json`: versioned like a bundle's result.json.

The format is described in docs/json.md and docs/netprobe-json.schema.json.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .._version import __version__
from ..check import Result

FORMAT = "netprobe-results"
VERSION = 1
MINOR = 1  # fields added within version 1 (docs/json.md)


def results_document(results: Sequence[Result]) -> dict[str, Any]:
    """The JSON results document for `results`, with its format, version and creation time."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "minor": MINOR,
        "netprobe": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": [result.to_dict() for result in results],
    }
