"""A check's parameters: what each means, and how a value given as text (on the command
line, in a bundle) becomes the value its body takes.

A check declares a parameter with a help text alone (its type is then read from the
body's annotation: int, float, bool, str, a tuple or list of str, or None allowed) or
with a `Param` whose parser says exactly what it takes:

    params={"inside": Param("a guest, HOST:IFNAME", port()),
            "absent": Param("a VLAN the trunk lacks", integer(1, 4094))}

A parser takes the value (text, or already the right type from Python) and returns the
value the body gets; it raises ValueError saying what it expects. `Check.run` parses
every parameter before anything is built, so a bad one is a SpecError naming it.
"""

from __future__ import annotations

import inspect
import ipaddress
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError
from ..topology._model.port import Port

Parser = Callable[[Any], Any]


@dataclass(frozen=True)
class Param:
    """A declared parameter: `help` for `netprobe list NAME`, `parse` for its value."""

    help: str
    parse: Parser | None = None

    def __str__(self) -> str:
        return self.help


def _expects(what: str) -> Callable[[Parser], Parser]:
    """Name what a parser takes (its ValueError says so, whatever the parser raised)."""

    def wrap(parse: Parser) -> Parser:
        def checked(value: Any) -> Any:
            try:
                return parse(value)
            except (ValueError, TypeError, SpecError):
                raise ValueError(what) from None

        checked.expects = what  # type: ignore[attr-defined]
        checked.__doc__ = parse.__doc__  # help() and the docs show the parser's own words
        return checked

    return wrap


def text(value: Any) -> str:
    """Any text."""
    if not isinstance(value, str):
        raise ValueError("text")
    return value


_NAME = re.compile(r"[A-Za-z0-9_.@-]+")


def host() -> Parser:
    """A host of the topology: a name, no colon."""

    @_expects("a host name")
    def parse(value: Any) -> str:
        if not isinstance(value, str) or not _NAME.fullmatch(value.strip()):
            raise ValueError
        return value.strip()

    return parse


def _one_port(value: Any, *, vm: bool) -> str:
    """`value` (text or a Port) read by `Port.parse`, held to plain names: its text."""
    found = Port.parse(value)
    if not _NAME.fullmatch(found.host) or not _NAME.fullmatch(found.ifname):
        raise ValueError
    if (found.vm and not vm) or "@" in found.ifname:
        raise ValueError
    return str(found)


def port(*, vm: bool = False) -> Parser:
    """A port, HOST:IFNAME (with `vm`: also a TAP's VM side, HOST:TAP@vm). The body gets
    its text, a Port given from Python included (`Port.parse` reads it back)."""

    @_expects("HOST:IFNAME" + (" or HOST:TAP@vm" if vm else ""))
    def parse(value: Any) -> str:
        if not isinstance(value, (str, Port)):
            raise ValueError
        return _one_port(value, vm=vm)

    return parse


