"""Typed values of the structured SIP headers (RFC 3261 §20, grammar in §25.1).

``NameAddr`` (From, To, Contact, Route, Record-Route, Reply-To, Refer-To...), ``Via``, ``CSeq``,
``RetryAfter``, and small helpers for integer and option-tag headers. Each parse function takes
one header *value* (the message layer has already unfolded lines and split lists) and raises
only ``ParseError`` on malformed input.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import LocalProtocolError, ParseError
from .grammar import Params, format_params, is_token, parse_params, quote, scan_quoted
from .uri import (
    _COMMON_PORTS,
    _HOST_PATTERN,
    _SIP_FAST_PATTERN,
    URI,
    SipURI,
    _sip_from_fast,
    parse_uri,
    validate_host,
)

__all__ = [
    "MAGIC_COOKIE",
    "CSeq",
    "NameAddr",
    "RetryAfter",
    "Via",
    "parse_cseq",
    "parse_int_header",
    "parse_name_addr",
    "parse_option_tags",
    "parse_retry_after",
    "parse_via",
]

MAGIC_COOKIE = "z9hG4bK"
"""RFC 3261 §8.1.1.7: a branch starting with this was made by an RFC 3261 element."""

_TCHAR = r"[A-Za-z0-9\-.!%*_+`'~]"
# Unquoted display-name: tokens separated by LWS (§25.1). Non-ASCII letters are tolerated too:
# UAs write UTF-8 names unquoted, and nothing in them can be confused with the grammar.
_DISPLAY_WORDS_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\x80-\U0010ffff]++(?:[ \t]++[^ \t]++)*+")
_DISPLAY_WORD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\x80-\U0010ffff]++")
_TOKEN_WORDS_RE = re.compile(_TCHAR + r"++(?: " + _TCHAR + r"++)*+")
_WS_RUN_RE = re.compile(r"[ \t]++")
# The common shapes of name-addr: '"Quoted" <uri>;p=v', 'Two Words <uri>', '<uri>;flag', with
# the common shape of a SIP URI inside (groups 3-8, see uri._SIP_FAST_PATTERN) or any other
# URI text (group 9) for parse_uri; group 10 holds the header parameters.
_GEN_VALUE = r"[A-Za-z0-9\-.!%*_+`'~:\[\]]++"
_NAME_ADDR_FAST_RE = re.compile(
    r'(?:"([^"\\\x00-\x1f\x7f]*+)"[ \t]*+|(' + _TCHAR + r"++(?: " + _TCHAR + r"++)*+)[ \t]*+)?"
    r"<(?:(sips?):" + _SIP_FAST_PATTERN + r"|([^<>\x00-\x20\"]++))>"
    r"((?:;" + _TCHAR + r"++(?:=(?:" + _GEN_VALUE + r"|\"[^\"\\\x00-\x1f\x7f]*+\"))?)*+)"
)
# The common shape of a via-parm: "SIP/2.0/TCP host:port;branch=...;received=..." with the host
# rules checked by the regex (uri._HOST_PATTERN) and token/host parameter values.
_VIA_FAST_RE = re.compile(
    r"SIP/2\.0/(" + _TCHAR + r"++) (" + _HOST_PATTERN + r")(?::([0-9]{1,5}+))?"
    r"((?:;" + _TCHAR + r"++(?:=" + _GEN_VALUE + r")?)*+)"
)
_IPV4_PATTERN = (
    r"(?:(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])"
)
_IPV4_RE = re.compile(_IPV4_PATTERN)
# The same language as _IPV4_PATTERN (tests/sip/test_headers.py compares them), written as
# digit runs guarded by a lookahead that refuses the octets above 255 and the three-digit
# ones starting with 0: the regex engine runs it several times faster than the alternations.
_OCTET_FAST = r"(?![03-9][0-9][0-9]|2[6-9][0-9]|25[6-9])[0-9]{1,3}+"
_IPV4_FAST_PATTERN = rf"{_OCTET_FAST}\.{_OCTET_FAST}\.{_OCTET_FAST}\.{_OCTET_FAST}"
# The most common via-parm of all, "SIP/2.0/TCP host:port;branch=z9hG4bK...[;received=IPv4]
# [;rport[=port]]", with the parameters in that order and lower case: every rule of the careful
# path is checked by the regex (host, branch token, received an IPv4 address as
# _check_via_params wants it, rport digits) except the two port ranges, so the params dict is
# built from the groups without splitting. Anything else takes _VIA_FAST_RE or the careful path.
_VIA_COMMON_RE = re.compile(
    r"SIP/2\.0/(UDP|TCP|TLS|SCTP|WSS?) (" + _HOST_PATTERN + r")(?::([0-9]{1,5}+))?"
    r";branch=(" + _TCHAR + r"++)(?:;received=(" + _IPV4_FAST_PATTERN + r"))?"
    r"(;rport(?:=[0-9]{1,5}+)?)?"
)
# The most common name-addr: ['"Quoted" '] <sip:user@host[:port][;uri-params]> [;tag=token]
# (groups: display, scheme, user, host, port, ";uri-params", tag), all checked by the regex
# except the port range. Other shapes take _NAME_ADDR_FAST_RE or the careful path.
_NAME_ADDR_COMMON_RE = re.compile(
    r'(?:"([^"\\\x00-\x1f\x7f]*+)" )?<(sips?):'
    r"(?:([A-Za-z0-9\-_.!~*'()&=+$,]++)@)?"
    r"(" + _HOST_PATTERN + r")(?::([0-9]{1,5}+))?"
    r"((?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$]++(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$]++)?)*+)>"
    r"(?:;tag=(" + _TCHAR + r"++))?"
)
# sent-protocol LWS sent-by, with SWS around "/" and ":" (§25.1 SLASH, COLON).
_VIA_RE = re.compile(
    r"[ \t]*+(" + _TCHAR + r"++)[ \t]*+/[ \t]*+(" + _TCHAR + r"++)[ \t]*+/[ \t]*+"
    r"(" + _TCHAR + r"++)[ \t]++(\[[0-9A-Fa-f:.]++\]|[A-Za-z0-9\-.]++)"
    r"(?:[ \t]*+:[ \t]*+([0-9]{1,10}+))?+[ \t]*+"
)
_CSEQ_RE = re.compile(r"[ \t]*+([0-9]++)[ \t]++(" + _TCHAR + r"++)[ \t]*+")
_DIGITS_RE = re.compile(r"[ \t]*+([0-9]++)[ \t]*+")
_COMMENT_STOP_RE = re.compile(r"[()\\]")


@dataclass(eq=False, slots=True)
class NameAddr:
    """``[ display-name ] LAQUOT addr-spec RAQUOT *( SEMI param )`` (RFC 3261 §20.10, §20.20).

    ``display_name`` is unquoted (UTF-8 allowed); ``None`` when absent, ``""`` for ``""``.
    ``params`` are the header parameters (``tag``, ``expires``, ``q``...), not URI parameters.
    """

    uri: URI
    display_name: str | None = None
    params: Params = field(default_factory=dict)

    def __str__(self) -> str:
        """Always the name-addr form with ``<...>``, so URI ``;``/``,``/``?`` stay inside."""
        name = self.display_name
        if name is None:
            head = ""
        elif _TOKEN_WORDS_RE.fullmatch(name) is not None:
            head = name + " "
        else:
            head = quote(name) + " "
        return f"{head}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 §19.3), or ``None``."""
        return self.params.get("tag")

    def copy(self, **changes: Any) -> NameAddr:
        """A copy with ``changes`` applied; ``params`` is a fresh dict (the URI is shared)."""
        changes.setdefault("params", dict(self.params))
        return dataclasses.replace(self, **changes)


