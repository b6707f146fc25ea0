"""A policy of thousands of lines is decided in one burst, and a sabotaged line among
them fails naming the rule that dropped its probe."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.results import failed_steps

from netprobe.check import Result, Status, run_check

pytestmark = pytest.mark.root

LINES = 1000  # of each chain: 2,000 lines
SABOTAGED = 1000 + 2 * 17  # an input port the ruleset accepts


def _ruleset(extra: str = "") -> str:
    ports = ", ".join(str(1000 + p) for p in range(0, LINES, 2))
    return ("table inet big {\n"
            " chain input { type filter hook input priority 0; policy drop;\n"
            f"  ct state established,related accept\n{extra}"
            f"  tcp dport {{ {ports} }} accept\n }}\n"
            " chain forward { type filter hook forward priority 0; policy drop;\n"
            f"  tcp dport {{ {ports} }} accept\n }}\n}}\n")


def _policy() -> str:
    out = []
    for p in range(LINES):
        verdict = "accept" if p % 2 == 0 else "drop"
        out.append(f"- {{proto: tcp, port: {1000 + p}, from: 10.0.0.0/8, expect: {verdict}}}")
        out.append(f"- {{proto: tcp, port: {1000 + p}, chain: forward, from: 10.0.0.0/8, "
                   f"to: 198.51.100.0/24, expect: {verdict}}}")
    return "\n".join(out) + "\n"


def _run(tmp_path: Path, rules: str) -> Result:
    (tmp_path / "big.nft").write_text(rules)
    (tmp_path / "big.yml").write_text(_policy())
    return run_check("filter", ruleset=str(tmp_path / "big.nft"),
                     policy=str(tmp_path / "big.yml"))


def test_two_thousand_lines_pass_in_one_burst(tmp_path: Path) -> None:
    result = _run(tmp_path, _ruleset())
    assert result.status is Status.PASS, result.summary
    lines = result.steps[1:]
    assert len(lines) == 2 * LINES
    assert all("all lines in one burst" in s.detail for s in lines), [
        s.detail for s in lines if "one burst" not in s.detail][:3]


def test_a_sabotaged_line_among_them_fails_naming_its_rule(tmp_path: Path) -> None:
    result = _run(tmp_path, _ruleset(f"  tcp dport {SABOTAGED} drop\n"))
    assert result.status is Status.FAIL
    number = 2 * (SABOTAGED - 1000) + 1
    assert failed_steps(result) == [
        f"line {number}: INPUT tcp/{SABOTAGED} from 10.0.0.0/8 IPv4: expect accept"]
    assert result.diagnosis is not None
    assert f"policy line {number} (INPUT tcp/{SABOTAGED} from 10.0.0.0/8: accept)" in \
        result.diagnosis
    assert f"`tcp dport {SABOTAGED} drop` (inet big input)" in result.diagnosis
