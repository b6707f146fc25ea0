"""`--json` on `list`, `doctor`, `topo list` and `topo show`: real output, validated
against docs/netprobe-json.schema.json, and saying what the tables say."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from support.paths import ROOT

pytestmark = pytest.mark.root

SCHEMA = json.loads((ROOT / "docs" / "netprobe-json.schema.json").read_text())
LAB = """
name: {name}
hosts:
  a:
    interfaces:
      eth0:
        veth: {{peer: "b:eth0"}}
        addresses: [10.78.0.1/24]
        impair: {{rate: 10mbit, burst: 32kb}}
    routes: [{{to: 10.79.0.0/24, via: 10.78.0.2}}]
  b:
    interfaces:
      eth0: {{addresses: [10.78.0.2/24]}}
"""


def _json(*argv: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "netprobe.cli", *argv, "--json"],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    return document


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("labjson")
    name = f"json-{folder.name[-4:].replace('_', '')}"
    path = folder / "lab.yaml"
    path.write_text(LAB.format(name=name))
    netprobe = [sys.executable, "-m", "netprobe.cli", "topo"]
    subprocess.run([*netprobe, "up", str(path)], check=True, capture_output=True, timeout=120)
    try:
        yield name
    finally:
        subprocess.run([*netprobe, "down", name], capture_output=True, timeout=120, check=False)


def test_topo_show_json_has_hosts_namespaces_links_addresses_routes(lab: str) -> None:
    doc = _json("topo", "show", lab)
    assert (doc["format"], doc["name"]) == ("netprobe-topology", lab)
    a = next(h for h in doc["hosts"] if h["host"] == "a")
    assert a["namespace"].startswith("np-")
    assert a["enter"] == f"ip netns exec {a['namespace']} $SHELL"
    eth0 = next(link for link in a["links"] if link["name"] == "eth0")
    assert (eth0["kind"], eth0["up"], "10.78.0.1/24" in eth0["addresses"]) == ("veth", True, True)
    assert "10.79.0.0/24 via 10.78.0.2 dev eth0" in a["routes"]
    assert doc["links"] == [{"kind": "veth", "ends": ["a:eth0", "b:eth0"],
                             "impair": {"a:eth0": {"rate": "10mbit", "burst": "32kb"}}}]


def test_topo_list_json_names_the_lab_and_its_namespaces(lab: str) -> None:
    doc = _json("topo", "list")
    mine = [t for t in doc["topologies"] if t["name"] == lab]
    assert len(mine) == 1 and mine[0]["state"] == "persistent"
    assert sorted(mine[0]["namespaces"]) == ["a", "b"]
    assert mine[0]["spec"].endswith("lab.yaml")


def test_doctor_json_lists_every_capability_with_its_remedy() -> None:
    doc = _json("doctor")
    assert doc["root"] is True
    names = {(c["kind"], c["name"]) for c in doc["capabilities"]}
    assert {("kernel", "veth"), ("tool", "ip")} <= names
    assert all(c["remedy"] is None for c in doc["capabilities"] if c["present"])


def test_list_json_has_each_check_and_one_in_full() -> None:
    every = _json("list")
    assert {"nat", "bridge"} <= {c["name"] for c in every["checks"]}
    (nat,) = _json("list", "nat")["checks"]
    assert nat["reference"] == "nat-gateway.yaml" and "public_ip" in nat["params"]


def test_the_schema_refuses_what_the_views_do_not_write(lab: str) -> None:
    doc = _json("topo", "show", lab)
    for spoil in (lambda d: d["hosts"][0].pop("enter"),
                  lambda d: d["hosts"][0]["links"][0].update(mtu="1500"),
                  lambda d: d["links"][0]["impair"]["a:eth0"].update(speed="1")):  # fmt: skip
        bad = copy.deepcopy(doc)
        spoil(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)


def test_topo_show_json_of_an_unknown_lab_is_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "netprobe.cli", "topo", "show", "nolab-xj",
                           "--json"], capture_output=True, text=True, check=False)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr.count("\n")) == (2, "", 1), done.stderr
