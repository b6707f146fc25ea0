"""The VM tier: checks this kernel cannot run (vlan, vlan-bridge, bond), run in ONE guest
booted from a full kernel, on their reference topologies (must PASS) and on sabotaged ones
(must FAIL and name the fault).

Skipped unless a kernel is given (virtme-ng, qemu and a /boot/vmlinuz-*-amd64 are needed).
Run: `make vm-test` (`.venv/bin/python -m pytest tests/vm --netprobe-kernel auto`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.paths import EXAMPLES

from netprobe._privilege import is_root
from netprobe.check import Status
from netprobe.vm import Case, GuestChecks, run_checks_in_vm

from . import handmade

# (label, check, examples/FILE to sabotage or None, its edits, params, sabotage commands,
#  the diagnosis the sabotage must produce; None: the case must PASS)
AB = 'bond0: {bond: {mode: active-backup, miimon: 100}, mac: "02:00:00:00:05:01"'
H20 = "eth0.20: {vlan: {parent: eth0, id: 20}, addresses: [10.0.20.2/24]}"
R10 = "eth0.10: {vlan: {parent: eth0, id: 10}, addresses: [10.0.10.1/24]}"
TABLE: list[
    tuple[
        str,
        str,
        str | None,
        tuple[tuple[str, str], ...],
        dict[str, str],
        tuple[tuple[str, tuple[str, ...]], ...],
        str | None,
    ]
] = [
    ("vlan", "vlan", None, (), {}, (), None),
    (
        "vlan wrong id",
        "vlan",
        "vlan.yaml",
        ((H20, H20.replace("id: 20", "id: 10")),),
        {},
        (),
        "h20:eth0.20 is VLAN 10, not 20",
    ),
    (
        "vlan 802.1ad",
        "vlan",
        "vlan.yaml",
        ((R10, R10.replace("id: 10", "id: 10, protocol: 802.1ad")),),
        {},
        (),
        "router:eth0.10 tags with 802.1ad",
    ),
    (
        "vlan member down",
        "vlan",
        None,
        (),
        {},
        (("h10", ("ip", "link", "set", "eth0.10", "down")),),
        "h10:eth0.10 is down",
    ),
    ("vlan-bridge", "vlan-bridge", None, (), {}, (), None),
    (
        "vlan-bridge filtering off",
        "vlan-bridge",
        None,
        (),
        {},
        (("pve", ("ip", "link", "set", "br0", "type", "bridge", "vlan_filtering", "0")),),
        "pve:br0 has vlan_filtering off",
    ),
    (
        "vlan-bridge wrong pvid",
        "vlan-bridge",
        "vlan-bridge.yaml",
        (("vm2: {master: br0, vlans: [{id: 20,", "vm2: {master: br0, vlans: [{id: 10,"),),
        {},
        (),
        "pve:vm2's PVID is 10, not 20",
    ),
    (
        "vlan-bridge trunk lacks 20",
        "vlan-bridge",
        "vlan-bridge.yaml",
        (("vlans: [{id: 10}, {id: 20}]", "vlans: [{id: 10}]"),),
        {},
        (),
        "pve:uplink, the trunk, does not carry VLAN 20",
    ),
    (
        "vlan-bridge tagged access",
        "vlan-bridge",
        None,
        (),
        {},
        (("pve", ("bridge", "vlan", "add", "dev", "vm1", "vid", "10", "pvid")),),
        "pve:vm1 sends VLAN 10 out tagged",
    ),
    ("bond", "bond", None, (), {}, (), None),
    (
        "bond no miimon",
        "bond",
        "bond.yaml",
        ((AB, AB.replace(", miimon: 100", "")),),
        {"lacp": ""},
        (),
        "server:bond0 has no link monitoring (miimon 0, arp_interval 0)",
    ),
    (
        "bond backup dead",
        "bond",
        None,
        (),
        {"lacp": ""},
        (("switch", ("ip", "link", "set", "s1", "down")),),
        "server:eth1, the bond's other member, has no carrier: its far end switch:s1 is down",
    ),
    (
        "bond partner not lacp",
        "bond",
        "bond.yaml",
        (
            (
                'bond0: {bond: {mode: 802.3ad, miimon: 100}, mac: "02:00:00:00:06:02"',
                'bond0: {bond: {mode: balance-xor, miimon: 100}, mac: "02:00:00:00:06:02"',
            ),
        ),
        {"bond": ""},
        (),
        "lacp2:bond0 is in mode balance-xor, not 802.3ad",
    ),
]
# The same checks on the same networks made by hand in the guest and adopted:
# (label, check, setup script, hosts adopted, params, sabotage, diagnosis or None)
HANDMADE: list[
    tuple[str, str, str, tuple[str, ...], dict[str, str],
          tuple[tuple[str, tuple[str, ...]], ...], str | None]
] = [
    ("vlan by hand", "vlan", handmade.vlan(), handmade.VLAN_HOSTS, {}, (), None),
    ("vlan by hand, wrong id", "vlan", handmade.vlan(h20_id=10), handmade.VLAN_HOSTS, {}, (),
     "h20:eth0.20 is VLAN 10, not 20"),
    ("vlan-bridge by hand", "vlan-bridge", handmade.vlan_bridge(), handmade.VLAN_BRIDGE_HOSTS,
     {}, (), None),
    ("vlan-bridge by hand, filtering off", "vlan-bridge", handmade.vlan_bridge(),
     handmade.VLAN_BRIDGE_HOSTS, {},
     (("pve", ("ip", "link", "set", "br0", "type", "bridge", "vlan_filtering", "0")),),
     "pve:br0 has vlan_filtering off"),
    ("bond by hand", "bond", handmade.bond(), handmade.BOND_HOSTS, {"lacp": ""}, (), None),
    ("bond by hand, backup dead", "bond", handmade.bond(), handmade.BOND_HOSTS, {"lacp": ""},
     (("switch", ("ip", "link", "set", "s1", "down")),),
     "server:eth1, the bond's other member, has no carrier: its far end switch:s1 is down"),
]  # fmt: skip
LABELS = [row[0] for row in TABLE] + [row[0] for row in HANDMADE]


def _variant(rwdir: Path, label: str, source: str, edits: tuple[tuple[str, str], ...]) -> str:
    """A sabotaged copy of examples/SOURCE, written where the guest can read it."""
    text = (EXAMPLES / source).read_text()
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} is not once in {source}"
        text = text.replace(old, new)
    path = rwdir / (label.replace(" ", "-") + ".yaml")
    path.write_text(text)
    return str(path)


def cases(rwdir: Path) -> list[tuple[Case, str | None]]:
    """Every row as a Case (sabotaged topologies written into `rwdir`) and its verdict."""
    return [
        (
            Case(
                label,
                check,
                _variant(rwdir, label, source, edits) if source else None,
                params,
                sabotage,
            ),
            want,
        )
        for label, check, source, edits, params, sabotage, want in TABLE
    ] + [
        (Case(label, check, _adopting(rwdir, label, hosts), params, sabotage, setup), want)
        for label, check, setup, hosts, params, sabotage, want in HANDMADE
    ]


def _adopting(rwdir: Path, label: str, hosts: tuple[str, ...]) -> str:
    path = rwdir / (label.replace(" ", "-").replace(",", "") + ".yaml")
    path.write_text(handmade.adopting(label.split()[0], *hosts))
    return str(path)


@pytest.fixture(scope="session")
def guest(
    netprobe_kernel: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GuestChecks, dict[str, str | None]]]:
    """ONE guest boot for the whole session: every case runs in it; results by label.
    Depends on: netprobe_kernel (--netprobe-kernel PATH|auto; without it the tier skips),
    root, vng and qemu. Once a kernel is asked for, not booting it is an error."""
    if not is_root():
        pytest.skip("the VM tier needs root (the guest runs as the caller)")
    rwdir = tmp_path_factory.mktemp("vm-tier")
    todo = cases(rwdir)
    done = run_checks_in_vm(
        [c for c, _ in todo], kernel=netprobe_kernel, rwdir=rwdir, timeout=1800
    )
    yield done, {c.label: want for c, want in todo}


@pytest.mark.parametrize("label", LABELS)
def test_in_the_guest(guest: tuple[GuestChecks, dict[str, str | None]], label: str) -> None:
    done, wanted = guest
    result = done.results[label]
    want = wanted[label]
    if want is None:
        assert result.status is Status.PASS, result.evidence()
        assert result.not_run == [], result.evidence()  # each step taken as it was planned
    else:
        assert result.status is Status.FAIL, result.evidence()
        assert result.diagnosis is not None and want in result.diagnosis, result.evidence()


def test_a_bond_that_cannot_fail_over_lists_the_ping_it_did_not_run(
    guest: tuple[GuestChecks, dict[str, str | None]],
) -> None:
    result = guest[0].results["bond backup dead"]
    assert result.not_run == ["client:eth0 pings server:bond0 after the cut"], result.evidence()
    assert result.summary.endswith("; 1 not run")


def test_the_guest_ran_a_full_kernel(guest: tuple[GuestChecks, dict[str, str | None]]) -> None:
    done, _ = guest
    assert done.kernel.endswith("-amd64"), done.run.stderr
    assert done.run.boot is not None


def test_the_command_line_runs_checks_in_one_guest(netprobe_kernel: Path, tmp_path: Path) -> None:
    """`netprobe check … --kernel`: one boot for all the named checks, results and
    bundles back on this side."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "netprobe.cli",
            "check",
            "vlan-bridge",
            "bond",
            "--kernel",
            str(netprobe_kernel),
            "--json",
            "out.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    assert [r["status"] for r in document["results"]] == ["PASS", "PASS"]
