"""Impairments in the spec: parsed to tc's arguments, refused with the file and line of
the value at fault, kept through dump and load."""

from __future__ import annotations

from pathlib import Path

import pytest

from netprobe.errors import SpecError
from netprobe.topology import load
from netprobe.topology._kernel.impair import commands
from netprobe.topology._model.dump import dump
from netprobe.topology._model.impair import Impair

LAB = """name: imp
hosts:
  a:
    interfaces:
      eth0:
        veth: {{peer: "b:eth0"}}
        impair:
{impair}
  b:
    interfaces:
      eth0:
"""


def _load(tmp_path: Path, *lines: str) -> object:
    path = tmp_path / "imp.yaml"
    path.write_text(LAB.format(impair="\n".join(f"          {line}" for line in lines)))
    return load(path)


def test_tbf_under_netem_with_the_values_tc_takes() -> None:
    imp = Impair(rate="10mbit", burst="32kb", delay="20ms", jitter="5ms", loss="1%",
                 duplicate=0.1, reorder="5%")  # fmt: skip
    assert commands("eth0", imp) == [
        ["qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "netem", "delay", "20000us",
         "5000us", "loss", "1%", "duplicate", "0.1%", "reorder", "5%"],
        ["qdisc", "replace", "dev", "eth0", "parent", "1:1", "handle", "10:", "tbf", "rate",
         "10000000bit", "burst", "32768", "latency", "50000us"],
    ]  # fmt: skip
    assert commands("e", Impair(rate="1mbit", limit="64kb"))[0][-6:] == [
        "rate", "1000000bit", "burst", "3200", "limit", "65536"]


@pytest.mark.parametrize(
    ("lines", "line", "words"),
    [
        (("rate: 10mbit", "delay: 2ox"), 9, "impair delay '2ox': expected a number with a unit"),
        (("rate: fast",), 8, "impair rate 'fast'"),
        (("loss: 150%",), 8, "impair loss '150%': expected a percentage 0-100"),
        (("jitter: 5ms",), 7, "impair jitter needs delay"),
        (("burst: 32kb",), 7, "impair burst is a rate limit's: give rate too"),
        (("rate: 1mbit", "latency: 5ms", "limit: 1kb"), 7, "latency or limit, not both"),
        (("speed: 1mbit",), 8, "unknown key 'speed' in impair"),
    ],
)
def test_a_bad_impairment_names_file_and_line(
    tmp_path: Path, lines: tuple[str, ...], line: int, words: str
) -> None:
    with pytest.raises(SpecError) as caught:
        _load(tmp_path, *lines)
    assert str(caught.value).startswith(f"{tmp_path / 'imp.yaml'}:{line}: "), caught.value
    assert words in str(caught.value)


def test_dump_keeps_the_impairments_as_written(tmp_path: Path) -> None:
    spec = _load(tmp_path, "rate: 10mbit", "loss: 1%")
    again = tmp_path / "again.yaml"
    again.write_text(dump(spec))  # type: ignore[arg-type]
    assert load(again).hosts[0].interfaces[0].impair == Impair(rate="10mbit", loss="1%")


def test_an_interface_that_exists_already_takes_no_impairment(tmp_path: Path) -> None:
    path = tmp_path / "adopt.yaml"
    path.write_text("hosts:\n  h:\n    adopt: lab\n    interfaces:\n"
                    "      eth0: {impair: {rate: 1mbit}}\n")  # fmt: skip
    with pytest.raises(SpecError, match=r"adopt.yaml:5: .*does not set its impair"):
        load(path)
