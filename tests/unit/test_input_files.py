"""Files given as input (topologies, policies, rulesets) are regular text files of sane
size: /dev/zero is not read until memory runs out, a FIFO does not block, a binary
policy is a SpecError, not a UnicodeDecodeError."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import netprobe
from netprobe import SpecError
from netprobe._inputfile import MAX_INPUT_BYTES, read_input

BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"


def no_wait(call: object) -> threading.Thread:
    """Run `call` in a thread: a test that blocks fails by timing out, not by hanging."""
    thread = threading.Thread(target=call, daemon=True)  # type: ignore[arg-type]
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "reading blocked"
    return thread


def test_a_character_device_is_refused_at_once() -> None:
    with pytest.raises(SpecError, match="a character device, not a regular file") as caught:
        netprobe.load("/dev/zero")
    assert caught.value.file == "/dev/zero"


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "topo.yaml"
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def load() -> None:
        try:
            netprobe.load(fifo)
        except SpecError as exc:
            errors.append(exc)

    no_wait(load)
    assert len(errors) == 1 and "a FIFO, not a regular file" in str(errors[0])


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="a directory, not a regular file"):
        read_input(tmp_path, "policy")


def test_a_file_over_the_limit_is_refused_with_the_limit_in_the_message(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as out:
        out.truncate(MAX_INPUT_BYTES + 1)
    with pytest.raises(SpecError, match="over the limit of 4 MiB") as caught:
        netprobe.load(big)
    assert caught.value.file == str(big)
    assert read_input(big, "x", limit=MAX_INPUT_BYTES + 1) == "\0" * (MAX_INPUT_BYTES + 1)


def test_a_binary_topology_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "topo.yaml"
    path.write_bytes(BINARY)
    with pytest.raises(SpecError, match=r"not UTF-8 text .* a binary file"):
        netprobe.load(path)


def test_a_missing_file_and_a_nul_in_the_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read policy: No such file or directory"):
        read_input(tmp_path / "absent", "policy")
    with pytest.raises(SpecError, match="cannot read policy"):
        read_input("a\0b", "policy")


def test_a_binary_policy_is_a_spec_error(tmp_path: Path) -> None:
    from netprobe.library.filter.policy import load_policy

    path = tmp_path / "policy.yml"
    path.write_bytes(BINARY)
    with pytest.raises(SpecError, match="cannot read policy: not UTF-8 text") as caught:
        load_policy(path)
    assert caught.value.file == str(path)
    with pytest.raises(SpecError, match="character device"):
        load_policy("/dev/zero")


def test_a_deeply_nested_policy_is_a_spec_error(tmp_path: Path) -> None:
    from netprobe.library.filter.policy import load_policy

    path = tmp_path / "policy.yml"
    path.write_text("[" * 20_000 + "]" * 20_000)
    with pytest.raises(SpecError, match="nested too deeply"):
        load_policy(path)


def test_a_ruleset_named_by_a_topology_must_be_a_file_of_sane_size(tmp_path: Path) -> None:
    big = tmp_path / "big.nft"
    with big.open("wb") as out:
        out.truncate(MAX_INPUT_BYTES + 1)
    topo = tmp_path / "topo.yaml"
    topo.write_text("hosts:\n  a:\n    firewall: {nft: big.nft}\n")
    with pytest.raises(SpecError, match="ruleset file over the limit of 4 MiB") as caught:
        netprobe.load(topo)
    assert caught.value.line == 3
    os.mkfifo(tmp_path / "fifo.nft")
    topo.write_text("hosts:\n  a:\n    firewall: {nft: fifo.nft}\n")
    with pytest.raises(SpecError, match="cannot read ruleset file"):
        netprobe.load(topo)
