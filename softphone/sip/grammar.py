"""RFC 3261 §25.1 lexical rules shared by the URI, header and message parsers.

Everything here is linear in the length of its input: the regular expressions use single
character classes or possessive quantifiers (Python 3.11), so no input can make them backtrack.

Whitespace: the message parser unfolds header lines before these functions see them, so LWS and
SWS reduce to runs of SP / HTAB.
"""

from __future__ import annotations

import re
import string

from .errors import LocalProtocolError, ParseError

__all__ = [
    "ALPHANUM",
    "HEADER_SAFE",
    "MARK",
    "PARAM_SAFE",
    "PASSWORD_SAFE",
    "SEPARATORS",
    "TOKEN_CHARS",
    "UNRESERVED",
    "USER_SAFE",
    "Params",
    "format_params",
    "is_token",
    "parse_params",
    "percent_decode",
    "percent_encode",
    "quote",
    "scan_quoted",
    "split_header_values",
    "unquote",
]

Params = dict[str, str | None]
"""Insertion-ordered parameters; keys lower-cased; ``None`` for a flag such as ``;lr``."""

ALPHANUM = string.ascii_letters + string.digits
# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = frozenset(ALPHANUM + "-.!%*_+`'~")
SEPARATORS = frozenset('()<>@,;:\\"/[]?={} \t')
# unreserved = alphanum / mark
MARK = "-_.!~*'()"
UNRESERVED = ALPHANUM + MARK
# The characters besides UNRESERVED that each URI component may carry unescaped (§25.1):
USER_SAFE = "&=+$,;?/"  # user-unreserved
PASSWORD_SAFE = "&=+$,"  # noqa: S105  # a character set, not a secret
PARAM_SAFE = "[]/:&+$"  # param-unreserved
HEADER_SAFE = "[]/?:+$"  # hnv-unreserved

_TCHAR = r"[A-Za-z0-9\-.!%*_+`'~]"
_TOKEN_RE = re.compile(_TCHAR + "++")
# gen-value = token / host / quoted-string: bare values are tokens or hosts (IPv6: ':' '[]').
_BARE_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]++")
# qdtext excludes controls other than HTAB; quoted-pair escapes anything but CR and LF.
_PARAMS_FAST_RE = re.compile(r"(?:;" + _TCHAR + r"++(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]++)?)*+")
_QUOTED_RE = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\r\n])*+)"')
# One generic-param with the SWS around it: SEMI token [ EQUAL ( quoted-string / token / host ) ].
_PARAM_ITEM_RE = re.compile(
    r"[ \t]*+;[ \t]*+(" + _TCHAR + r"++)[ \t]*+"
    r'(?:=[ \t]*+(?:"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\r\n])*+)"'
    r"|([A-Za-z0-9\-.!%*_+`'~:\[\]]++))[ \t]*+)?"
)
_QUOTE_ESCAPE_RE = re.compile(r'["\\\x00-\x08\x0b-\x1f\x7f]')
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)
_SPLIT_STOP_RE = re.compile(r'[,"<]')
_HEX = frozenset("0123456789abcdefABCDEF")
_SAFE_RE_CACHE: dict[str, re.Pattern[str]] = {}


def is_token(s: str) -> bool:
    """True when ``s`` is an RFC 3261 §25.1 ``token`` (non-empty, token characters only)."""
    return _TOKEN_RE.fullmatch(s) is not None


def quote(s: str) -> str:
    """Return ``s`` as a ``quoted-string`` (RFC 3261 §25.1), escaping ``"`` and ``\\``.

    Other control characters, which qdtext excludes, are written as quoted-pairs. CR and LF
    cannot be carried at all (not even as a quoted-pair): asking for them raises
    ``LocalProtocolError`` rather than letting a caller inject a header line.
    """
    if "\r" in s or "\n" in s:
        raise LocalProtocolError("CR/LF cannot appear in a quoted-string")
    return '"' + _QUOTE_ESCAPE_RE.sub(r"\\\g<0>", s) + '"'


def scan_quoted(text: str, pos: int) -> tuple[str, int]:
    """Read the quoted-string starting at ``text[pos] == '"'``; return (value, index after it).

    The value has its quoted-pairs resolved (RFC 3261 §25.1). An unterminated string, or one
    holding a bare control character, raises ``ParseError``.
    """
    m = _QUOTED_RE.match(text, pos)
    if m is None:
        raise ParseError("unterminated or malformed quoted-string")
    content = m.group(1)
    if "\\" in content:
        content = _QUOTED_PAIR_RE.sub(r"\1", content)
    return content, m.end()


def unquote(s: str) -> str:
    """Inverse of :func:`quote`: ``s`` must be exactly one quoted-string (SWS around allowed)."""
    s = s.strip(" \t")
    if not s.startswith('"'):
        raise ParseError("expected a quoted-string")
    value, end = scan_quoted(s, 0)
    if end != len(s):
        raise ParseError("text after the closing quote")
    return value