def parse_name_addr(value: str) -> NameAddr:
    """Parse a From/To/Contact/Route-style value (RFC 3261 §20.10, §25.1).

    Both forms are accepted: ``"Quoted" <uri>;p=1``, ``Token Words <uri>``, ``<uri>`` and the
    addr-spec form ``sip:a@b;tag=x`` where, per §20.10, everything after the first ``;`` is a
    header parameter (URI ``sip:a@b``, params ``{"tag": "x"}``); an addr-spec holding ``,`` or
    ``?`` must have been written inside ``<...>`` and raises ``ParseError``.
    """
    m = _NAME_ADDR_COMMON_RE.fullmatch(value)
    if m is not None:
        quoted, scheme, user, host, port_text, uri_params, tag = m.groups()
        if port_text is None and (not uri_params or uri_params.count(";") == 1):
            # What _sip_from_fast gives for no port and at most one parameter, without the
            # cost of calling it and the dataclass.
            sip_uri = _new(SipURI)
            sip_uri.scheme = scheme
            sip_uri.user = user
            sip_uri.password = None
            sip_uri.host = host
            sip_uri.port = None
            if uri_params:
                name, eq, param = uri_params[1:].partition("=")
                sip_uri.params = {name if name.islower() else name.lower(): param if eq else None}
            else:
                sip_uri.params = {}
            sip_uri.headers = {}
        else:
            sip_uri = _sip_from_fast(scheme, (user, None, host, port_text, uri_params))
        name_addr = _new(NameAddr)
        name_addr.uri = sip_uri
        name_addr.display_name = quoted
        name_addr.params = {"tag": tag} if tag is not None else {}
        return name_addr
    m = _NAME_ADDR_FAST_RE.fullmatch(value)
    if m is None:
        return _parse_name_addr_careful(value)
    quoted, words, scheme, user, password, host, port, uri_params, other, param_text = m.groups()
    uri: URI
    if scheme is None:
        uri = parse_uri(other)
    elif port is None and not uri_params:
        # What _sip_from_fast gives (SipURI(scheme, user, password, host, None, {}, {})),
        # without the cost of calling the dataclass.
        uri = _new(SipURI)
        uri.scheme = scheme
        uri.user = user
        uri.password = password
        uri.host = host
        uri.port = None
        uri.params = {}
        uri.headers = {}
    else:
        uri = _sip_from_fast(scheme, (user, password, host, port, uri_params))
    params: Params = {}
    if '"' in param_text:
        params = parse_params(param_text)
    elif param_text:
        # Already validated by the regex: only split it.
        for part in param_text[1:].split(";"):
            name, eq, param = part.partition("=")
            if not name.islower():
                name = name.lower()
            if name not in params:
                params[name] = param if eq else None
    # NameAddr(uri, display_name, params) without the cost of calling the dataclass.
    name_addr = _new(NameAddr)
    name_addr.uri = uri
    name_addr.display_name = quoted if quoted is not None else words
    name_addr.params = params
    return name_addr


