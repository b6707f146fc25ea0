"""Running several checks: at once in forked processes, or all in one full-kernel VM.

Each check builds its own topology, so checks run side by side share nothing but the
kernel. With `kernel`, every check runs in ONE guest booted from that kernel image (for
what this machine's kernel lacks); results and bundles come back.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import run_check
from .result import Result

__all__ = ["run_checks"]


def run_checks(
    names: list[str],
    topology: str | os.PathLike[str] | None = None,
    *,
    jobs: int = 2,
    kernel: str | os.PathLike[str] | None = None,
    bundle_dir: str | os.PathLike[str] | None = None,
    archive: bool = False,
    progress: Callable[[str], Any] | None = None,
    **params: Any,
) -> list[Result]:
    """Run the named checks; results in the order of `names`. `kernel`: a kernel image,
    or "auto" (the newest Debian kernel in /boot), to run them in a VM."""
    if kernel is not None:
        results = _in_vm(names, topology, params, bundle_dir, kernel)
        if archive:  # the guest wrote plain bundles: pack them here
            _archive(results)
        return results
    options = {"bundle_dir": bundle_dir, "archive": archive}
    done: list[str] = []

    def finished(result: Result) -> Result:
        done.append(f"{result.check} {result.status.value}")
        if progress is not None:
            progress(f"{len(done)}/{len(names)} checks done (last: {done[-1]}) …")
        return result

    if jobs == 1 or len(names) == 1 or topology is not None:
        return [finished(run_check(n, topology, **options, **params)) for n in names]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(run_check, n, None, **options, **params): n for n in names}
        by_name = {futures[f]: finished(f.result()) for f in as_completed(futures)}
        return [by_name[name] for name in names]


def _in_vm(
    names: list[str],
    topology: str | os.PathLike[str] | None,
    params: dict[str, Any],
    bundle_dir: str | os.PathLike[str] | None,
    kernel: str | os.PathLike[str],
) -> list[Result]:
    """Every check in one guest; its bundles come back under `bundle_dir`/vm-STAMP."""
    from ..vm import Case, find_kernel, run_checks_in_vm

    image = find_kernel() if str(kernel) == "auto" else Path(kernel)
    where = str(Path(topology).resolve()) if topology is not None else None
    with tempfile.TemporaryDirectory(prefix="netprobe-vm-") as scratch:
        stamp = time.strftime("vm-%Y%m%dT%H%M%SZ", time.gmtime())
        rwdir = Path(bundle_dir).resolve() / stamp if bundle_dir else Path(scratch)
        cases = [Case(name, name, where, params) for name in names]
        guest = run_checks_in_vm(cases, kernel=image, rwdir=rwdir)
        results = [guest.results[name] for name in names]
    if not bundle_dir:  # the scratch directory and the bundles in it are gone
        for result in results:
            result.bundle = None
    return results


def _archive(results: list[Result]) -> None:
    for result in results:
        if result.bundle and Path(result.bundle).is_dir():
            with tarfile.open(f"{result.bundle}.tar.gz", "w:gz") as tar:
                tar.add(result.bundle, arcname=Path(result.bundle).name)
