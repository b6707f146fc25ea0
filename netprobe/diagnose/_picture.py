"""`netprobe probe --picture FILE`: the topology's picture with the probe's path on it,
in the format FILE's extension names (.svg; .mmd mermaid; .md mermaid in Markdown; .dot)."""

from __future__ import annotations

from pathlib import Path

from ..errors import SpecError
from ..topology import Topology
from ..topology._model import picture
from ._diagnosis import Diagnosis

FORMATS = {".svg": "svg", ".mmd": "mermaid", ".md": "markdown", ".dot": "dot"}


def picture_format(path: str | Path) -> str:
    """The format FILE's extension names; SpecError for one it does not."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise SpecError(
            f"--picture {path}: say the format by its extension: " + ", ".join(FORMATS)
        )
    return fmt


def check_picture(path: str | Path) -> None:
    """Refuse, before anything is sent, a FILE whose picture cannot be drawn."""
    import shutil

    from ..errors import SetupError

    if picture_format(path) == "svg" and shutil.which("dot") is None:
        raise SetupError(
            f"--picture {path}: drawing SVG needs Graphviz",
            remedy="apt-get install graphviz (or name a .mmd, .md or .dot file)",
        )


def write_picture(diagnosis: Diagnosis, topo: Topology, path: str | Path) -> None:
    """Draw `diagnosis`'s probe over `topo` (read now: which hosts NAT or filter) into
    `path`."""
    from ..explain._drawn import probe_path, rule_roles

    fmt = picture_format(path)
    drawn = probe_path(diagnosis.result, diagnosis.explanation, rule_roles(topo))
    if fmt == "markdown":
        text = f"# {drawn.title}\n\n```mermaid\n{picture.mermaid(topo.spec, drawn)}```\n"
    else:
        text = getattr(picture, fmt)(topo.spec, drawn)
    try:
        Path(path).write_text(text)
    except OSError as exc:  # the diagnosis stands; the notes say the picture is missing
        diagnosis.notes.append(f"no picture: {path}: {exc.strerror}")
        return
    diagnosis.picture = str(path)


def bundle_picture(diagnosis: Diagnosis, topo: Topology, bundle: Path) -> None:
    """path.mmd, and path.svg where Graphviz is, in a failed probe's bundle."""
    import contextlib

    from ..errors import SetupError
    from ..explain._drawn import probe_path, rule_roles

    drawn = probe_path(diagnosis.result, diagnosis.explanation, rule_roles(topo))
    (bundle / "path.mmd").write_text(picture.mermaid(topo.spec, drawn))
    with contextlib.suppress(SetupError):  # without Graphviz the mermaid is the picture
        (bundle / "path.svg").write_text(picture.svg(topo.spec, drawn))