def _parse_name_addr_careful(value: str) -> NameAddr:
    """The general path of :func:`parse_name_addr`: escapes, LWS, UTF-8, addr-spec, errors."""
    text = value.strip(" \t")
    if not text:
        raise ParseError("empty name-addr")
    display: str | None = None
    if text[0] == '"':
        display, pos = scan_quoted(text, 0)
        lt = _skip_ws(text, pos)
        if lt >= len(text) or text[lt] != "<":
            raise ParseError("quoted display-name not followed by '<'")
    else:
        lt = text.find("<")
        if lt < 0:
            return _parse_addr_spec(text)
        if lt:
            display = _unquoted_display_name(text[:lt])
    gt = text.find(">", lt)
    if gt < 0:
        raise ParseError("missing '>' in name-addr")
    uri = parse_uri(text[lt + 1 : gt])
    return NameAddr(uri, display, parse_params(text[gt + 1 :]))


def _parse_addr_spec(text: str) -> NameAddr:
    uri_text, semi, param_text = text.partition(";")
    uri_text = uri_text.rstrip(" \t")
    if "," in uri_text or "?" in uri_text:
        raise ParseError("a URI with ',' or '?' must be enclosed in '<...>'")
    return NameAddr(parse_uri(uri_text), None, parse_params(semi + param_text))


def _unquoted_display_name(text: str) -> str | None:
    """``*(token LWS)`` before ``<``; internal whitespace runs collapse to one space."""
    name = text.rstrip(" \t")
    if not name:
        return None
    if _DISPLAY_WORDS_RE.fullmatch(name) is None or not all(
        _DISPLAY_WORD_RE.fullmatch(word) for word in _WS_RUN_RE.split(name)
    ):
        raise ParseError(f"bad display-name {name[:40]!r}")
    if "  " in name or "\t" in name:
        name = _WS_RUN_RE.sub(" ", name)
    return name


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


@dataclass(eq=False, slots=True)
class Via:
    """One ``via-parm`` (RFC 3261 §20.42): ``SIP/2.0/TLS host:port;branch=...``.

    ``transport`` is upper case; ``host`` keeps IPv6 brackets; ``params`` hold ``branch``,
    ``received``, ``rport`` (``None`` for the bare flag of RFC 3581 §3, else the port text),
    ``maddr``, ``ttl`` and any extension.
    """

    transport: str
    host: str
    port: int | None
    params: Params = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter (§8.1.1.7), or ``None``."""
        return self.params.get("branch")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        """``(host, port)`` of sent-by (§18.2.1)."""
        return self.host, self.port

    @property
    def received(self) -> str | None:
        """The ``received`` parameter (§18.2.1), or ``None``."""
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The ``rport`` value filled in by a server (RFC 3581 §4); ``None`` if absent or bare."""
        value = self.params.get("rport")
        return int(value) if value else None

    def copy(self, **changes: Any) -> Via:
        """A copy with ``changes`` applied; ``params`` is a fresh dict."""
        changes.setdefault("params", dict(self.params))
        return dataclasses.replace(self, **changes)


