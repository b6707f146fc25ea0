"""vlan, vlan-bridge and bond on this machine: where the kernel lacks 802.1Q devices, VLAN
filtering or bonding, each check SKIPs with the reason and a remedy, never PASS or FAIL.
Their sabotage tests need a full kernel: they run in the VM tier (tests/vm)."""

from __future__ import annotations

import pytest

from netprobe._capabilities import probe
from netprobe.check import Status, run_check

pytestmark = pytest.mark.root

NEEDS = {"vlan": "802.1Q vlan", "vlan-bridge": "bridge vlan_filtering", "bond": "bond"}


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_skips_honestly_without_the_kernel_feature(name: str) -> None:
    (capability,) = probe((NEEDS[name],))
    if capability.present:
        pytest.skip(f"this kernel has {capability.name}: the VM tier's cases apply here too")
    result = run_check(name)
    assert result.status is Status.SKIP, result.evidence()
    assert f"this machine lacks {NEEDS[name]}" in result.summary
    assert result.diagnosis, "a SKIP must say how to get the feature"
    assert "--kernel auto" in result.diagnosis  # the way to a kernel that has it