def split_header_values(value: str) -> list[str]:
    """Split a list header value at its top-level commas (RFC 3261 §7.3.1).

    Commas inside a quoted-string (with ``\\`` escapes) or inside ``<...>`` do not split. Items
    are stripped of SP/HTAB; empty items are dropped (RFC 7230 §7 tolerance for ``a, ,b``).
    An unterminated quoted-string or ``<`` raises ``ParseError``.
    """
    if '"' not in value and "<" not in value:
        if (
            "\t" not in value
            and " ," not in value
            and ",  " not in value
            and value.count(",") == value.count(", ")
            and value[:1] != " "
            and value[-1:] != " "
        ):
            # Every comma is followed by exactly one SP and no item has SP/HTAB around it.
            items = value.split(", ")
            return items if "" not in items else [item for item in items if item]
        stripped = [item.strip(" \t") for item in value.split(",")]
        return [item for item in stripped if item] if "" in stripped else stripped
    else:
        items = []
        start = pos = 0
        while (m := _SPLIT_STOP_RE.search(value, pos)) is not None:
            hit = m.start()
            char = value[hit]
            if char == ",":
                items.append(value[start:hit])
                start = pos = hit + 1
            elif char == '"':
                pos = scan_quoted(value, hit)[1]
            else:
                close = value.find(">", hit)
                if close < 0:
                    raise ParseError("unterminated '<' in header value")
                pos = close + 1
        items.append(value[start:])
    return [item for raw in items if (item := raw.strip(" \t"))]


def parse_params(text: str) -> Params:
    """Parse ``*( SEMI generic-param )`` (RFC 3261 §25.1) into an ordered dict.

    ``text`` is empty or starts (after optional SWS) at the first ``;``. Names must be tokens and
    are lower-cased; ``;lr`` gives ``None``; values are tokens, hosts or quoted-strings (returned
    unquoted, case preserved). SWS around ``;`` and ``=`` is tolerated. When a name repeats, the
    first occurrence wins. Anything else raises ``ParseError``.
    """
    params: Params = {}
    if not text:
        return params
    if _PARAMS_FAST_RE.fullmatch(text) is None:
        return _parse_params_careful(text)
    # The common case (no whitespace, no quotes), already validated as a whole by the regex.
    for part in text[1:].split(";"):
        name, eq, value = part.partition("=")
        if not name.islower():
            name = name.lower()
        if name not in params:
            params[name] = value if eq else None
    return params


def _parse_params_careful(text: str) -> Params:
    """The general path of :func:`parse_params`: SWS, quoted-string values, and the errors."""
    params: Params = {}
    pos, end = 0, len(text)
    while pos < end:
        m = _PARAM_ITEM_RE.match(text, pos)
        if m is None:
            if not text[pos:].strip(" \t"):
                break  # trailing SWS
            raise ParseError(f"malformed parameter at {text[pos : pos + 40]!r}")
        name, quoted, bare = m.groups()
        value = bare
        if quoted is not None:
            value = _QUOTED_PAIR_RE.sub(r"\1", quoted) if "\\" in quoted else quoted
        params.setdefault(name.lower(), value)
        pos = m.end()
    return params


def format_params(params: Params) -> str:
    """Serialise ``params`` as ``;name=value;flag``; values that are not token/host are quoted."""
    out = []
    for name, value in params.items():
        if value is None:
            out.append(";" + name)
        elif _BARE_VALUE_RE.fullmatch(value) is not None:
            out.append(f";{name}={value}")
        else:
            out.append(f";{name}={quote(value)}")
    return "".join(out)


def percent_decode(s: str) -> str:
    """Resolve ``escaped = "%" HEXDIG HEXDIG`` (RFC 3261 §25.1) in ``s``.

    The bytes are decoded as UTF-8 with ``surrogateescape``, so any byte string survives a
    decode/encode round trip. A ``%`` not followed by two hex digits raises ``ParseError``.
    """
    if "%" not in s:
        return s
    parts = s.split("%")
    out = bytearray(parts[0].encode("utf-8", "surrogateescape"))
    for part in parts[1:]:
        if len(part) < 2 or part[0] not in _HEX or part[1] not in _HEX:
            raise ParseError(f"bad %-escape in {s[:40]!r}")
        out.append(int(part[:2], 16))
        out += part[2:].encode("utf-8", "surrogateescape")
    return out.decode("utf-8", "surrogateescape")


def percent_encode(s: str, safe: str = "") -> str:
    """Escape every character of ``s`` outside ``UNRESERVED`` and ``safe`` as ``%XX`` (UTF-8).

    Pass the component's safe set: ``USER_SAFE``, ``PASSWORD_SAFE``, ``PARAM_SAFE`` or
    ``HEADER_SAFE`` (RFC 3261 §25.1). ``%`` itself is always escaped.
    """
    pattern = _SAFE_RE_CACHE.get(safe)
    if pattern is None:
        allowed = "".join(sorted(set(UNRESERVED + safe) - {"%"}))
        pattern = _SAFE_RE_CACHE[safe] = re.compile("[" + re.escape(allowed) + "]*+")
    if pattern.fullmatch(s) is not None:
        return s
    out = []
    for char in s:
        if pattern.fullmatch(char) is not None:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogateescape"))
    return "".join(out)
