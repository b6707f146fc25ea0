"""The pytest plugin, run in a pytest of its own: the lab fixture and the root marker."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable

import pytest
from support.paths import EXAMPLES

from netprobe.topology import leftovers
from netprobe.topology._kernel import owner

pytestmark = pytest.mark.root



@pytest.fixture
def left_by_inner(monkeypatch: pytest.MonkeyPatch) -> Callable[[], set[str]]:
    """The inner pytest runs in a session of its own (NETPROBE_SESSION, which its runs
    record and its processes inherit); what that session's runs left is judged, not every
    np-* namespace on the machine. Ownerless objects there before are not the inner's;
    one that appears meanwhile is waited for, as another run's teardown removes it."""
    outer = os.environ.get(owner.SESSION_ENV)  # nested in this session's, if any
    own = f"plugin-test-{secrets.token_hex(4)}"
    session = f"{outer}/{own}" if outer else own
    monkeypatch.setenv(owner.SESSION_ENV, session)
    before = set(leftovers(session=session))

    def left() -> set[str]:
        deadline = time.monotonic() + 10
        while (found := set(leftovers(session=session)) - before) and time.monotonic() < deadline:
            time.sleep(0.1)
        return found

    return left


def test_lab_builds_topologies_and_always_tears_them_down(
    pytester: pytest.Pytester, left_by_inner: Callable[[], set[str]]
) -> None:
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
    result = pytester.runpytest_subprocess("-q")  # the plugin loads by its entry point
    result.assert_outcomes(passed=2, failed=1)
    assert left_by_inner() == set()


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


def test_parallel_workers_never_collide(
    pytester: pytest.Pytester, left_by_inner: Callable[[], set[str]]
) -> None:
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
    result = pytester.runpytest_subprocess("-q", "-n", "2", "--netprobe-bundles=reports")
    result.assert_outcomes(passed=4)
    found = (pytester.path / "reports").glob("*/veth-*/result.json")
    bundles = sorted(p.parent.parent.name for p in found)
    assert bundles == [f"test_parallel.py--test_same_topology_everywhere_{n}" for n in range(4)]
    assert left_by_inner() == set()
