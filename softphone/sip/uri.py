"""SIP, SIPS, tel and other URIs: parsing, serialisation and comparison.

- ``SipURI``: RFC 3261 §19.1 (sip: / sips:), with RFC 5118 IPv6 references; comparison is the
  §19.1.4 rule.
- ``TelURI``: RFC 3966 (global ``+1-212-555-0101`` or local numbers with ``phone-context``);
  comparison per RFC 3966 §4 (visual separators ignored).
- ``AbsoluteURI``: any other scheme (``http:``, ``urn:``, ``mailto:``...), kept verbatim.
- ``parse_sipsec_uri`` / ``sipsec_request_uri``: draft-gurbani-sip-sipsec-01 §6.2, where a
  ``sipsec:`` URI is only ever a local instruction that becomes a CONNECT request to a ``sips:``
  (or ``sip:``) Request-URI.

Hashing: the URI classes are deliberately *unhashable*. They are mutable dataclasses and
§19.1.4 equality is not transitive (``;security=on`` equals the bare URI, which equals
``;security=off``, yet those two differ), so no hash can be consistent with it. Key dicts on
``str(uri)`` or ``uri.aor`` instead.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import LocalProtocolError, ParseError
from .grammar import (
    HEADER_SAFE,
    PARAM_SAFE,
    PASSWORD_SAFE,
    USER_SAFE,
    Params,
    percent_decode,
    percent_encode,
)

__all__ = [
    "URI",
    "AbsoluteURI",
    "SipURI",
    "TelURI",
    "parse_sipsec_uri",
    "parse_uri",
    "sipsec_request_uri",
    "validate_host",
]

# Character classes of RFC 3261 §25.1, each with '%' so that escapes pass to percent_decode.
_USER_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]++")
_PASSWORD_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,%]*+")
_PARAMCHARS_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]++")
# hnv-unreserved / unreserved / escaped; '@' is tolerated because UAs put unescaped Call-IDs
# into Replaces headers (sip:b@x?Replaces=abc@host...), and we re-escape it on output.
_HCHARS_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/?:+$%@]*+")
_PORT_RE = re.compile(r"[0-9]{1,10}")
_HOSTNAME_SHAPE_RE = re.compile(r"[A-Za-z0-9\-]++(?:\.[A-Za-z0-9\-]++)*+\.?")
_IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_IPV6_CHARS_RE = re.compile(r"[0-9A-Fa-f:.]++")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*+")
_OPAQUE_RE = re.compile(r'[^\x00-\x20<>"\x7f]++')
_TEL_GLOBAL_RE = re.compile(r"\+[0-9\-.()]++")
_TEL_LOCAL_RE = re.compile(r"[0-9A-Fa-f*#\-.()]++")
_TEL_PNAME_RE = re.compile(r"[A-Za-z0-9\-]++")
_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")

# The fast paths: one regex for the common shape of a host and of a SIP URI (no escapes, no
# IPv6, no URI headers). Each accepts only what the careful path accepts, checking the host
# rules of validate_host inline (labels start and end alphanumeric, the top label starts with a
# letter, IPv4 octets <= 255), so a match needs no further validation; anything the regexes do
# not match takes the careful path, which decides between "valid but unusual" and ParseError.
# Every repetition is possessive or inside an atomic group whose backtracking gives back whole
# labels only, so they run in linear time. The patterns are shared with headers.py and
# parser.py, whose one-regex fast paths for Via, name-addr and the Request-Line embed them.
#
# A label is alphanumerics and hyphens, neither first nor last ((?<!-) after the possessive run
# is cheaper in the regex engine than a nested group per hyphen). The labels before the top
# label are taken possessively; the hostname branch comes first because a hostname's top label
# starts with a letter, so an IPv4 address is only tried when that fails, and a hostname ending
# with a dot ("example.com.", which the possessive loop cannot give back) only after that.
_LABEL = r"[A-Za-z0-9][A-Za-z0-9\-]*+(?<!-)"
_TOPLABEL = r"[A-Za-z][A-Za-z0-9\-]*+(?<!-)"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]?[0-9])"
_HOST_PATTERN = (
    rf"(?>(?:{_LABEL}\.)*+{_TOPLABEL}|{_OCTET}(?:\.{_OCTET}){{3}}(?![A-Za-z0-9\-.])"
    rf"|(?:{_LABEL}\.)*{_TOPLABEL}\.)"
)
_HOST_FAST_RE = re.compile(_HOST_PATTERN)
_PCHAR_FAST = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]"
#: After "sip:": groups user, password, host, port, ";params" (no capturing group elsewhere).
_SIP_FAST_PATTERN = (
    r"(?:([A-Za-z0-9\-_.!~*'()&=+$,]++)(?::([A-Za-z0-9\-_.!~*'()&=+$,]*+))?@)?"
    rf"({_HOST_PATTERN})(?::([0-9]{{1,5}}+))?"
    rf"((?:;{_PCHAR_FAST}++(?:={_PCHAR_FAST}++)?)*+)"
)
_SIP_FAST_RE = re.compile(_SIP_FAST_PATTERN)
# Port text -> number for the ports nearly every SIP message names (a fixed table: int() costs
# several times a dict lookup on this path).
_COMMON_PORTS = {str(port): port for port in (*range(5060, 5071), 5080, 5081, 443, 80, 8080)}

# §19.1.4: these parameters must match when present in either URI, not only in both.
_ALWAYS_COMPARED = ("user", "ttl", "method", "maddr", "transport")
_MISSING = object()
_new = object.__new__


def validate_host(host: str) -> str:
    """Return ``host`` if it is an RFC 3261 §25.1 ``host``, else raise ``ParseError``.

    ``host = hostname / IPv4address / IPv6reference``; a hostname may end with a dot, its labels
    do not start or end with ``-`` and its top label starts with a letter. IPv6 references use
    brackets and any RFC 4291 text form (RFC 5118 §4, incl. ``[::ffff:192.0.2.1]``).
    """
    if _HOST_FAST_RE.fullmatch(host) is None:
        _check_host(host)
    return host


def _check_host(host: str) -> None:
    if not host:
        raise ParseError("empty host")
    if host[0] == "[":
        inner = host[1:-1]
        if host[-1] != "]" or _IPV6_CHARS_RE.fullmatch(inner) is None:
            raise ParseError(f"bad IPv6 reference {host[:60]!r}")
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise ParseError(f"bad IPv6 reference {host[:60]!r}") from None
        return
    if _IPV4_RE.fullmatch(host) is not None:
        if any(int(octet) > 255 for octet in host.split(".")):
            raise ParseError(f"bad IPv4 address {host!r}")
        return
    name = host[:-1] if host[-1] == "." else host
    if (
        _HOSTNAME_SHAPE_RE.fullmatch(host) is None
        or name[0] == "-"
        or name[-1] == "-"
        or "-." in name
        or ".-" in name
        or not name[name.rfind(".") + 1].isalpha()
    ):
        raise ParseError(f"bad host {host[:60]!r}")


def _host_key(host: str) -> str:
    """Host as compared by §19.1.4: case-insensitive, IP addresses by value (RFC 5118 §4)."""
    if host.startswith("["):
        try:
            return "[" + ipaddress.IPv6Address(host[1:-1]).packed.hex() + "]"
        except ValueError:
            return host.lower()
    if _IPV4_RE.fullmatch(host) is not None:
        return ".".join(str(int(octet)) for octet in host.split("."))
    return host.lower()


def _parse_port(text: str) -> int:
    if _PORT_RE.fullmatch(text) is None or int(text) > 65535:
        raise ParseError(f"bad port {text[:20]!r}")
    return int(text)


def _parse_uri_params(text: str, what: str) -> Params:
    """``*( ";" pname [ "=" pvalue ] )`` with ``text`` just after the first ';'; decoded."""
    params: Params = {}
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        if _PARAMCHARS_RE.fullmatch(name) is None or (
            eq and _PARAMCHARS_RE.fullmatch(value) is None
        ):
            raise ParseError(f"bad {what} parameter {part[:40]!r}")
        params.setdefault(percent_decode(name).lower(), percent_decode(value) if eq else None)
    return params


def _format_uri_params(params: Params) -> str:
    return "".join(
        ";" + percent_encode(name, PARAM_SAFE)
        if value is None
        else f";{percent_encode(name, PARAM_SAFE)}={percent_encode(value, PARAM_SAFE)}"
        for name, value in params.items()
    )


def _parse_uri_headers(text: str) -> dict[str, str]:
    """``hname "=" hvalue *( "&" header )``, decoded; a repeated name is joined with ','."""
    headers: dict[str, str] = {}
    for part in text.split("&"):
        name, eq, value = part.partition("=")
        if (
            not eq
            or not name
            or _HCHARS_RE.fullmatch(name) is None
            or _HCHARS_RE.fullmatch(value) is None
        ):
            raise ParseError(f"bad URI header {part[:40]!r}")
        name, value = percent_decode(name), percent_decode(value)
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


@dataclass(eq=False, slots=True)
class SipURI:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1.1), components stored decoded.

    ``str()`` gives the canonical form, percent-encoding what §25.1 requires, so
    ``parse_uri(str(u))`` equals ``u`` field for field. ``==`` is :meth:`equivalent`.
    """

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Params = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(percent_encode(self.user, USER_SAFE))
            if self.password is not None:
                parts += [":", percent_encode(self.password, PASSWORD_SAFE)]
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        if self.params:
            parts.append(_format_uri_params(self.params))
        if self.headers:
            parts.append("?")
            parts.append(
                "&".join(
                    f"{percent_encode(k, HEADER_SAFE)}={percent_encode(v, HEADER_SAFE)}"
                    for k, v in self.headers.items()
                )
            )
        return "".join(parts)

    @property
    def transport(self) -> str | None:
        """The ``transport`` uri-parameter, lower-cased (RFC 3261 §19.1.1), or ``None``."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def is_secure(self) -> bool:
        """True for ``sips:`` (RFC 3261 §19.1: TLS on every hop)."""
        return self.scheme == "sips"

    @property
    def aor(self) -> str:
        """``scheme:user@host`` without port, parameters or headers: the identity (§10.2.1)."""
        if self.user is None:
            return f"{self.scheme}:{self.host}"
        return f"{self.scheme}:{percent_encode(self.user, USER_SAFE)}@{self.host}"

    def equivalent(self, other: object) -> bool:
        """RFC 3261 §19.1.4 comparison (IPv6 hosts compared as addresses, RFC 5118 §4).

        Scheme, userinfo (case-sensitive, decoded), host (case-insensitive) and port (absent is
        not 5060) must match; ``user``/``ttl``/``method``/``maddr``/``transport`` must match when
        present in either; other parameters only when present in both; headers all must match
        (names case-insensitive). Parameter values compare case-insensitively.
        """
        if not isinstance(other, SipURI):
            return False
        if (
            self.scheme.lower() != other.scheme.lower()
            or self.user != other.user
            or self.password != other.password
            or self.port != other.port
            or _host_key(self.host) != _host_key(other.host)
        ):
            return False
        for name, value in self.params.items():
            theirs = other.params.get(name, _MISSING)
            if theirs is _MISSING:
                if name in _ALWAYS_COMPARED:
                    return False
            elif not _same_value(value, theirs):
                return False
        if any(name in other.params and name not in self.params for name in _ALWAYS_COMPARED):
            return False
        return {k.lower(): v for k, v in self.headers.items()} == {
            k.lower(): v for k, v in other.headers.items()
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (SipURI, TelURI, AbsoluteURI)):
            return NotImplemented
        return self.equivalent(other)

    __hash__ = None  # type: ignore[assignment]  # deliberately unhashable: see module docstring

    def copy(self, **changes: Any) -> SipURI:
        """A copy with ``changes`` applied; params and headers are fresh dicts."""
        changes.setdefault("params", dict(self.params))
        changes.setdefault("headers", dict(self.headers))
        return dataclasses.replace(self, **changes)


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return a is None and b is None


@dataclass(eq=False, slots=True)
class TelURI:
    """A ``tel:`` URI (RFC 3966 §3): ``number`` as written, ``params`` decoded, names lower-case.

    ``number`` is a global number (``+`` then digits and visual separators ``-.()``) or a local
    one (hex digits, ``*``, ``#``, separators), which then requires ``;phone-context``.
    ``number`` is decoded: ``#`` is written ``%23`` on the wire.
    """

    number: str
    params: Params = field(default_factory=dict)

    def __str__(self) -> str:
        return "tel:" + self.number.replace("#", "%23") + _format_uri_params(self.params)

    @property
    def is_global(self) -> bool:
        """True for a global number (``+...``), RFC 3966 §5.1.4."""
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators, hex digits lower-cased (RFC 3966 §4)."""
        return self.number.translate(_VISUAL_SEPARATORS).lower()

    def _key(self) -> tuple[str, dict[str, str | None]]:
        params: dict[str, str | None] = {}
        for name, value in self.params.items():
            if value is not None and name == "phone-context" and value.startswith("+"):
                params[name] = value.translate(_VISUAL_SEPARATORS)
            else:
                params[name] = value.lower() if value is not None else None
        return self.digits, params

    def equivalent(self, other: object) -> bool:
        """RFC 3966 §4: same number ignoring visual separators, same parameter set and values
        (order and case ignored)."""
        return isinstance(other, TelURI) and self._key() == other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (SipURI, TelURI, AbsoluteURI)):
            return NotImplemented
        return self.equivalent(other)

    __hash__ = None  # type: ignore[assignment]  # see module docstring

    def copy(self, **changes: Any) -> TelURI:
        """A copy with ``changes`` applied; params is a fresh dict."""
        changes.setdefault("params", dict(self.params))
        return dataclasses.replace(self, **changes)


