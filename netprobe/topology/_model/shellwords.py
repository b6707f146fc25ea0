"""A hook command's shell line → simple commands of words, as /bin/sh would split it, for
the few forms a network configuration's hooks use (`a; b`, `a && b`, `a || true`,
`echo 1 > FILE`, `cmd < FILE`, `cmd > /dev/null 2>&1`). Nothing is run or expanded but
`$IFACE`, which ifupdown sets; anything else dynamic (`$VAR`, `$(…)`, backquotes, pipes,
`&`) marks the line as one this model cannot read, rather than guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_OPERATORS = ("&&", "||", ">>", ">&", ";", "|", "&", ">", "<")
_REDIRECTS = (">", ">>", ">&", "<")  # each also with a descriptor before it: 2>, 1>&…
_DISCARDED = "/dev/null"
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# What ifupdown puts in a hook's environment that the command line alone tells.
_KNOWN = ("IFACE", "LOGICAL")


class ShellError(ValueError):
    """A line this model will not interpret (the message says why)."""


@dataclass
class Simple:
    """One simple command: its words and the files its stdin/stdout are redirected to."""

    argv: list[str] = field(default_factory=list)
    stdin: str | None = None
    stdout: str | None = None
    append: bool = False  # stdout redirected with >>


def split(text: str, iface: str) -> list[Simple]:
    """The simple commands of `text`, run in order (`;`, `&&`; a trailing `|| true` or
    `|| :` only ignores a failure). Raises ShellError for what it cannot read."""
    commands, current, pending = [], Simple(), ""
    for word, is_op in _tokens(text, iface):
        if pending:
            if is_op:
                raise ShellError(f"{pending!r} is not followed by a file name")
            _redirect(current, pending, word)
            pending = ""
        elif not is_op:
            current.argv.append(word)
        elif word.lstrip("012") in _REDIRECTS:
            pending = word
        elif word in (";", "&&"):
            commands.append(current)
            current = Simple()
        elif word == "||":
            commands.append(current)
            current = Simple(argv=["||"])  # what follows runs only on failure: checked below
        else:
            raise ShellError(f"uses the shell operator {word!r}")
    if pending:
        raise ShellError(f"{pending!r} is not followed by a file name")
    commands.append(current)
    return _drop_failure_guards([c for c in commands if c.argv or c.stdout or c.stdin])


def _redirect(command: Simple, operator: str, target: str) -> None:
    if operator.endswith("&"):  # 2>&1, >&2: one descriptor made a copy of another
        if target not in ("1", "2"):
            raise ShellError(f"redirects {operator}{target}, to no standard output or error")
        return  # writes no file
    if operator.startswith("2") or target == _DISCARDED:
        return  # where errors go, or output thrown away, changes nothing the command sets
    if operator.endswith("<"):
        command.stdin = target
    else:
        command.stdout, command.append = target, operator.endswith(">>")


def _drop_failure_guards(commands: list[Simple]) -> list[Simple]:
    kept = []
    for command in commands:
        if command.argv[:1] != ["||"]:
            kept.append(command)
        elif command.argv[1:] not in (["true"], [":"]):
            raise ShellError("runs a command only when another fails (`||`)")
    return kept


def _tokens(text: str, iface: str) -> list[tuple[str, bool]]:
    """(word, is an operator) pairs; quotes and backslashes resolved."""
    tokens: list[tuple[str, bool]] = []
    word: list[str] = []
    started = False  # a word is open (even an empty one, as '' makes)
    i = 0
    while i < len(text):
        char = text[i]
        if char == "#" and not started:
            break
        if char not in " \t\n;&|<>":
            i, started = _word_part(text, i, word, iface), True
            continue
        if char in ";&|<>":
            i = _operator(text, i, word if started else None, tokens)
        else:
            tokens += [("".join(word), False)] if started else []
            i += 1
        word, started = [], False
    if started:
        tokens.append(("".join(word), False))
    return tokens


def _word_part(text: str, i: int, word: list[str], iface: str) -> int:
    """Add the part of a word at `i` (a quoted string, an escape, a variable, a
    character) to `word`; the index after it."""
    char = text[i]
    if char == "'":
        end = text.find("'", i + 1)
        if end < 0:
            raise ShellError("has an unclosed single quote")
        word.append(text[i + 1 : end])
        return end + 1
    if char == '"':
        return _double_quoted(text, i + 1, word, iface)
    if char == "\\":
        word.append(text[i + 1 : i + 2])
        return i + 2
    if char in "$`":
        return _variable(text, i, word, iface)
    word.append(char)
    return i + 1


def _operator(text: str, i: int, word: list[str] | None,
              tokens: list[tuple[str, bool]]) -> int:
    """Add the operator at `i` to `tokens`, after the open `word` (None: none open), or
    as one with it when that is a descriptor (2>, 1>&); the index after it."""
    op = next(o for o in _OPERATORS if text.startswith(o, i))
    end = i + len(op)
    if op in _REDIRECTS and word is not None and "".join(word) in ("0", "1", "2"):
        op, word = "".join(word) + op, None
    if word is not None:
        tokens.append(("".join(word), False))
    tokens.append((op, True))
    return end


def _double_quoted(text: str, i: int, word: list[str], iface: str) -> int:
    """Read a double-quoted string from `i` (after its quote); the index after it."""
    while i < len(text):
        char = text[i]
        if char == '"':
            return i + 1
        if char == "\\" and text[i + 1 : i + 2] in ('"', "\\", "$", "`"):
            word.append(text[i + 1])
            i += 2
        elif char in "$`":
            i = _variable(text, i, word, iface)
        else:
            word.append(char)
            i += 1
    raise ShellError("has an unclosed double quote")


def _variable(text: str, i: int, word: list[str], iface: str) -> int:
    match = _VARIABLE.match(text, i)
    if match is None:
        raise ShellError("runs a command substitution or expands something at run time")
    name = match.group(1) or match.group(2)
    if name not in _KNOWN:
        raise ShellError(f"uses ${name}, known only when it runs")
    word.append(iface)
    return match.end()
