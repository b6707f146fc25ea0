"""Running several checks at once, each in a forked worker of its own.

Each check builds its own topology, so checks run side by side share nothing but the
kernel. (To run them in a full-kernel VM instead: netprobe.vm.run_named_checks.)

Workers never outlive the run: each asks the kernel for SIGTERM when its parent dies
(a SIGKILL of `netprobe check all` included), and tears its topology down on it; the
run's record lists them, so `netprobe clean` stops any that are left. A SIGTERM to the
parent stops the workers the same way and then exits 143, as Ctrl-C exits 130.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any

from .._privilege import require_root
from ..expect import _evidence as evidence
from ..topology import Spec
from ..topology._kernel import owner, process
from . import run_check
from ._base import Recorder
from ._result import Result, Status

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def run_checks(
    names: list[str],
    topology: Spec | str | os.PathLike[str] | None = None,
    *,
    jobs: int = 2,
    recorder: Recorder | None = None,
    progress: Callable[[str], Any] | None = None,
    **params: Any,
) -> list[Result]:
    """Run the named checks (on `topology`, a Spec or its file, or each on its reference);
    results in the order of `names`. A check that crashes (a bug in it, or its worker
    killed) is ERROR with the reason; the others still run. `recorder`: as for Check.run
    (each worker has its own copy). Without root: SetupError."""
    require_root()
    options = {"recorder": recorder}
    done: list[str] = []

    def finished(result: Result) -> Result:
        done.append(f"{result.check} {result.status.value}")
        if progress is not None:
            progress(f"{len(done)}/{len(names)} checks done (last: {done[-1]}) …")
        return result

    with _terminate_raises():
        if jobs == 1 or len(names) == 1 or topology is not None:
            return [finished(_guarded(n, topology, options, params)) for n in names]
        with owner.scratch_run("check") as runid:
            pool = _Pool(runid, jobs)
            try:
                by_name = {n: finished(r) for n, r in pool.run(names, options, params)}
            finally:
                pool.stop()
    return [by_name[name] for name in names]


def _guarded(
    name: str, topology: Any, options: dict[str, Any], params: dict[str, Any]
) -> Result:
    """run_check, with any exception that escapes it turned into an ERROR result."""
    try:
        return run_check(name, topology, **options, **params)
    except Exception as exc:  # run_check turns a check's bugs into ERROR; this is the rest
        why = f"{type(exc).__name__}: {exc}"
        return Result(name, Status.ERROR, why, traceback=traceback.format_exc())


@dataclass
class _Worker:
    name: str
    pid: int
    fd: int  # read end of the pipe its pickled Result comes back on
    data: bytes = b""


class _Pool:
    """At most `jobs` forked workers, one check each, listed in run `runid`'s record."""

    def __init__(self, runid: str, jobs: int) -> None:
        self.runid = runid
        self.jobs = jobs
        self.running: dict[int, _Worker] = {}  # by fd

    def run(
        self, names: list[str], options: dict[str, Any], params: dict[str, Any]
    ) -> Iterator[tuple[str, Result]]:
        queue = list(names)
        while queue or self.running:
            while queue and len(self.running) < self.jobs:
                worker = self._fork(queue.pop(0), options, params)
                self.running[worker.fd] = worker
            ready, _, _ = select.select(list(self.running), [], [])
            for fd in ready:
                chunk = os.read(fd, 1 << 16)
                if chunk:
                    self.running[fd].data += chunk
                    continue
                worker = self.running.pop(fd)
                os.close(fd)
                yield worker.name, _collect(worker)

    def _fork(self, name: str, options: dict[str, Any], params: dict[str, Any]) -> _Worker:
        read, write = os.pipe()
        go_read, go_write = os.pipe()
        parent = os.getpid()
        # Signals wait until the child has handlers of its own: one arriving in between
        # would unwind the parent's stack in the child (its finally clauses, its record).
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(read)
                os.close(go_write)
                _become_worker(parent, blocked)
                if os.read(go_read, 1):  # listed in the record first, so clean finds it
                    code = _work(write, name, options, params)
            finally:
                evidence.discard()  # os._exit runs no exit handlers
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(write)
        os.close(go_read)
        try:
            self._note(name, pid)
        finally:  # without a record entry, the worker still starts: clean would miss it
            os.write(go_write, b"g")
            os.close(go_write)
        return _Worker(name, pid, read)

    def _note(self, name: str, pid: int) -> None:
        record = next((r for r in owner.read_records() if r.runid == self.runid), None)
        if record is None:
            return
        entry = {"name": f"check {name}", "pid": pid, "start_time": owner.process_start_time(pid)}
        owner.update(replace(record, processes=[*record.processes, entry]))

    def stop(self) -> None:
        """Stop the workers still running (they tear down on SIGTERM) and reap them."""
        process.stop(
            {w.pid: f"check {w.name}" for w in self.running.values()}, grace=process.WORKER_GRACE
        )
        for worker in self.running.values():
            os.close(worker.fd)
            _reap(worker.pid)
        self.running.clear()


def _become_worker(parent: int, blocked: set[int | signal.Signals]) -> None:
    """In a fresh worker: its own signal handlers, then the signals it was spared."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so that teardown runs
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    process.die_with_parent(signal.SIGTERM, parent)


def _work(fd: int, name: str, options: dict[str, Any], params: dict[str, Any]) -> int:
    """The worker's whole life: run the check, send its Result back; its exit code."""
    try:
        result = _guarded(name, None, options, params)
        with os.fdopen(fd, "wb") as out:
            out.write(pickle.dumps(result))
        return 0
    except SystemExit as exc:  # on SIGTERM, once the topology is down
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # Ctrl-C; the parent says what happened
        return 1


def _collect(worker: _Worker) -> Result:
    status = _reap(worker.pid)
    if worker.data:
        try:
            result: Result = pickle.loads(worker.data)
            return result
        except Exception as exc:
            why = f"its result could not be read back ({exc})"
    elif os.WIFSIGNALED(status):
        why = f"its worker was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    else:
        why = f"its worker exited {os.waitstatus_to_exitcode(status)} without a result"
    return Result(worker.name, Status.ERROR, f"the check did not finish: {why}")


def _reap(pid: int) -> int:
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Unwind once: a second SIGTERM (clean, or a group kill after the parent's death)
    must not cut the teardown the first one started short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


@contextmanager
def _terminate_raises() -> Iterator[None]:
    """SIGTERM unwinds the parent like Ctrl-C (workers stopped, record removed), unless
    the program installed a handler of its own."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