@dataclass(eq=False, slots=True)
class AbsoluteURI:
    """A URI of any scheme other than sip/sips/tel (RFC 3261 §25.1 ``absoluteURI``), verbatim."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"

    def equivalent(self, other: object) -> bool:
        """Scheme case-insensitive, the rest character for character (no scheme-specific rule)."""
        return (
            isinstance(other, AbsoluteURI)
            and self.scheme.lower() == other.scheme.lower()
            and self.rest == other.rest
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (SipURI, TelURI, AbsoluteURI)):
            return NotImplemented
        return self.equivalent(other)

    __hash__ = None  # type: ignore[assignment]  # see module docstring


URI = SipURI | TelURI | AbsoluteURI


def parse_uri(text: str) -> URI:
    """Parse a URI as found in a Request-Line or inside ``<...>`` (RFC 3261 §25.1).

    ``sip``/``sips`` (any case) give a :class:`SipURI`, ``tel`` a :class:`TelURI`, any other
    well-formed scheme an :class:`AbsoluteURI`. Malformed input raises ``ParseError`` (400);
    whether a scheme is acceptable (416) is the caller's decision.
    """
    if text.startswith("sip:"):
        return _parse_sip("sip", text[4:])
    if text.startswith("sips:"):
        return _parse_sip("sips", text[5:])
    colon = text.find(":")
    if colon <= 0 or _SCHEME_RE.fullmatch(text, 0, colon) is None:
        raise ParseError(f"no URI scheme in {text[:60]!r}")
    scheme = text[:colon].lower()
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, text[colon + 1 :])
    if scheme == "tel":
        return _parse_tel(text[colon + 1 :])
    rest = text[colon + 1 :]
    if _OPAQUE_RE.fullmatch(rest) is None:
        raise ParseError(f"malformed {scheme} URI {text[:60]!r}")
    return AbsoluteURI(text[:colon], rest)


def _parse_sip(scheme: str, rest: str) -> SipURI:
    """``[ userinfo ] hostport uri-parameters [ headers ]`` after ``sip:`` (RFC 3261 §25.1)."""
    m = _SIP_FAST_RE.fullmatch(rest)
    if m is None:
        return _parse_sip_careful(scheme, rest)
    return _sip_from_fast(scheme, m.groups())


def _sip_from_fast(scheme: str, groups: tuple[Any, ...]) -> SipURI:
    """The SipURI of a ``_SIP_FAST_PATTERN`` match: only the port range is left to check.

    ``groups`` are the pattern's (user, password, host, port, ";params").
    """
    user, password, host, port_text, param_text = groups
    port = None
    if port_text is not None:
        port = _COMMON_PORTS.get(port_text)
        if port is None:
            port = int(port_text)
            if port > 65535:
                raise ParseError(f"bad port {port_text!r}")
    params: Params
    if not param_text:
        params = {}
    elif ";" not in param_text[1:]:
        # One parameter, the usual case (";transport=tcp", ";lr").
        name, eq, value = param_text[1:].partition("=")
        params = {name if name.islower() else name.lower(): value if eq else None}
    else:
        params = {}
        for part in param_text[1:].split(";"):
            name, eq, value = part.partition("=")
            if not name.islower():
                name = name.lower()
            if name not in params:
                params[name] = value if eq else None
    # What SipURI(scheme, user, password, host, port, params, {}) gives, without the cost of
    # calling the dataclass (this is the hot path of every parse).
    uri = _new(SipURI)
    uri.scheme = scheme
    uri.user = user
    uri.password = password
    uri.host = host
    uri.port = port
    uri.params = params
    uri.headers = {}
    return uri


def _parse_sip_careful(scheme: str, rest: str) -> SipURI:
    """The general path of :func:`_parse_sip`: escapes, IPv6, headers, and all the errors."""
    user = password = None
    # '@' is escaped everywhere except as the userinfo delimiter, so the first one is it.
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if _USER_RE.fullmatch(user) is None or (colon and _PASSWORD_RE.fullmatch(pw) is None):
            raise ParseError(f"bad userinfo {userinfo[:60]!r}")
        user = percent_decode(user)
        password = percent_decode(pw) if colon else None
    headers: dict[str, str] = {}
    question = rest.find("?")
    if question >= 0:
        headers = _parse_uri_headers(rest[question + 1 :])
        rest = rest[:question]
    params: Params = {}
    semi = rest.find(";")
    if semi >= 0:
        params = _parse_uri_params(rest[semi + 1 :], "uri")
        rest = rest[:semi]
    port = None
    if rest.startswith("["):
        close = rest.find("]") + 1
        host, after = (rest[:close], rest[close:]) if close else (rest, "")
        if after:
            if after[0] != ":":
                raise ParseError(f"junk after IPv6 reference {after[:20]!r}")
            port = _parse_port(after[1:])
    else:
        host, colon, port_text = rest.partition(":")
        if colon:
            port = _parse_port(port_text)
    return SipURI(scheme, user, password, validate_host(host), port, params, headers)


def _parse_tel(rest: str) -> TelURI:
    """``telephone-subscriber`` (RFC 3966 §3)."""
    number, semi, param_text = rest.partition(";")
    # '#' is a URI delimiter, so a local number carries it as %23 (RFC 3966 §5.1.5).
    number = percent_decode(number)
    params: Params = {}
    if semi:
        params = _parse_uri_params(param_text, "tel")
        if any(_TEL_PNAME_RE.fullmatch(name) is None for name in params):
            raise ParseError(f"bad tel parameter name in {rest[:60]!r}")
    if number.startswith("+"):
        if _TEL_GLOBAL_RE.fullmatch(number) is None or not any(c.isdigit() for c in number):
            raise ParseError(f"bad global number {number[:40]!r}")
        if "phone-context" in params:
            raise ParseError("phone-context on a global number")
    else:
        if _TEL_LOCAL_RE.fullmatch(number) is None or number.strip("-.()") == "":
            raise ParseError(f"bad local number {number[:40]!r}")
        context = params.get("phone-context")
        if not context:
            raise ParseError("local tel number without phone-context", 400)
        _check_phone_context(context)
    return TelURI(number, params)


def _check_phone_context(context: str) -> None:
    """``descriptor = domainname / global-number-digits`` (RFC 3966 §3)."""
    if context.startswith("+"):
        if _TEL_GLOBAL_RE.fullmatch(context) is None or not any(c.isdigit() for c in context):
            raise ParseError(f"bad phone-context {context[:40]!r}")
    elif context.startswith("[") or _IPV4_RE.fullmatch(context):
        raise ParseError(f"bad phone-context {context[:40]!r}")
    else:
        validate_host(context)


def parse_sipsec_uri(text: str, *, scheme: str = "sips") -> SipURI:
    """Parse ``sipsec:user@host...`` (draft-gurbani-sip-sipsec-01 §6.2) into a :class:`SipURI`.

    The sipsec scheme is never serialised on the wire; the result carries ``scheme`` (``sips``
    by default, or ``sip``) and keeps user, password, host, port, params and headers. The
    grammar after the colon is that of a SIP URI. Also accepts ``sip:``/``sips:`` text unchanged
    in meaning apart from the scheme, so a UI may pass either.
    """
    colon = text.find(":")
    if colon <= 0 or text[:colon].lower() not in ("sipsec", "sip", "sips"):
        raise ParseError(f"not a sipsec URI: {text[:60]!r}")
    return sipsec_request_uri(_parse_sip("sips", text[colon + 1 :]), scheme=scheme)


def sipsec_request_uri(uri: SipURI, *, scheme: str = "sips") -> SipURI:
    """The Request-URI of the CONNECT that a sipsec URI turns into (draft §6.2, §6.4).

    A copy of ``uri`` with ``scheme`` ``"sips"`` (default) or ``"sip"``; user, host, port,
    params and headers are kept. Any other scheme (in particular ``"sipsec"``, which must never
    appear on the wire) raises ``LocalProtocolError``.
    """
    if scheme not in ("sip", "sips"):
        raise LocalProtocolError(f"a CONNECT Request-URI must be sip or sips, not {scheme!r}")
    return uri.copy(scheme=scheme)
