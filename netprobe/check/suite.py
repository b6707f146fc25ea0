"""Running several checks at once, in forked processes.

Each check builds its own topology, so checks run side by side share nothing but the
kernel. (To run them in a full-kernel VM instead: netprobe.vm.run_named_checks.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from . import run_check
from .result import Result

__all__ = ["run_checks"]


def run_checks(
    names: list[str],
    topology: str | os.PathLike[str] | None = None,
    *,
    jobs: int = 2,
    bundle_dir: str | os.PathLike[str] | None = None,
    archive: bool = False,
    progress: Callable[[str], Any] | None = None,
    **params: Any,
) -> list[Result]:
    """Run the named checks; results in the order of `names`."""
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
