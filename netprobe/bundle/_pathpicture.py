"""A failed check's path as a picture in its bundle: path.svg (where Graphviz is) and
path.mmd, the topology with the failing step's probe drawn on it, from its explanation."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..check import Result, Status
from ..errors import SetupError
from ..explain._drawn import explanation_path, rule_roles
from ..topology import Spec, Topology
from ..topology._model import picture
from ..topology._model.pathview import DrawnPath


def failing_path(result: Result, topo: Topology) -> DrawnPath | None:
    """The path of the first failed step that has an explanation (None when none has)."""
    step = next(
        (s for s in result.steps if s.status is Status.FAIL and s.explanation is not None), None
    )
    if step is None or step.explanation is None:
        return None
    title = f"{result.check}: {step.name}"
    return explanation_path(step.explanation, topo, title, rule_roles(topo))


def write_path_picture(drawn: DrawnPath, spec: Spec, path: Path) -> str:
    """path.mmd, and path.svg where Graphviz is; returns the mermaid text (the README
    shows it)."""
    text = picture.mermaid(spec, drawn)
    (path / "path.mmd").write_text(text)
    with contextlib.suppress(SetupError):  # without Graphviz the mermaid is the picture
        (path / "path.svg").write_text(picture.svg(spec, drawn))
    return text
