"""A link's impairments: a rate limit with its queue (tc tbf), and delay, jitter, loss,
duplication and reordering (tc netem), as a spec's interface or `topo impair` gives them.

Values keep the text a person wrote ("10mbit", "32kb", "20ms", "1%"), checked and read
here; the numbers tc is given are derived from them. Units follow tc's: kbit = 1000 bits,
kb = 1024 bytes. Pure: nothing here touches the machine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

from ...errors import SpecError

_NUMBER = r"(\d+(?:\.\d+)?)"
_RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9,
               "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9}  # fmt: skip
_SIZE_UNITS = {"b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2}
_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_TBF = ("rate", "burst", "latency", "limit")
_NETEM = ("delay", "jitter", "loss", "duplicate", "reorder")
_DEFAULT_LATENCY = 0.05  # seconds a packet may wait in the tbf queue when no limit is given
_MIN_BURST = 3200  # bytes: two full-size frames, else tbf cannot pass one at low rates


def _measure(text: object, key: str, units: Mapping[str, float], example: str) -> float:
    if isinstance(text, str):
        found = re.fullmatch(_NUMBER + r"\s*([a-z]+)", text.strip().lower())
        if found and found.group(2) in units:
            return float(found.group(1)) * units[found.group(2)]
    raise SpecError(
        f"impair {key} {text!r}: expected a number with a unit, like {example} "
        f"(units: {', '.join(units)})"
    )


def _percent(text: object, key: str) -> float:
    value: float | None = None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    elif isinstance(text, str) and re.fullmatch(_NUMBER + r"\s*%?", text.strip()):
        value = float(text.strip().rstrip("%"))
    if value is None or not 0 <= value <= 100:
        raise SpecError(f"impair {key} {text!r}: expected a percentage 0-100, like 1% or 0.1%")
    return value


@dataclass(frozen=True)
class Impair:
    """What a link does to the frames it sends: each field as written, or None."""

    rate: str | None = None  # "10mbit": tbf shapes to it
    burst: str | None = None  # "32kb": the bucket (default: 10 ms of rate, at least 3200 b)
    latency: str | None = None  # "50ms": longest wait in the queue (or give limit)
    limit: str | None = None  # "64kb": the queue's size in bytes
    delay: str | None = None  # "20ms" (netem, as all below)
    jitter: str | None = None  # "5ms": delay varies by up to this
    loss: str | None = None  # "1%"
    duplicate: str | None = None  # "0.1%"
    reorder: str | None = None  # "5%": sent at once, ahead of delayed ones (needs delay)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, f.name, str(value))
        self.tc_tbf()  # every value parses, and what needs what is there
        self.tc_netem()
        if not self.shapes and not self.needs_netem:
            raise SpecError(f"impair says nothing: give one of {', '.join(_TBF + _NETEM)}")

    @property
    def shapes(self) -> bool:
        """Whether there is a rate limit (tbf)."""
        return self.rate is not None

    @property
    def needs_netem(self) -> bool:
        """Whether any of delay, jitter, loss, duplicate, reorder is given."""
        return any(getattr(self, key) is not None for key in _NETEM)

    @property
    def rate_bits(self) -> float | None:
        """The rate in bits per second, or None."""
        return None if self.rate is None else _measure(self.rate, "rate", _RATE_UNITS, "10mbit")

    def tc_tbf(self) -> list[str]:
        """The tbf arguments (after `tbf`), or [] without a rate."""
        given = [key for key in _TBF[1:] if getattr(self, key) is not None]
        if self.rate is None:
            if given:
                raise SpecError(f"impair {given[0]} is a rate limit's: give rate too")
            return []
        if self.latency is not None and self.limit is not None:
            raise SpecError("impair takes latency or limit, not both")
        bits = self.rate_bits or 0.0
        if bits < 8:
            raise SpecError(f"impair rate {self.rate!r} is below 1 byte per second")
        burst = _measure(self.burst, "burst", _SIZE_UNITS, "32kb") if self.burst else max(
            bits / 8 / 100, _MIN_BURST)
        args = ["rate", f"{int(bits)}bit", "burst", str(int(burst))]
        if self.limit is not None:
            return [*args, "limit", str(int(_measure(self.limit, "limit", _SIZE_UNITS, "64kb")))]
        wait = (_measure(self.latency, "latency", _TIME_UNITS, "50ms") if self.latency
                else _DEFAULT_LATENCY)  # fmt: skip
        return [*args, "latency", f"{int(wait * 1e6)}us"]

    def tc_netem(self) -> list[str]:
        """The netem arguments (after `netem`), or [] when none is given."""
        args: list[str] = []
        if self.delay is not None:
            args += ["delay", _usec(_measure(self.delay, "delay", _TIME_UNITS, "20ms"))]
            if self.jitter is not None:
                args.append(_usec(_measure(self.jitter, "jitter", _TIME_UNITS, "5ms")))
        elif self.jitter is not None or self.reorder is not None:
            raise SpecError(f"impair {'jitter' if self.jitter else 'reorder'} needs delay")
        for key in ("loss", "duplicate", "reorder"):
            value = getattr(self, key)
            if value is not None:
                args += [key, f"{_percent(value, key):g}%"]
        return args

    def words(self) -> str:
        """As a person wrote it: "rate 10mbit, delay 20ms"."""
        return ", ".join(f"{f.name} {getattr(self, f.name)}" for f in fields(self)
                         if getattr(self, f.name) is not None)  # fmt: skip


def _usec(seconds: float) -> str:
    return f"{round(seconds * 1e6)}us"


def impair(value: object) -> Impair:
    """An Impair from itself or a mapping of its fields (the loose form a spec gives)."""
    if isinstance(value, Impair):
        return value
    if not isinstance(value, Mapping):
        raise SpecError("impair must be a mapping, like {rate: 10mbit, delay: 20ms}")
    known = {f.name for f in fields(Impair)}
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise SpecError(
            f"unknown key {unknown[0]!r} in impair (expected one of: {', '.join(sorted(known))})"
        )
    return Impair(**{str(k): v for k, v in value.items()})