def port_list(*, minimum: int = 1) -> Parser:
    """Ports, HOST:IFNAME,HOST:IFNAME,... (at least `minimum`; a TAP's VM side, HOST:TAP@vm,
    among them); text stays text, a sequence from Python stays a sequence."""

    @_expects(f"{minimum} or more ports, HOST:IFNAME,HOST:IFNAME,...")
    def parse(value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else list(value)
        found = [_one_port(p, vm=True) for p in items if str(p).strip()]
        if len(found) < minimum:
            raise ValueError
        return value

    return parse


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@_expects("a boolean: yes, no, true, false, 1 or 0")
def boolean(value: Any) -> bool:
    """yes/no, true/false, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word not in _TRUE + _FALSE:
        raise ValueError
    return word in _TRUE


def _range(kind: str, low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{kind} from {low} to {high}"
    if low is not None:
        return f"{kind} of at least {low}"
    return f"{kind} of at most {high}" if high is not None else kind


def integer(low: int | None = None, high: int | None = None) -> Parser:
    """An integer, within [low, high] when given."""

    @_expects(_range("an integer", low, high))
    def parse(value: Any) -> int:
        if isinstance(value, (bool, float)):
            raise ValueError
        number = int(value.strip()) if isinstance(value, str) else int(value)
        if (low is not None and number < low) or (high is not None and number > high):
            raise ValueError
        return number

    return parse


def number(low: float | None = None, high: float | None = None) -> Parser:
    """A number (float), within [low, high] when given."""

    @_expects(_range("a number", low, high))
    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError
        found = float(value)
        if found != found or (low is not None and found < low) or (
            high is not None and found > high
        ):
            raise ValueError
        return found

    return parse


def ip(version: int | None = None) -> Parser:
    """An IP address (IPv4 or IPv6 only, with `version`); the body gets its text."""
    kind = f"an IPv{version} address" if version else "an IP address"

    @_expects(kind)
    def parse(value: Any) -> str:
        address = ipaddress.ip_address(str(value).strip())
        if version is not None and address.version != version:
            raise ValueError
        return str(address)

    return parse


_SERVICE = re.compile(r"(tcp|udp)/(\d{1,5})")


@_expects("services like tcp/22,udp/53, ports 1 to 65535")
def services(value: Any) -> str:
    """tcp/PORT,udp/PORT,... (may be empty: none)."""
    if not isinstance(value, str):
        raise ValueError
    for item in (i.strip().lower() for i in value.split(",") if i.strip()):
        found = _SERVICE.fullmatch(item)
        if found is None or not 1 <= int(found.group(2)) <= 65535:
            raise ValueError
    return value


def optional(parse: Parser, *, none: Any = "") -> Parser:
    """`parse`, or none: "" (or None) becomes `none`."""

    def either(value: Any) -> Any:
        return none if value is None or value == "" else parse(value)

    what = getattr(parse, "expects", None)
    either.expects = f"{what}, or '' for none" if what else "'' for none"  # type: ignore[attr-defined]
    return either


def body_params(
    check: str, body: Callable[..., Any], declared: Mapping[str, str | Param]
) -> dict[str, str | Param]:
    """Every parameter a check takes: its body's keyword parameters (after the Context),
    each with its declaration, or one read from its annotation and default. The body's
    signature says what is taken, `declared` only describes it: a declared name the body
    does not take is a SpecError (unless the body takes **params)."""
    try:
        signature = inspect.signature(body)
    except (TypeError, ValueError):  # a body Python cannot introspect: as declared
        return dict(declared)
    taken = list(signature.parameters.values())
    if taken and taken[0].kind in (taken[0].POSITIONAL_ONLY, taken[0].POSITIONAL_OR_KEYWORD):
        taken = taken[1:]  # the Context
    named = {p.name: p for p in taken if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    anything = any(p.kind is p.VAR_KEYWORD for p in taken)
    stray = [k for k in declared if k not in named]
    if stray and not anything:
        raise SpecError(
            f"check {check} declares parameter(s) {', '.join(stray)} that its body "
            f"{getattr(body, '__qualname__', body)!r} does not take"
        )
    out: dict[str, str | Param] = {}
    for name, parameter in named.items():
        out[name] = declared[name] if name in declared else _described(body, parameter)
    return {**out, **{k: declared[k] for k in stray}}


def _described(body: Callable[..., Any], parameter: inspect.Parameter) -> str:
    """What an undeclared parameter takes, from its annotation, and its default."""
    what = getattr(_from_annotation(body, parameter.name), "expects", None) or "text"
    if parameter.default is parameter.empty:
        return f"{what} (required)"
    return f"{what} (default {parameter.default!r})"


def parse_params(
    check: str, body: Callable[..., Any], declared: Mapping[str, Any], given: Mapping[str, Any]
) -> dict[str, Any]:
    """`given` as the body takes them: each through its declared parser or its annotation.
    A value that does not parse is a SpecError naming the parameter and what it takes."""
    out = {}
    for key, value in given.items():
        spec = declared.get(key)
        parse = spec.parse if isinstance(spec, Param) and spec.parse else _from_annotation(
            body, key
        )
        try:
            out[key] = value if parse is None else parse(value)
        except ValueError as exc:
            what = getattr(parse, "expects", None) or str(exc) or "a different value"
            raise SpecError(f"check {check}: parameter {key} takes {what}, not {value!r}") from None
    return out


def _from_annotation(body: Callable[..., Any], key: str) -> Parser | None:
    """A parser for the parameter's annotated type, for values given as text."""
    try:
        hint: Any = typing.get_type_hints(body).get(key)
    except Exception:  # names imported only for type checking: read the annotation's text
        parameter = inspect.signature(body).parameters.get(key)
        hint = parameter.annotation if parameter is not None else None
    names = _type_names(hint)
    if not names or "str" in names or "Any" in names:
        return None
    for name, parse in (("bool", boolean), ("int", integer()), ("float", number())):
        if name in names:
            typed = _only_text(parse)
            return optional(typed, none=None) if "None" in names else typed
    if names & {"tuple", "list", "Sequence"}:
        return _sequence(tuple if "tuple" in names else list)
    return None


def _type_names(hint: Any) -> set[str]:
    """{"int", "None"} for `int | None`, {"tuple"} for `tuple[str, ...]`: the outer types."""
    if hint is None or hint is inspect.Parameter.empty:
        return set()
    if isinstance(hint, str):
        return set().union(*(_text_names(part.strip()) for part in _split_union(hint)))
    if hint is type(None):
        return {"None"}
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        return set().union(*(_type_names(a) for a in args))
    target = origin if origin is not None else hint
    return {getattr(target, "__name__", str(target))}


def _text_names(part: str) -> set[str]:
    """{"tuple"} for "tuple[str, ...]", {"int", "None"} for "typing.Optional[int]"."""
    outer, _, inner = part.partition("[")
    outer = outer.rsplit(".", 1)[-1]
    if outer == "Optional":
        return {"None", *_type_names(inner.removesuffix("]"))}
    return {outer}


def _split_union(text: str) -> list[str]:
    """Top-level parts of "A | B[C | D] | None"."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += char == "["
        depth -= char == "]"
        if char == "|" and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    return [*parts, text[start:]]


def _only_text(parse: Parser) -> Parser:
    """Convert text; a value Python gave already typed passes as it is."""

    def convert(value: Any) -> Any:
        return parse(value) if isinstance(value, str) else value

    convert.expects = getattr(parse, "expects", None)  # type: ignore[attr-defined]
    return convert


def _sequence(kind: type[Sequence[str]]) -> Parser:
    @_expects("a comma-separated list")
    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return kind(p.strip() for p in value.split(",") if p.strip())  # type: ignore[call-arg]

    return parse


def checked_by(check: Callable[[str], object], expects: str) -> Parser:
    """A parser from a check's own reader of its text (which raises SpecError or
    ValueError on bad text): the value passes unchanged once `check` accepts it."""

    @_expects(expects)
    def parse(value: Any) -> Any:
        if isinstance(value, str):
            check(value)
        return value

    return parse
