"""Which live interfaces no configuration mentions because something else makes them at
runtime, and makes them again after a reboot (or not, as its own configuration says): a
VM's TAP, a container's veth, Docker's or libvirt's bridge, OVS's datapath.

The rule, by what the kernel says an interface is and by the names those tools give:
- veth, tap and tun interfaces live and die with what made them (a container, a VM, a
  VPN daemon); ifupdown and NetworkManager profiles make none of them;
- openvswitch interfaces are OVS's, kept in its own database;
- bridges and tunnels named as container and VM runtimes name theirs (docker0, br-<id>,
  virbr0, lxcbr0, lxdbr0, incusbr0, cni0, podman0, flannel.1, cali*, cilium_*, Proxmox's
  per-VM firewall bridges fwbr*), and the ports of such a bridge.
The kernel's own fallback devices (tunl0, sit0, gre0, ip6tnl0 … and ifb0, made in every
namespace when their module loads) come back by themselves: down, they are not listed.
Everything else no configuration mentions (a NIC, a bridge or bond or dummy made by hand)
is the box's own, and drift.
"""

from __future__ import annotations

import re

from ..topology._kernel.state import LiveHost, LiveInterface

RUNTIME_KINDS = ("veth", "tap", "tun", "openvswitch")
_NAMES = re.compile(
    r"^(docker\d+|br-[0-9a-f]{12}|virbr\d+(-nic)?|lxcbr\d+|lxdbr\d+|incusbr\d+|cni\d+"
    r"|podman\d+|vnet\d+|flannel\.\d+|cali.*|cilium_.*|kube-.*|fwbr\d+i\d+|fwpr\d+p\d+"
    r"|fwln\d+i\d+|tap\d+i\d+|veth\d+i\d+|ovs-system|tailscale\d+|vxlan\.calico)$"
)

_KERNEL_OWN = re.compile(
    r"^(tunl0|sit0|gre0|gretap0|erspan0|ip_vti0|ip6_vti0|ip6tnl0|ip6gre0|ifb\d+|dummy0"
    r"|bond0|teql0)$"
)


def kernel_own(iface: LiveInterface) -> bool:
    """Whether `iface` is one the kernel makes by itself when a module loads, left down."""
    return bool(_KERNEL_OWN.match(iface.name)) and not iface.up


def made_at_runtime(iface: LiveInterface, host: LiveHost) -> str | None:
    """Why `iface` is taken as made at runtime (its kind, or its name's maker), or None:
    it is the box's own."""
    if iface.kind in RUNTIME_KINDS:
        return iface.kind
    if _NAMES.match(iface.name):
        return f"{iface.kind}, named as a container or VM runtime names its own"
    master = host.interface(iface.master) if iface.master else None
    if master is not None and _NAMES.match(master.name):
        return f"a port of {master.name}"
    return None
