"""The pytest plugin, run in a pytest of its own: the lab fixture and the root marker."""

from __future__ import annotations

import pytest
from support.paths import EXAMPLES

from netprobe.topology._kernel import netns, owner

pytestmark = pytest.mark.root



def orphans() -> set[str]:
    """netprobe namespaces no live run owns (other processes may be running checks too)."""
    live = {r.runid for r in owner.read_records() if owner.is_alive(r)}
    return {n for n in netns.list_names() if n.startswith("np-") and n.split("-")[1] not in live}


def test_lab_builds_topologies_and_always_tears_them_down(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user=f"""
        import pytest

        def test_red_reaches_blue(lab):
            topo = lab.build("{EXAMPLES / "redblue.yaml"}")
            assert topo.run("red", ["ping", "-c1", "-W2", "10.0.0.2"]).ok

        def test_a_failing_test_still_tears_down(lab):
            topo = lab.build("{EXAMPLES / "router.yaml"}")
            assert topo.run("left", ["ping", "-c1", "-W1", "10.9.9.9"]).ok

        @pytest.mark.root
        def test_marked(lab):
            pass
    """
    )
    before = orphans()
    result = pytester.runpytest_subprocess("-q")  # the plugin loads by its entry point
    result.assert_outcomes(passed=2, failed=1)
    assert orphans() == before


def test_check_fixture_and_requires_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_checks=f"""
        import pytest
        import netprobe

        def test_veth_on_its_reference(netprobe_check):
            netprobe_check("veth").assert_passed()

        def test_a_broken_pair_fails_with_the_evidence(lab, netprobe_check):
            topo = lab.build("{EXAMPLES / "redblue.yaml"}")
            topo.run("blue", ["ip", "link", "set", "eth0", "mtu", "1280"], check=True)
            netprobe_check("veth", topo, a="switch:blue", b="blue:eth0").assert_passed()

        @pytest.mark.netprobe_requires("veth", "tcpdump")
        def test_present(netprobe_check):
            pass

        @pytest.mark.netprobe_requires("bond")
        def test_missing(netprobe_check):
            raise AssertionError("must be skipped")
    """
    )
    result = pytester.runpytest_subprocess("-q", "-rs", "--netprobe-bundles=reports")
    from netprobe._capabilities import probe

    bond = probe(["bond"])[0].present
    if bond:  # a kernel with bonding: the marked test runs and fails by design
        result.assert_outcomes(passed=2, failed=2)
    else:
        result.assert_outcomes(passed=2, failed=1, skipped=1)
        result.stdout.fnmatch_lines(["*needs bond*remedy*"])
    result.stdout.fnmatch_lines(
        [
            "*veth: FAIL*",
            "*MTU mismatch*",  # the bundle's folder is named after the test
            "*bug-report bundle: */reports/test_checks.py--test_a_broken_pair_fails_*/veth-*",
        ]
    )
    bundles = list((pytester.path / "reports").glob("*/veth-*/result.json"))
    assert len(bundles) == 1


def test_parallel_workers_never_collide(pytester: pytest.Pytester) -> None:
    """Under pytest-xdist every worker builds its own namespaces and writes its own
    bundles: the same topology and the same failing check, four times at once."""
    pytester.makepyfile(
        test_parallel=f"""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_same_topology_everywhere(lab, netprobe_check, n):
            topo = lab.build("{EXAMPLES / "redblue.yaml"}")
            assert topo.run("red", ["ping", "-c1", "-W2", "10.0.0.2"]).ok
            topo.run("blue", ["ip", "link", "set", "eth0", "mtu", "1280"], check=True)
            result = netprobe_check("veth", topo, a="switch:blue", b="blue:eth0")
            assert result.status.value == "FAIL" and result.bundle
    """
    )
    before = orphans()
    result = pytester.runpytest_subprocess("-q", "-n", "2", "--netprobe-bundles=reports")
    result.assert_outcomes(passed=4)
    found = (pytester.path / "reports").glob("*/veth-*/result.json")
    bundles = sorted(p.parent.parent.name for p in found)
    assert bundles == [f"test_parallel.py--test_same_topology_everywhere_{n}" for n in range(4)]
    assert orphans() == before
