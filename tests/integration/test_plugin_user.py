"""The pytest plugin and the API as a user meets them: relative paths, marker typos, skip
locations, where bundles and pcaps go, and bytes on a command's stdin."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.paths import EXAMPLES

import netprobe

pytestmark = pytest.mark.root



def named(example: str, name: str) -> str:
    """An example topology's text under another name (to tell which file was built)."""
    stem = example.removesuffix(".yaml")
    return (EXAMPLES / example).read_text().replace(f"name: {stem}", f"name: {name}", 1)


def test_lab_finds_a_relative_file_beside_the_test_then_in_the_cwd(
    pytester: pytest.Pytester,
) -> None:
    tests = pytester.mkdir("tests")
    (tests / "beside.yaml").write_text(named("redblue.yaml", "beside"))
    (tests / "both.yaml").write_text(named("redblue.yaml", "in_tests"))
    pytester.path.joinpath("both.yaml").write_text(named("redblue.yaml", "in_cwd"))
    pytester.path.joinpath("cwd_only.yaml").write_text(named("redblue.yaml", "cwd_only"))
    (tests / "test_paths.py").write_text(textwrap.dedent("""
        import pytest
        import netprobe

        def test_beside_the_test_file(lab):
            assert lab.build("beside.yaml").spec.name == "beside"

        def test_the_test_files_directory_comes_first(lab):
            assert lab.build("both.yaml").spec.name == "in_tests"

        def test_then_the_current_directory(lab):
            assert lab.build("cwd_only.yaml").spec.name == "cwd_only"

        def test_neither_is_a_spec_error(lab):
            with pytest.raises(netprobe.SpecError, match="cannot read topology file"):
                lab.build("nowhere.yaml")

        def test_the_check_fixture_finds_files_the_same_way(netprobe_check):
            result = netprobe_check("veth", "beside.yaml", a="red:eth0", b="switch:red")
            assert result.passed, result.evidence()
    """))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")  # cwd: above tests/
    result.assert_outcomes(passed=5)


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_an_unknown_required_feature_is_a_usage_error(
    pytester: pytest.Pytester, xdist: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_typo="""
        import pytest

        @pytest.mark.netprobe_requires("veth", "tcpdumb")
        def test_typo():
            pass

        def test_others_still_run():
            pass
    """)
    result = pytester.runpytest_subprocess("-q", "-rE", *xdist)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_typo*",
        "usage error: netprobe_requires('tcpdumb'): no such kernel feature or tool; "
        "known: netns, veth, *, iptables, *, tcpdump, nft, nmap, *",
    ])
    output = result.stdout.str() + result.stderr.str()
    assert not [w for w in ("Traceback", "ValueError", "INTERNALERROR") if w in output]


def test_skips_are_reported_at_the_test(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_skips="""
        import pytest

        @pytest.mark.netprobe_requires("tool:nmap")
        def test_needs_nmap():
            raise AssertionError("must be skipped")

        def test_needs_a_kernel(netprobe_kernel):
            raise AssertionError("must be skipped")
    """)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nmap on it
    result = pytester.runpytest_subprocess("-q", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines([
        "SKIPPED [[]1[]] test_skips.py:3: needs nmap*",
        "SKIPPED [[]1[]] test_skips.py:7: needs a full kernel*",
    ])
    assert "pytest_plugin.py" not in result.stdout.str()


def test_bundles_and_pcaps_go_in_a_folder_named_after_the_test_that_outlives_the_session(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    pytester.makepyfile(test_gw=f"""
        import pytest
        from netprobe.traffic import udp
        from netprobe.expect import expect, nowhere, ROUTED

        def test_broken_pair(lab, netprobe_check):
            topo = lab.build("{EXAMPLES / "redblue.yaml"}")
            topo.run("blue", ["ip", "link", "set", "eth0", "mtu", "1280"], check=True)
            netprobe_check("veth", topo, a="switch:blue", b="blue:eth0").assert_passed()

        @pytest.mark.parametrize("n", [1])
        def test_failed_expectation(lab, n):
            topo = lab.build("{EXAMPLES / "router.yaml"}")
            probe = udp(topo.mac("left", "eth0"), topo.mac("router", "eth0"), "10.1.0.10",
                        "10.2.0.10", dport=7777)
            expect(topo, probe, "left:eth0", nowhere(), match=ROUTED).assert_passed()
    """)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    reports = pytester.path / "netprobe-reports"
    bundle = reports / "test_gw.py--test_broken_pair"
    (found,) = bundle.glob("veth-*/result.json")
    result.stdout.fnmatch_lines([f"*bug-report bundle: {found.parent}"])
    pcaps = sorted((reports / "test_gw.py--test_failed_expectation_1").glob("evidence-*/*.pcapng"))
    assert pcaps, result.stdout.str()
    result.stdout.fnmatch_lines([f"*pcaps: *{pcaps[0]}*"])
    assert list(scratch.iterdir()) == []  # nothing in the temporary directory
    pytester.makepyfile(test_gw="def test_later(): pass")  # a later session keeps them:
    pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert found.is_file() and pcaps[0].is_file()  # in the rootdir, not a rotated basetemp


def test_a_failed_expectation_outside_pytest_leaves_nothing_in_tmp(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    script = f"""
import netprobe, os
from netprobe.traffic import udp
from netprobe.expect import expect, nowhere, ROUTED

with netprobe.build(netprobe.load("{EXAMPLES / "router.yaml"}")) as topo:
    probe = udp(topo.mac("left", "eth0"), topo.mac("router", "eth0"), "10.1.0.10",
                "10.2.0.10", dport=7777)
    outcome = expect(topo, probe, "left:eth0", nowhere(), match=ROUTED)
    try:
        outcome.assert_passed()
    except netprobe.CheckFailed as failed:
        print(failed)
    assert all(os.path.isfile(p) for p in outcome.pcaps.values())
    print("PCAPS", *outcome.pcaps.values())
"""
    env = {**os.environ, "TMPDIR": str(scratch)}
    env.pop("NETPROBE_EVIDENCE", None)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "pcaps (removed when this process exits):" in proc.stdout
    paths = proc.stdout.split("PCAPS", 1)[1].split()
    assert paths and all(p.startswith(str(scratch)) for p in paths)
    assert list(scratch.iterdir()) == []


def test_run_passes_bytes_to_stdin_unchanged_and_text_as_utf8() -> None:
    with netprobe.build(netprobe.load(EXAMPLES / "redblue.yaml")) as topo:
        raw = topo.run("red", ["od", "-An", "-tx1"], input=b"\x00\xff\r\n\xc3")
        assert raw.ok and raw.stdout.split() == ["00", "ff", "0d", "0a", "c3"]
        text = topo.run("red", ["od", "-An", "-tx1"], input="é\r\n")
        assert text.stdout.split() == ["c3", "a9", "0d", "0a"]
        binary = topo.run("red", ["printf", r"\377ok"])  # output that is not UTF-8
        assert binary.ok and binary.stdout == "\ufffdok"
