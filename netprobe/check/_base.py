"""Checks: a name, a reference topology, what the machine must have, and a body of steps.

A check's body is a plain function ``body(ctx, **params)`` that probes the topology
through its `Context` (each expectation becomes a step with its evidence) and names the
fault it finds with `ctx.diagnose`. `Check.run` does the rest: SKIP when a capability is
missing, build the reference topology when none is given, turn errors into ERROR.
"""

from __future__ import annotations

import inspect
import json
import os
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .._capabilities import probe
from .._privilege import require_root
from ..errors import NetprobeError, SetupError, SpecError
from ..expect import Outcome, Verdict, Where, expect
from ..topology import Port, Spec, Topology, as_spec, build
from ..topology._model.port import host_and_ifname
from ..traffic import Template
from ._param import Param, body_params, parse_params
from ._reference import module_dir, reference_path
from ._result import Result, Status, Step, overall

if TYPE_CHECKING:
    from ..explain import Explanation


MAX_EXPLAINED = 4  # failed expectations explained per check run (each costs ~0.2 s)


class Context:
    """What a check body works with: the topology, its steps, and its diagnosis."""

    def __init__(self, topo: Topology, *, explain: bool = True) -> None:
        self.topo = topo
        self.steps: list[Step] = []
        self.diagnoses: list[str] = []
        self.planned: list[str] = []
        self._explanations_left = MAX_EXPLAINED if explain else 0

    def plan(self, *steps: str) -> None:
        """Declare steps this run means to take (their names, or their `key`s): those it
        does not take, because it stopped early, are listed in the result as not run."""
        self.planned += [s for s in steps if s not in self.planned]

    def expect(
        self, name: str, frame: Template, port: str | Port, where: Where, *,
        key: str | None = None, **options: Any,
    ) -> Outcome:
        """Run an expectation and record it as a step; a failed one is explained. `key`:
        the step's stable identity when its name carries values that vary between runs."""
        port = str(port)
        outcome = expect(self.topo, frame, port, where, **options)
        step = Step(name, Status.of(outcome.verdict), outcome.reason, outcome, key=key)
        self.steps.append(step)
        if outcome.verdict is Verdict.FAIL:
            self.explain(step, frame, port)
        return outcome

    def explain(self, step: Step, frame: Template, port: str | Port) -> Explanation | None:
        """Explain a failed step whose probe was `frame` sent into `port` (steps of
        `expect` are explained already; a check probing its own way calls this). At most
        MAX_EXPLAINED per run; explaining never turns a FAIL into an ERROR."""
        from ..explain import explain

        if self._explanations_left <= 0:
            return None
        self._explanations_left -= 1
        try:
            step.explanation = explain(self.topo, frame, str(port), step.outcome)
        except Exception as exc:  # odd tool output included: the verdict stands
            step.detail += f" (not explained: {type(exc).__name__}: {exc})"
        return step.explanation

    def record(self, name: str, ok: bool, detail: str = "", *, key: str | None = None) -> bool:
        """Record a step established otherwise (state read back, a command's answer)."""
        self.steps.append(Step(name, Status.PASS if ok else Status.FAIL, detail, key=key))
        return ok

    def skip(self, name: str, why: str, *, key: str | None = None) -> None:
        """Record a step this machine or topology cannot take, and why (shown in the summary)."""
        self.steps.append(Step(name, Status.SKIP, why, key=key))

    def inconclusive(self, name: str, why: str, *, key: str | None = None) -> None:
        """Record a step whose answer could not be established: never a PASS."""
        self.steps.append(Step(name, Status.INCONCLUSIVE, why, key=key))

    def not_run(self) -> list[str]:
        """The planned steps not taken, in the order planned."""
        taken = {s.id for s in self.steps} | {s.name for s in self.steps}
        return [s for s in self.planned if s not in taken]

    def diagnose(self, text: str) -> None:
        """Name the fault behind a failure, in words a person acts on."""
        if text not in self.diagnoses:
            self.diagnoses.append(text)

    def link(self, host: str | Port, name: str | None = None) -> dict[str, Any] | None:
        """The kernel's detailed view of one link (`ip -d -j link`), or None if absent:
        ``link(host, ifname)``, or ``link(port)`` with a port (a Port or "HOST:IFNAME")."""
        host, name = host_and_ifname(host, name)
        ifname = self.topo.ifname(host, name)
        result = self.topo.run(host, ["ip", "-d", "-j", "link", "show", "dev", ifname])
        if not result.ok:
            return None
        links: list[dict[str, Any]] = json.loads(result.stdout)
        return links[0] if links else None

    def sysctl(self, host: str, key: str) -> str:
        """The value of sysctl `key` ("net.ipv4.ip_forward") inside `host`, as text."""
        path = "/proc/sys/" + key.replace(".", "/")
        return self.topo.run(host, ["cat", path]).stdout.strip()


class Recorder(Protocol):
    """What a check run reports to as it goes (netprobe.bundle.BundleRecorder writes a
    bug-report bundle of a failure)."""

    def before(self, topo: Topology, *, given: bool) -> None:
        """The topology is up and the body about to run (`given`: the caller's own live
        topology, which may have been changed by hand since it was built)."""

    def after(self, check: Check, result: Result, topo: Topology, params: dict[str, Any]) -> None:
        """The verdict, while the topology still stands; must not raise."""


