"""A small YAML reader for the subset Alpaca's OpenAPI specs use (PyYAML is not a dependency).

Supported: block mappings and sequences (also ``- key: value`` items), plain / single-quoted /
double-quoted scalars, literal block scalars (``|``, ``|-``, ``|+``), flow collections of scalars
(``[]``, ``{}``, ``[a, b]``) and comments. Plain scalars resolve as YAML 1.1 does (null, booleans,
integers, floats); everything else, timestamps included, stays a string. Anchors, aliases, tags,
folded scalars, multi-document streams and multi-line flow collections are refused (ValueError).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_FLOAT = re.compile(r"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?$|^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$")
_BOOL = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def load(path: Path) -> Any:
    return loads(path.read_text(encoding="utf-8"))


def loads(text: str) -> Any:
    lines = text.replace("\t", "    ").splitlines()
    parser = _Parser(lines)
    value = parser.block(0)
    parser.skip_blank()
    if parser.i < len(lines):
        raise ValueError(f"line {parser.i + 1}: unexpected content {lines[parser.i]!r}")
    return value


def _strip_comment(s: str) -> str:
    quote = ""
    for i, ch in enumerate(s):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"" and (i == 0 or s[i - 1] in " [{,:"):
            quote = ch
        elif ch == "#" and (i == 0 or s[i - 1] == " "):
            return s[:i].rstrip()
    return s.rstrip()


def _split_key(s: str) -> tuple[str, str] | None:
    """``key: rest`` → (key, rest); None when ``s`` is not a mapping entry."""
    if s[:1] in "'\"":
        q = s[0]
        i = 1
        while i < len(s):
            if s[i] == q:
                if q == "'" and s[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                break
            if q == '"' and s[i] == "\\":
                i += 1
            i += 1
        key_text, rest = s[: i + 1], s[i + 1 :]
        if not rest.startswith(":") or (len(rest) > 1 and rest[1] != " "):
            return None
        return str(_scalar(key_text)), rest[1:].strip()
    m = re.match(r"^([^\s#'\"\[\]{},][^#]*?):(\s+|$)", s)
    if m is None:
        return None
    return m.group(1).strip(), s[m.end() :].strip()


def _scalar(s: str) -> Any:
    s = s.strip()
    if not s or s == "~" or s.lower() == "null":
        return None
    if s[0] == "'":
        if not s.endswith("'") or len(s) < 2:
            raise ValueError(f"unterminated quoted scalar {s!r}")
        return s[1:-1].replace("''", "'")
    if s[0] == '"':
        if not s.endswith('"') or len(s) < 2:
            raise ValueError(f"unterminated quoted scalar {s!r}")
        return s[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    if s[0] in "[{":
        return _flow(s)
    if s[0] in "&*!|>":
        raise ValueError(f"unsupported YAML construct {s!r}")
    low = s.lower()
    if low in _BOOL:
        return _BOOL[low]
    if _INT.match(s):
        return int(s.replace("_", ""))
    if _FLOAT.match(s) and any(c.isdigit() for c in s):
        return float(s.replace("_", ""))
    if low in (".inf", "+.inf"):
        return float("inf")
    if low == "-.inf":
        return float("-inf")
    if low == ".nan":
        return float("nan")
    return s


def _flow(s: str) -> Any:
    inner = s[1:-1].strip()
    closing = "]" if s[0] == "[" else "}"
    if not s.endswith(closing):
        raise ValueError(f"unsupported flow collection {s!r}")
    if any(c in inner for c in "[]{}"):
        raise ValueError(f"nested flow collections are not supported: {s!r}")
    parts = [p.strip() for p in _split_commas(inner)] if inner else []
    if s[0] == "[":
        return [_scalar(p) for p in parts]
    out: dict[str, Any] = {}
    for p in parts:
        kv = _split_key(p + (" " if p.endswith(":") else ""))
        if kv is None:
            raise ValueError(f"bad flow mapping entry {p!r}")
        out[kv[0]] = _scalar(kv[1])
    return out


def _split_commas(s: str) -> list[str]:
    out, cur, quote = [], "", ""
    for ch in s:
        if quote:
            cur += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch == ",":
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


class _Parser:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.i = 0

    def skip_blank(self) -> None:
        while self.i < len(self.lines) and not _strip_comment(self.lines[self.i]).strip():
            self.i += 1

    def _indent(self) -> int:
        line = self.lines[self.i]
        return len(line) - len(line.lstrip(" "))

    def block(self, min_indent: int) -> Any:
        """The node starting at the next non-blank line, if it is indented at least ``min_indent``."""
        self.skip_blank()
        if self.i >= len(self.lines) or self._indent() < min_indent:
            return None
        indent = self._indent()
        text = _strip_comment(self.lines[self.i]).strip()
        if text.startswith(("---", "...")) and indent == 0:
            raise ValueError(f"line {self.i + 1}: multi-document streams are not supported")
        if text == "-" or text.startswith("- "):
            return self.sequence(indent)
        if _split_key(text) is not None:
            return self.mapping(indent)
        self.i += 1
        return _scalar(text)

    def sequence(self, indent: int) -> list[Any]:
        out: list[Any] = []
        while True:
            self.skip_blank()
            if self.i >= len(self.lines) or self._indent() != indent:
                break
            text = _strip_comment(self.lines[self.i]).strip()
            if not (text == "-" or text.startswith("- ")):
                break
            rest = text[1:].strip()
            if not rest:
                self.i += 1
                out.append(self.block(indent + 1))
            elif _split_key(rest) is not None and rest[0] not in "[{":
                # "- key: value": a mapping whose keys sit at the column after "- ".
                col = indent + (len(text) - len(rest))
                self.lines[self.i] = " " * col + rest
                out.append(self.mapping(col))
            else:
                out.append(self._value(rest, indent))
        return out

    def mapping(self, indent: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            self.skip_blank()
            if self.i >= len(self.lines) or self._indent() != indent:
                break
            text = _strip_comment(self.lines[self.i]).strip()
            kv = _split_key(text)
            if kv is None:
                if text == "-" or text.startswith("- "):
                    break
                raise ValueError(f"line {self.i + 1}: expected 'key: value', got {text!r}")
            key, rest = kv
            if key in out:
                raise ValueError(f"line {self.i + 1}: duplicate key {key!r}")
            if rest:
                out[key] = self._value(rest, indent)
            else:
                self.i += 1
                self.skip_blank()
                if self.i < len(self.lines) and self._indent() == indent:
                    nxt = _strip_comment(self.lines[self.i]).strip()
                    out[key] = self.sequence(indent) if nxt == "-" or nxt.startswith("- ") else None
                else:
                    out[key] = self.block(indent + 1)
        return out

    def _value(self, rest: str, indent: int) -> Any:
        """A value given on the line of its key (or dash): a scalar or a block scalar header."""
        if rest[0] in "|>":
            return self._block_scalar(rest, indent)
        self.i += 1
        return _scalar(rest)

    def _block_scalar(self, header: str, indent: int) -> str:
        m = re.match(r"^\|([-+]?)$", header)
        if m is None:  # folded scalars (">") and indentation indicators are not used by the specs
            raise ValueError(f"line {self.i + 1}: unsupported block scalar header {header!r}")
        (chomp,) = m.groups()
        self.i += 1
        raw: list[str] = []
        body_indent: int | None = None
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if not line.strip():
                raw.append("")
                self.i += 1
                continue
            ind = len(line) - len(line.lstrip(" "))
            if body_indent is None:
                if ind <= indent:
                    break
                body_indent = ind
            if ind < body_indent:
                break
            raw.append(line[body_indent:])
            self.i += 1
        trailing = 0
        while raw and raw[-1] == "":
            raw.pop()
            trailing += 1
        text = "\n".join(raw)
        if not raw:
            return ""
        if chomp == "-":
            return text
        if chomp == "+":
            return text + "\n" * (trailing + 1)
        return text + "\n"
