"""`netprobe probe FROM TO [PROTO[/PORT]]`: can FROM reach TO, and if not, where and why.

The probe leaves FROM's own stack (a real socket in its namespace), is followed through
every namespace on the way, and a failure is explained with ranked causes. By default it
is sent only to an address one of those namespaces holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._privilege import require_root
from ..errors import SpecError
from ..expect import probe as send_probe
from ..topology import Spec, Topology
from ._diagnosis import Diagnosis
from ._scope import scope
from ._service import Service, parse_address, parse_service


def probe(
    source: str | None,
    destination: str,
    service: str | Service = "icmp",
    *,
    topology: str | Path | Spec | Topology | None = None,
    pid: int | None = None,
    any_destination: bool = False,
    explain: bool = True,
    touch: bool = True,
    timeout: float = 1.0,
    size: int | None = None,
    bundle_dir: str | Path | None = None,
    picture: str | Path | None = None,
) -> Diagnosis:
    """Probe `destination` from `source`'s own stack and say how it ended.

    `source` is a host of `topology` (a Topology, a spec or its file), or without one a
    network namespace (`ip netns`), or None with `pid` (a container's process): the
    namespaces reachable from it are then discovered and adopted. `service` is "icmp",
    "tcp/PORT" or "udp/PORT". A destination no namespace of the topology holds is refused
    unless `any_destination`. `size`: the bytes an icmp or udp probe carries, with DF
    set (MTU questions). `bundle_dir`: a failure leaves a bug-report bundle there.
    `picture`: draw the topology with the probe's path on it into this file (.svg,
    .mmd, .md or .dot), delivered or not.
    `touch=False` forbids every change an explanation would
    make (a temporary nft trace table); the notes say what that costs.
    """
    dst = parse_address(destination)
    wanted = service if isinstance(service, Service) else parse_service(service)
    if picture is not None:
        from ._picture import check_picture

        check_picture(picture)
    require_root()
    with scope(source, topology, pid) as (topo, sender, notes):
        if not any_destination and topo.holder(dst) is None:
            raise SpecError(
                f"{dst} is held by no namespace of {topo.spec.name!r}: netprobe probes only "
                "addresses of the namespaces it works in (say --any-destination to send anyway)"
            )
        result = send_probe(
            topo, sender, dst, wanted.proto, wanted.port, timeout=timeout, size=size
        )
        diagnosis = Diagnosis(result, topo.spec.name, list(topo.hosts), notes=notes)
        if not result.ok and explain:
            from ..explain import explain_probe

            diagnosis.explanation = explain_probe(topo, result, touch=touch)
        if picture is not None:
            from ._picture import write_picture

            write_picture(diagnosis, topo, picture)
        if not result.ok and bundle_dir is not None:
            _bundle(diagnosis, topo, bundle_dir, size=size, timeout=timeout,
                    any_destination=any_destination)  # fmt: skip
    return diagnosis


def _bundle(diagnosis: Diagnosis, topo: Topology, directory: str | Path, **probe: Any) -> None:
    """Leave the failure's bundle in `directory` while the topology stands; one that
    cannot be written is said in the notes, never fatal."""
    from ..bundle import write_probe_bundle

    try:
        path = write_probe_bundle(
            diagnosis.to_dict(), diagnosis.render(), diagnosis.result, topo, directory, **probe
        )
    except Exception as exc:  # the diagnosis stands whatever happens to its bundle
        diagnosis.notes.append(f"no bug-report bundle: {type(exc).__name__}: {exc}")
        return
    diagnosis.bundle = str(path)
    from ._picture import bundle_picture

    try:
        bundle_picture(diagnosis, topo, Path(path))
    except Exception as exc:  # the bundle stands without its picture
        diagnosis.notes.append(f"no path picture in the bundle: {type(exc).__name__}: {exc}")
