"""The drop trace's device filter: exact names while the kernel takes them, globs beyond.

The kernel refuses an event filter of a page or more (EINVAL), which a topology of a few
hundred devices reaches by name; the compacted filter must still let every device in.
"""

from __future__ import annotations

import fnmatch

from netprobe.traffic._droptrace import FILTER_MAX, _device_filter


def _matches(filter_text: str, name: str) -> bool:
    """Evaluate the filter's `name == "x"` and `name ~ "glob"` terms (joined by ||)."""
    for term in filter_text.split(" || "):
        op, pattern = term.removeprefix("name ").split(" ", 1)
        pattern = pattern.strip('"')
        if op == "==" and name == pattern:
            return True
        if op == "~" and fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def test_a_small_topology_is_filtered_by_exact_names() -> None:
    assert _device_filter(["eth0", "br0"]) == 'name == "br0" || name == "eth0"'


def test_a_thousand_ports_become_one_glob_and_every_device_passes() -> None:
    names = ["br0", "eth0", "lo0x", *(f"p{i}" for i in range(1000))]
    text = _device_filter(names)
    assert len(text) <= FILTER_MAX
    assert 'name ~ "p[0-9]*"' in text and 'name == "br0"' in text
    assert all(_matches(text, n) for n in names)
    assert not _matches(text, "veth7")


def test_names_with_no_shared_stem_fall_back_to_first_letters() -> None:
    names = [f"{chr(97 + i % 26)}{'x' * (i % 7)}n{i}q" for i in range(600)]
    text = _device_filter(names)
    assert len(text) <= FILTER_MAX
    assert all(_matches(text, n) for n in names)


def test_glob_specials_in_a_name_are_matched_literally() -> None:
    names = [f"a*{i}" for i in range(400)]
    text = _device_filter(names)
    assert 'name ~ "a[*][0-9]*"' in text
    assert all(_matches(text, n) for n in names)
