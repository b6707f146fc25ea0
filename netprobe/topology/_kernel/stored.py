"""A lab's spec kept with the lab: `topo up` stores it in the run's own directory.

A lab is then found and drawn by its name from any directory, after its file moved or
was edited. The directory holds the file's text as given (`given.yaml`), and
`topology.yaml`: the spec as built, whose ruleset files are copies kept beside it under
relative names, so it loads wherever the originals went. The directory goes with the
lab (`topo down`, `netprobe clean`).
"""

from __future__ import annotations

import os
from contextlib import suppress

from .._model.dump import dump
from .._model.load import load
from .._model.spec import Spec
from . import owner

_SPEC = "topology.yaml"
_GIVEN = "given.yaml"
_RULESETS = "rulesets"


def spec_dir(runid: str) -> str:
    """Where run `runid` keeps its spec."""
    return os.path.join(owner.private_dir(runid), "spec")


def store_spec(spec: Spec, runid: str) -> None:
    """Keep `spec` (its file's text, its rulesets) in run `runid`'s directory."""
    folder = spec_dir(runid)
    os.makedirs(owner.private_dir(runid), mode=0o700, exist_ok=True)
    os.makedirs(os.path.join(folder, _RULESETS), mode=0o700, exist_ok=True)
    copies: dict[str, str] = {}
    for host in spec.hosts:
        for n, firewall in enumerate(host.firewall):
            if firewall.path in copies:
                continue
            name = f"{_RULESETS}/{host.name}-{n}{os.path.splitext(firewall.path)[1]}"
            with open(firewall.path, "rb") as src, open(os.path.join(folder, name), "wb") as out:
                out.write(src.read())
            copies[firewall.path] = name
    _write(os.path.join(folder, _SPEC), dump(spec, rename=lambda p: copies.get(p, p)))
    if spec.source:
        with suppress(OSError), open(spec.source) as src:
            _write(os.path.join(folder, _GIVEN), src.read())


def stored_spec(runid: str) -> Spec | None:
    """The spec run `runid` stored, or None (a lab made before specs were stored)."""
    path = os.path.join(spec_dir(runid), _SPEC)
    return load(path) if os.path.isfile(path) else None


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as out:
        out.write(text)
    os.replace(tmp, path)
