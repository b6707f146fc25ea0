"""Rulesets real frontends (ufw, firewalld) generated, as committed in captures/firewalls/
(captures/firewalls/make_firewalls.py made them; the README there says how), and the
policy file saying what each configuration means on filter.yaml's fw."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from support.paths import CAPTURES

FIREWALLS = CAPTURES / "firewalls"


@dataclass(frozen=True)
class Frontend:
    """One fixture: the files to load (iptables-restore or nft) and its policy."""

    name: str
    files: tuple[Path, ...]
    policy: Path

    @property
    def ruleset(self) -> str:
        """The `ruleset` parameter of the filter check: the files, comma separated."""
        return ",".join(map(str, self.files))


def ufw(name: str, policy: str | None = None, v6: bool = True) -> Frontend:
    """ufw's iptables-save (and ip6tables-save) output; ufw's `nft list ruleset` is kept
    beside them but does not load (its xt compat expressions: captures/firewalls/README)."""
    files = [FIREWALLS / f"{name}.iptables"] + ([FIREWALLS / f"{name}.ip6tables"] if v6 else [])
    return Frontend(name, tuple(files), FIREWALLS / f"{policy or name}-policy.yml")


def firewalld(name: str, policy: str | None = None) -> Frontend:
    """firewalld's `nft list ruleset`."""
    return Frontend(name, (FIREWALLS / f"{name}.nft",), FIREWALLS / f"{policy or name}-policy.yml")


# every healthy fixture; tests that need no policy (probes derived from the ruleset) can
# run over the same list
HEALTHY = (ufw("ufw-ssh"), ufw("ufw-web"), ufw("ufw-postgres"), ufw("ufw-route"),
           firewalld("firewalld-zones"))
# each made by the real tool from a healthy fixture's commands with one mistake
SHADOWED_SSH = ufw("ufw-ssh-shadowed", policy="ufw-ssh")
WRONG_INTERFACE = firewalld("firewalld-wrong-interface", policy="firewalld-zones")
SABOTAGED = (SHADOWED_SSH, WRONG_INTERFACE)
