"""The OpenFlow controller netprobe runs for a spec's `controllers`: an os-ken application.

Run as a program inside its host, `python -m netprobe.topology._kernel.oskenapp CONFIG`,
CONFIG being a JSON file netprobe writes: {"listen": "tcp:127.0.0.1:PORT" or
"unix:PATH", "flows": [ovs-ofctl text, ...]}. It listens there alone (loopback or a unix
socket in its host's namespace), and to every switch that connects (OpenFlow 1.3) it
pushes the flows: first a delete of every flow, then each one, then a barrier, and logs
"pushed N flows to dpid X" once the barrier is answered. It decides nothing else: a packet
no flow matches meets the switch's own table-miss behaviour.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, ClassVar

_PROTOCOLS: dict[str, dict[str, int]] = {  # ovs-ofctl's shorthands
    "ip": {"eth_type": 0x0800},
    "arp": {"eth_type": 0x0806},
    "icmp": {"eth_type": 0x0800, "ip_proto": 1},
    "tcp": {"eth_type": 0x0800, "ip_proto": 6},
    "udp": {"eth_type": 0x0800, "ip_proto": 17},
}
_FLOW_MOD_KEYS = {"cookie", "priority", "table", "idle_timeout", "hard_timeout"}
_NUMERIC = {"in_port", "eth_type", "ip_proto", "tcp_src", "tcp_dst", "udp_src", "udp_dst",
            "vlan_vid", "icmpv4_type", "icmpv4_code"}


def parse_flow(text: str) -> tuple[dict[str, int], dict[str, Any], str]:
    """(flow-mod fields, match fields in os-ken's names, actions text) of an ovs-ofctl
    flow: "cookie=0x66,priority=100,ip,nw_src=10.0.0.66,actions=drop"."""
    head, sep, actions = text.replace(" ", "").partition("actions=")
    if not sep:
        raise ValueError(f"flow without actions=: {text!r}")
    mod: dict[str, int] = {}
    match: dict[str, Any] = {}
    for item in filter(None, head.split(",")):
        key, has_value, value = item.partition("=")
        if not has_value:
            match.update(_PROTOCOLS[key])
        elif key in _FLOW_MOD_KEYS:
            mod[key] = int(value, 0)
        else:
            match[_field(key)] = _value(_field(key), value)
    if ("tp_src" in head or "tp_dst" in head) and match.get("ip_proto") == 17:
        for old, new in (("tcp_src", "udp_src"), ("tcp_dst", "udp_dst")):
            if old in match:  # tcp_* by default: udp's when udp was said
                match[new] = match.pop(old)
    return mod, match, actions.lower()  # os-ken's parser knows "normal", not "NORMAL"


def _field(key: str) -> str:
    from os_ken.lib.ofctl_string import ofp_ofctl_field_name_to_os_ken

    if key == "in_port":
        return "in_port"
    name: str = ofp_ofctl_field_name_to_os_ken(key)
    return name


def _value(field: str, text: str) -> Any:
    if field in _NUMERIC:
        return int(text, 0)
    if "/" in text:
        value, mask = text.split("/", 1)
        return (value, mask)
    return text


def main(argv: list[str]) -> int:
    """Start the controller with the configuration file argv[0]; runs until stopped."""
    from os_ken.lib import hub

    hub.patch(thread=False)
    with open(argv[0]) as src:
        config = json.load(src)
    kind, _, where = config["listen"].partition(":")
    host, port = (where, "0") if kind == "unix" else where.rsplit(":", 1)
    from os_ken import cfg

    cfg.CONF(args=[f"--ofp-listen-host={host}", f"--ofp-tcp-listen-port={port}"],
             project="os_ken")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from os_ken.base import app_manager

    _App.flows = [parse_flow(f) for f in config["flows"]]
    app_manager.AppManager.run_apps([__name__])
    return 0


def _app_class() -> type:
    from os_ken.base import app_manager
    from os_ken.controller import ofp_event
    from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
    from os_ken.lib import ofctl_string
    from os_ken.ofproto import ofproto_parser, ofproto_v1_3

    log = logging.getLogger("netprobe.controller")

    class App(app_manager.OSKenApp):  # type: ignore[misc]
        OFP_VERSIONS: ClassVar[list[int]] = [ofproto_v1_3.OFP_VERSION]
        flows: ClassVar[list[tuple[dict[str, int], dict[str, Any], str]]] = []

        @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)  # type: ignore[untyped-decorator]
        def features(self, ev: Any) -> None:
            dp = ev.msg.datapath
            ofp, parser = dp.ofproto, dp.ofproto_parser
            dp.send_msg(parser.OFPFlowMod(dp, command=ofp.OFPFC_DELETE, table_id=ofp.OFPTT_ALL,
                                          out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY))
            for mod, match, actions in self.flows:
                log.info("flow %s match %s actions %s", mod, match, actions)
                insts = ofproto_parser.ofp_instruction_from_jsondict(
                    dp, ofctl_string.ofp_instruction_from_str(ofp, actions))
                dp.send_msg(parser.OFPFlowMod(
                    dp, cookie=mod.get("cookie", 0), table_id=mod.get("table", 0),
                    priority=mod.get("priority", 0x8000),
                    idle_timeout=mod.get("idle_timeout", 0),
                    hard_timeout=mod.get("hard_timeout", 0),
                    match=parser.OFPMatch(**match), instructions=insts))
            dp.send_msg(parser.OFPBarrierRequest(dp))
            log.info("pushing %d flows to dpid %016x", len(self.flows), dp.id)

        @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)  # type: ignore[untyped-decorator]
        def barrier(self, ev: Any) -> None:
            log.info("pushed %d flows to dpid %016x", len(self.flows), ev.msg.datapath.id)

    return App


if __name__ == "__main__":
    _App: Any = _app_class()
    sys.exit(main(sys.argv[1:]))
