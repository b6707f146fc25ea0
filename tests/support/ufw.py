"""A ruleset as ufw writes it (`ufw enable` + `ufw allow 22/tcp`): iptables-restore input
with the ufw-* chains, and the policy it means (ufw-policy.yaml)."""

from __future__ import annotations

from pathlib import Path

UFW_POLICY = """\
- {proto: tcp, port: 22, expect: accept}
- {proto: tcp, port: 23, expect: drop}
- {proto: udp, port: 161, expect: drop}
- {proto: tcp, port: 443, chain: forward, expect: drop}
- {proto: udp, port: 53, chain: output, expect: accept}
"""
_STAGES = ("before-logging", "before", "after", "after-logging", "reject", "track")
_HOOKS = ("input", "output", "forward")


def ufw_rules(p: str, icmp: list[str], user: list[str]) -> str:
    """user.rules (p="ufw") or user6.rules (p="ufw6") as `ufw enable` + `ufw allow 22/tcp`
    leave them: default deny incoming and routed, allow outgoing."""
    chains = [f"{p}-{s}-{h}" for s in _STAGES for h in _HOOKS]
    chains += [f"{p}-{c}" for c in ("logging-deny", "logging-allow", "user-limit",
                                     "user-limit-accept")]
    chains += [f"{p}-{k}-{h}" for k in ("skip-to-policy", "user", "user-logging")
               for h in _HOOKS]
    rules = [f"-A {h.upper()} -j {p}-{s}-{h}" for h in _HOOKS for s in _STAGES]
    rules += [f"-A {p}-before-input -i lo -j ACCEPT", f"-A {p}-before-output -o lo -j ACCEPT"]
    rules += [f"-A {p}-before-{h} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
              for h in _HOOKS]
    rules += [f"-A {p}-before-input -m conntrack --ctstate INVALID -j {p}-logging-deny",
              f"-A {p}-before-input -m conntrack --ctstate INVALID -j DROP", *icmp]
    rules += [f"-A {p}-before-{h} -j {p}-user-{h}" for h in _HOOKS]
    rules += [
        f'-A {p}-after-logging-input -m limit --limit 3/min --limit-burst 10 '
        f'-j LOG --log-prefix "[UFW BLOCK] "',
        f'-A {p}-logging-deny -m limit --limit 3/min --limit-burst 10 '
        f'-j LOG --log-prefix "[UFW BLOCK] "',
        f"-A {p}-skip-to-policy-input -j DROP", f"-A {p}-skip-to-policy-output -j ACCEPT",
        f"-A {p}-skip-to-policy-forward -j DROP",
        f"-A {p}-track-output -p tcp -m conntrack --ctstate NEW -j ACCEPT",
        f"-A {p}-track-output -p udp -m conntrack --ctstate NEW -j ACCEPT",
        "", "### RULES ###", *user, "### END RULES ###", "",
        f'-A {p}-user-limit -m limit --limit 3/minute -j LOG --log-prefix "[UFW LIMIT BLOCK] "',
        f"-A {p}-user-limit -j REJECT", f"-A {p}-user-limit-accept -j ACCEPT",
    ]
    head = ["*filter", ":INPUT DROP [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]"]
    return "\n".join([*head, *(f":{c} - [0:0]" for c in chains), *rules, "COMMIT", ""])


def write_ufw(directory: Path, allow: list[str] | None = None) -> list[Path]:
    """user.rules and user6.rules (with `allow` as the IPv4 user rules; default: allow
    22/tcp) and ufw-policy.yaml, written in `directory`: [user.rules, user6.rules]."""
    allow = allow or ["-A ufw-user-input -p tcp --dport 22 -j ACCEPT"]
    icmp4 = [f"-A ufw-before-input -p icmp --icmp-type {t} -j ACCEPT"
             for t in ("destination-unreachable", "time-exceeded", "echo-request")]
    icmp6 = [f"-A ufw6-before-input -p icmpv6 --icmpv6-type {t} -j ACCEPT"
             for t in ("destination-unreachable", "packet-too-big", "echo-request",
                       "neighbor-solicitation", "neighbor-advertisement")]
    (directory / "user.rules").write_text(ufw_rules("ufw", icmp4, [
        "### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in", *allow]))
    (directory / "user6.rules").write_text(ufw_rules("ufw6", icmp6, [
        "### tuple ### allow tcp 22 ::/0 any ::/0 in",
        "-A ufw6-user-input -p tcp --dport 22 -j ACCEPT"]))
    (directory / "ufw-policy.yaml").write_text(UFW_POLICY)
    return [directory / "user.rules", directory / "user6.rules"]