def parse_via(value: str) -> Via:
    """Parse one ``via-parm`` (RFC 3261 §25.1; the message splits the Via list).

    SWS around the slashes and the port colon is tolerated, LWS between sent-protocol and
    sent-by required. Checked parameters: ``branch`` needs a value, ``ttl`` is 0-255,
    ``received`` an IP address, ``rport`` empty or a port (RFC 3581), ``maddr`` a host.
    """
    m = _VIA_COMMON_RE.fullmatch(value)
    if m is not None:
        transport, host, port_text, branch, received, rport_param = m.groups()
        common: Params = {"branch": branch}
        if received is not None:
            common["received"] = received
        if rport_param is not None:
            rport = rport_param[7:] or None  # ";rport=5060" or the bare flag ";rport"
            if rport is not None and len(rport) == 5 and int(rport) > 65535:
                raise ParseError(f"bad Via rport {rport!r}")
            common["rport"] = rport
        port = None
        if port_text is not None:
            port = _COMMON_PORTS.get(port_text)
            if port is None:
                port = int(port_text)
                if port > 65535:
                    raise ParseError(f"bad Via port {port_text!r}")
        # Via(transport, host, port, common, "SIP/2.0") without calling the dataclass.
        via = _new(Via)
        via.transport = transport
        via.host = host
        via.port = port
        via.params = common
        via.protocol = "SIP/2.0"
        return via
    m = _VIA_FAST_RE.fullmatch(value)
    if m is None:
        return _parse_via_careful(value)
    transport, host, port_text, param_text = m.groups()
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise ParseError(f"bad Via port {port_text!r}")
    params: Params = {}
    if param_text:
        # Already validated by the regex: only split it (the first occurrence of a name wins).
        for part in param_text[1:].split(";"):
            name, eq, param = part.partition("=")
            if not name.islower():
                name = name.lower()
            if name not in params:
                params[name] = param if eq else None
        if len(params) > 1 or not params.get("branch"):
            _check_via_params(params)
    # Via(transport.upper(), host, port, params, "SIP/2.0") without calling the dataclass.
    via = _new(Via)
    via.transport = transport.upper()
    via.host = host
    via.port = port
    via.params = params
    via.protocol = "SIP/2.0"
    return via


def _parse_via_careful(value: str) -> Via:
    """The general path of :func:`parse_via`: SWS, IPv6, quoted values, and all the errors."""
    m = _VIA_RE.match(value)
    if m is None:
        raise ParseError(f"malformed Via {value[:60]!r}")
    name, version, transport, host, port_text = m.groups()
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise ParseError(f"bad Via port {port_text!r}")
    params = parse_params(value[m.end() :])
    _check_via_params(params)
    protocol = "SIP/2.0" if name == "SIP" and version == "2.0" else f"{name.upper()}/{version}"
    return Via(transport.upper(), validate_host(host), port, params, protocol)


