"""How `topo show` words a link's qdiscs from `tc qdisc show` (the parsing alone)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from netprobe.topology._kernel import impair


def _shows(monkeypatch: pytest.MonkeyPatch, stdout: str, code: int = 0) -> None:
    def tc(ns: str, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(["tc", *args], code, stdout, "")

    monkeypatch.setattr(impair, "_tc", tc)


def test_netem_over_tbf_in_tcs_words_without_refcnt(monkeypatch: pytest.MonkeyPatch) -> None:
    _shows(monkeypatch, "qdisc netem 1: root refcnt 2 limit 1000 delay 20ms loss 1%\n"
                        "qdisc tbf 10: parent 1:1 rate 10Mbit burst 1600b lat 50ms \n")  # fmt: skip
    assert impair.described("ns", "eth0") == (
        "netem 1: root limit 1000 delay 20ms loss 1%; tbf 10: parent 1:1 rate 10Mbit burst "
        "1600b lat 50ms"
    )


def test_the_kernels_own_root_is_nothing_to_show(monkeypatch: pytest.MonkeyPatch) -> None:
    _shows(monkeypatch, "qdisc mq 0: root \nqdisc fq_codel 0: parent :1 limit 10240p\n")
    assert impair.described("", "eth0") == ""


def test_shaping_someone_else_set_is_shown_ingress_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _shows(monkeypatch, "qdisc fq_codel 8001: root refcnt 2 limit 10p\n"
                        "qdisc ingress ffff: parent ffff:fff1 ----------------\n")  # fmt: skip
    assert impair.described("ns", "eth0") == "fq_codel 8001: root limit 10p"


def test_tc_failing_or_saying_nothing_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    _shows(monkeypatch, "", code=1)
    assert impair.described("ns", "eth0") is None
    _shows(monkeypatch, "qdisc ingress ffff: parent ffff:fff1 ----------------\n")
    assert impair.described("ns", "eth0") is None