@dataclass(frozen=True)
class Check:
    """A named, runnable check. `body(ctx, **params)` holds its steps.

    `params`: name → what it means (a help text, or a `Param` with its parser); values
    are parsed before anything is built. The body's keyword parameters are what the check
    takes: each declared name must be one of them (SpecError here otherwise), and one not
    declared is described by its annotation (`parameters()`). `reference` is looked up
    beside the module that defines `body` (or in `home`), then among netprobe's own
    topologies."""

    name: str
    summary: str
    body: Callable[..., None]
    reference: str
    requires: tuple[str, ...] = ()
    params: Mapping[str, str | Param] = field(default_factory=dict)
    home: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        body_params(self.name, self.body, self.params)  # a declared name the body lacks

    def parameters(self) -> dict[str, str | Param]:
        """Every parameter the check takes, with what it means: the body's keyword
        parameters, described by `params` or else by their annotations and defaults."""
        return body_params(self.name, self.body, self.params)

    def reference_file(self) -> Path:
        """The reference topology's file; SpecError (the check cannot run) when missing."""
        beside = Path(self.home) if self.home is not None else module_dir(self.body)
        return reference_path(self.reference, beside)

    def parse_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` as the body takes them; SpecError naming one it does not take or one
        whose value does not parse."""
        self._check_params(params)
        return parse_params(self.name, self.body, self.params, params)

    def run(
        self,
        topology: Topology | Spec | str | os.PathLike[str] | None = None,
        *,
        recorder: Recorder | None = None,
        **params: Any,
    ) -> Result:
        """Run on `topology` (a live one, a spec, a file) or on the reference topology.

        A `recorder` sees the topology before the body runs and the result while the
        topology still stands (netprobe.bundle's writes a bug-report bundle).
        Without root it raises SetupError (a missing privilege is an error, not a SKIP).
        """
        start = time.perf_counter()
        values = self.parse_params(params)
        require_root()  # an error, not a SKIP: no check runs without the privileges
        skipped = self._missing()
        if skipped is not None:
            return skipped
        try:
            with ExitStack() as stack:
                topo, label = self._topology(topology, stack)
                if recorder is not None:
                    recorder.before(topo, given=isinstance(topology, Topology))
                result = self._steps(Context(topo), values, label, start)
                if recorder is not None:
                    recorder.after(self, result, topo, dict(params))
        except SetupError as exc:
            return Result(
                self.name,
                Status.SKIP,
                str(exc),
                diagnosis=exc.remedy,
                duration=time.perf_counter() - start,
            )
        except NetprobeError as exc:
            return Result(self.name, Status.ERROR, str(exc), duration=time.perf_counter() - start)
        except Exception as exc:  # a bug outside the body (its topology, say): this check only
            return Result(self.name, Status.ERROR, _broke(exc), traceback=traceback.format_exc(),
                          duration=time.perf_counter() - start)
        return result

    def _steps(self, ctx: Context, values: dict[str, Any], label: str, start: float) -> Result:
        """Run the body: its verdict; an error after steps keeps what they established."""
        try:
            self.body(ctx, **values)
        except SetupError:
            raise
        except NetprobeError as exc:
            if not ctx.steps:
                raise
            return self._result(ctx, label, start, error=str(exc))
        except Exception as exc:  # a bug in the check: ERROR, the topology still torn down
            return self._result(ctx, label, start, error=_broke(exc), trace=traceback.format_exc())
        return self._result(ctx, label, start)

    def _result(
        self, ctx: Context, label: str, start: float, *, error: str | None = None,
        trace: str | None = None,
    ) -> Result:
        status = Status.ERROR if error is not None else overall(ctx.steps)
        not_run = ctx.not_run()
        summary = error if error is not None else _summary(status, ctx.steps)
        if not_run:
            summary += f"; {len(not_run)} not run"
        return Result(
            self.name,
            status,
            summary,
            ctx.steps,
            "; ".join(ctx.diagnoses) or None,
            time.perf_counter() - start,
            label,
            not_run=not_run,
            traceback=trace,
        )

    def _check_params(self, params: Mapping[str, Any]) -> None:
        try:
            inspect.signature(self.body).bind(None, **params)
        except TypeError:
            known = ", ".join(self.parameters()) or "none"
            raise SpecError(
                f"check {self.name} takes parameters {known}, not {', '.join(params)}"
            ) from None

    def _missing(self) -> Result | None:
        absent = [c for c in probe(self.requires) if not c.present]
        if not absent:
            return None
        reasons = "; ".join(f"{c.name}: {c.detail}" for c in absent)
        remedies = "; ".join(c.remedy for c in absent if c.remedy)
        return Result(
            self.name, Status.SKIP, f"this machine lacks {reasons}", diagnosis=remedies or None
        )

    def _topology(
        self, topology: Topology | Spec | str | os.PathLike[str] | None, stack: ExitStack
    ) -> tuple[Topology, str]:
        if isinstance(topology, Topology):
            return topology, topology.spec.name
        spec = as_spec(self.reference_file() if topology is None else topology)
        return stack.enter_context(build(spec)), spec.source or spec.name


def _broke(exc: Exception) -> str:
    return f"the check broke: {type(exc).__name__}: {exc} (a bug: see the traceback)"


def _summary(status: Status, steps: list[Step]) -> str:
    """One line: what passed, and what was skipped or went wrong first."""
    if not steps:
        return "no steps: nothing was established"
    skipped = [s for s in steps if s.status is Status.SKIP]
    if status in (Status.PASS, Status.SKIP):
        passed = len(steps) - len(skipped)
        text = f"{passed} steps passed"
        if skipped:
            text += f", {len(skipped)} skipped ({skipped[0].name}: {skipped[0].detail})"
        return text
    first = next(s for s in steps if s.status is status)
    return f"{first.name}: {first.detail}"
