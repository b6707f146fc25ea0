"""Running a check so that a failure leaves a bug-report bundle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..check import Check, Result, Status
from ..check import run_check as run_plain
from ..check._registry import source_file
from ..topology import Port, Topology
from ._state import topology_state
from ._write import write_bundle

_BUNDLED = (Status.FAIL, Status.INCONCLUSIVE, Status.ERROR)  # ERROR: once steps were taken


class BundleRecorder:
    """Writes a bundle into `directory` when a run fails, is inconclusive or breaks
    after taking steps (and a .tar.gz of it with `archive`)."""

    def __init__(self, directory: str | os.PathLike[str], *, archive: bool = False) -> None:
        self.directory = Path(directory)
        self.archive = archive
        self._found: dict[str, dict[str, Any]] | None = None

    def before(self, topo: Topology, *, given: bool) -> None:
        """Note the state of a topology handed to the check (`given`), for its bundle."""
        # A live topology handed to a check may have been changed by hand since it was
        # built: its bundle needs the state as the check found it.
        self._found = topology_state(topo) if given else None

    def after(self, check: Check, result: Result, topo: Topology, params: dict[str, Any]) -> None:
        """Write the bundle; one that cannot be written is said, never fatal."""
        if result.status not in _BUNDLED or not result.steps:
            return
        try:
            write_bundle(
                result,
                topo,
                self.directory,
                params=_as_text(params),
                archive=self.archive,
                before=self._found,
                check_file=source_file(check),
            )
        except Exception as exc:  # the verdict stands whatever happens to its bundle
            result.bundle = None
            result.summary += f" (no bug-report bundle: {type(exc).__name__}: {exc})"


def _as_text(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as given, ports as their text: a bundle stores them as JSON."""

    def plain(value: Any) -> Any:
        if isinstance(value, Port):
            return str(value)
        if isinstance(value, (list, tuple)) and any(isinstance(v, Port) for v in value):
            return [str(v) for v in value]
        return value

    return {key: plain(value) for key, value in params.items()}


def run_check(
    name: str,
    topology: Any = None,
    *,
    bundle_dir: str | os.PathLike[str] | None = None,
    archive: bool = False,
    **params: Any,
) -> Result:
    """Run the check `name` (on its reference topology unless one is given): when it
    fails or is inconclusive and `bundle_dir` is given, a bug-report bundle is written
    there (and a .tar.gz of it with `archive`) before the topology goes."""
    recorder = BundleRecorder(bundle_dir, archive=archive) if bundle_dir is not None else None
    return run_plain(name, topology, recorder=recorder, **params)