def _check_via_params(params: Params) -> None:
    """The via-params of RFC 3261 §25.1 and RFC 3581 §3 that have a grammar of their own."""
    if "branch" in params and not params["branch"]:
        raise ParseError("Via branch without a value")
    if "ttl" in params:
        ttl = params["ttl"]
        if ttl is None or not ttl.isdigit() or not ttl.isascii() or int(ttl) > 255:
            raise ParseError(f"bad Via ttl {ttl!r}")
    if "received" in params:
        received = params["received"] or ""
        # RFC 3261 says IPv4address / IPv6address; RFC 5118 §4.5 shows the bracketed form too.
        if _IPV4_RE.fullmatch(received) is None and not _is_ipv6(
            received.removeprefix("[").removesuffix("]")
        ):
            raise ParseError(f"bad Via received {received!r}")
    rport = params.get("rport")
    if rport is not None and (
        not rport.isdigit() or not rport.isascii() or len(rport) > 5 or int(rport) > 65535
    ):
        raise ParseError(f"bad Via rport {rport!r}")
    if "maddr" in params:
        validate_host(params["maddr"] or "")


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return "%" not in text  # a zone index is not part of the SIP grammar


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 1*DIGIT LWS Method`` (RFC 3261 §20.16); ``0 <= seq < 2**31`` (§8.1.1.5)."""

    seq: int
    method: str

    def __post_init__(self) -> None:
        if not 0 <= self.seq < 2**31 or not is_token(self.method):
            raise LocalProtocolError(f"bad CSeq {self.seq!r} {self.method!r}")

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """Parse a CSeq value; the method is kept as written (methods are case-sensitive)."""
    digits, _, method = value.partition(" ")
    # "1 INVITE": up to nine ASCII digits, one SP and an upper-case ASCII method is a valid
    # 1*DIGIT LWS Method (and below 2**31) without the regex; anything else is checked by it.
    if not (
        len(digits) < 10
        and digits.isdigit()
        and digits.isascii()
        and method.isalpha()
        and method.isupper()
        and method.isascii()
    ):
        m = _CSEQ_RE.fullmatch(value)
        if m is None:
            raise ParseError(f"malformed CSeq {value[:40]!r}")
        digits, method = m.groups()
    # Nine digits are always below 2**31; longer ones (leading zeros allowed) are checked.
    seq = int(digits) if len(digits) < 10 else _bounded_int(digits, 2**31 - 1)
    if seq is None:
        raise ParseError(f"malformed CSeq {value[:40]!r}")
    # Both fields were checked above: skip __post_init__'s checks.
    cseq = _new(CSeq)
    _set_cseq_seq(cseq, seq)
    _set_cseq_method(cseq, method)
    return cseq


_new = object.__new__
# The slot descriptors of the frozen CSeq: their __set__ fills a new instance at about half the
# cost of object.__setattr__, which looks the name up first.
_set_cseq_seq = CSeq.__dict__["seq"].__set__
_set_cseq_method = CSeq.__dict__["method"].__set__


def _bounded_int(digits: str, maximum: int) -> int | None:
    """``int(digits)`` if it is at most ``maximum``, else ``None``; never converts a huge string
    (leading zeros are allowed by ``1*DIGIT`` and ignored)."""
    significant = digits.lstrip("0")
    if len(significant) > 20:
        return None
    number = int(significant or "0")
    return number if number <= maximum else None


def parse_int_header(value: str, name: str, *, maximum: int = 2**32 - 1) -> int:
    """``1*DIGIT`` headers: Expires, Max-Forwards, Content-Length, Min-Expires (§20).

    SP/HTAB around is tolerated; anything else, or a value above ``maximum``, raises
    ``ParseError`` naming the header.
    """
    m = _DIGITS_RE.fullmatch(value)
    number = _bounded_int(m.group(1), maximum) if m is not None else None
    if number is None:
        raise ParseError(f"bad {name} value {value[:40]!r}")
    return number


def parse_option_tags(values: str | Iterable[str]) -> list[str]:
    """Option tags of Require / Supported / Proxy-Require / Unsupported (§20.32, §20.37).

    Takes one value or several (each may itself be a comma list); returns the tags lower-cased,
    de-duplicated, in order of first appearance. A tag that is not a token raises ``ParseError``.
    """
    if isinstance(values, str):
        values = [values]
    tags: list[str] = []
    for value in values:
        for raw in value.split(","):
            tag = raw.strip(" \t")
            if not tag:
                continue
            if not is_token(tag):
                raise ParseError(f"bad option-tag {tag[:40]!r}")
            tag = tag.lower()
            if tag not in tags:
                tags.append(tag)
    return tags


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """``Retry-After: delta-seconds [ comment ] *( SEMI retry-param )`` (RFC 3261 §20.33)."""

    seconds: int
    comment: str | None = None
    params: Params = field(default_factory=dict)

    @property
    def duration(self) -> int | None:
        """The ``duration`` parameter in seconds, or ``None``."""
        value = self.params.get("duration")
        return int(value) if value is not None else None


def parse_retry_after(value: str) -> RetryAfter:
    """Parse Retry-After; ``comment`` is returned without its parentheses (escapes kept)."""
    m = _DIGITS_RE.match(value)
    seconds = _bounded_int(m.group(1), 2**32 - 1) if m is not None else None
    if m is None or seconds is None:
        raise ParseError(f"bad Retry-After {value[:40]!r}")
    pos = m.end()
    comment = None
    if pos < len(value) and value[pos] == "(":
        end = _comment_end(value, pos)
        comment, pos = value[pos + 1 : end - 1], end
    params = parse_params(value[pos:])
    if "duration" in params:
        parse_int_header(params["duration"] or "", "Retry-After duration")
    return RetryAfter(seconds, comment, params)


def _comment_end(text: str, pos: int) -> int:
    """Index after the ``comment`` at ``text[pos] == "("``; comments nest (RFC 3261 §25.1)."""
    depth = 0
    while (m := _COMMENT_STOP_RE.search(text, pos)) is not None:
        char, pos = m.group(), m.end()
        if char == "\\":
            pos += 1  # quoted-pair: the next character is literal
        elif char == "(":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return pos
    raise ParseError("unterminated comment")
