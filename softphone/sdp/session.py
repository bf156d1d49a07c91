"""The session description itself: RFC 8866 (which obsoletes RFC 4566) parse and serialise.

::

    v=  (protocol version, must be 0)                     §5.1
    o=  (originator and session identifier)               §5.2
    s=  (session name)                                    §5.3
    i=* (session information)                             §5.4
    u=* (URI of description)                              §5.5
    e=* (zero or more email addresses)                    §5.6
    p=* (zero or more phone numbers)                      §5.6
    c=* (connection information)                          §5.7
    b=* (zero or more bandwidth information lines)        §5.8
    One or more time descriptions: t= and zero or more r= §5.9, §5.10
    z=* (time zone adjustments)                           §5.11
    k=* (obsolete encryption key)                         §5.12
    a=* (zero or more session attribute lines)            §5.13
    Zero or more media descriptions:
    m=  (media name and transport address)                §5.14
    i=* c=* b=* k=* a=*

Lines must come in that order (§5); an unknown type letter makes the whole description
unacceptable (§5: "MUST completely ignore any session description that contains a type letter
that it does not understand", which for a SIP offer means rejecting it).

Parsing accepts CRLF or bare LF line ends (§5 allows LF-only parsers to be liberal) and is
linear in the input size; serialisation always writes CRLF. Unknown attributes and every
attribute's value are kept verbatim, so ``parse_sdp(str(sdp)) == sdp`` and serialising twice
gives the same bytes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from softphone.sdp.codecs import (
    STATIC_PAYLOAD_TYPES,
    PayloadFormat,
    RtpMap,
    parse_fmtp,
    parse_payload_type,
    parse_ptime,
    parse_rtpmap,
)
from softphone.sdp.crypto import CryptoAttribute, parse_crypto
from softphone.sdp.direction import DIRECTION_ATTRIBUTES, Direction
from softphone.sdp.errors import SdpParseError
from softphone.sdp.fingerprint import Fingerprint, SetupRole, parse_fingerprint, parse_setup
from softphone.sdp.rtcp import RtcpAttribute, parse_rtcp

__all__ = [
    "MAX_LINES",
    "MAX_MEDIA",
    "MAX_SIZE",
    "RTP_PROTOS",
    "Attribute",
    "Bandwidth",
    "Connection",
    "MediaDescription",
    "Origin",
    "SessionDescription",
    "Timing",
    "parse_sdp",
]

MAX_SIZE = 65536  # bytes; a SIP body, and far above any real audio offer (~1-3 KB)
MAX_LINES = 1024
MAX_MEDIA = 32
_MAX_FORMATS = 128
_MAX_FIELD_DIGITS = 20  # sess-id is often an NTP time (~10 digits); 20 is generous

#: Media protocols of RTP audio we understand (RFC 3551, RFC 3711, RFC 4585, RFC 5124, RFC 5764).
RTP_PROTOS = frozenset(
    {"RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"}
)


def _digits(text: str, what: str, *, high: int | None = None) -> int:
    if not text or len(text) > _MAX_FIELD_DIGITS or not (text.isascii() and text.isdigit()):
        raise SdpParseError(f"invalid {what}: {text!r}")
    value = int(text)
    if high is not None and value > high:
        raise SdpParseError(f"{what} out of range: {value}")
    return value


def _token(text: str, what: str, *, utf8: bool = False) -> str:
    # RFC 8866 §9: token = 1*(token-char), visible ASCII; non-ws-string (the o= username)
    # also allows UTF-8.
    if not text or not (utf8 or text.isascii()) or not text.isprintable() or " " in text:
        raise SdpParseError(f"invalid {what}: {text!r}")
    return text


def _check_address(nettype: str, addrtype: str, address: str) -> None:
    """For ``IN IP4`` / ``IN IP6`` the address must be a literal of that family or an FQDN."""
    if nettype != "IN" or addrtype not in ("IP4", "IP6"):
        return
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        # RFC 8866 §5.7 allows an FQDN; ':' can only belong to a broken IPv6 literal.
        if ":" in address or not all(c.isalnum() or c in ".-" for c in address):
            raise SdpParseError(f"invalid {addrtype} address: {address!r}") from None
        if address.replace(".", "").isdigit():
            raise SdpParseError(f"invalid {addrtype} address: {address!r}") from None
        return
    if parsed.version != (4 if addrtype == "IP4" else 6):
        raise SdpParseError(f"address {address!r} is not {addrtype}")


@dataclass
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`` (§5.2).

    RFC 3264 §8: every new offer or answer in a dialog increments ``sess_version``."""

    username: str = "-"
    sess_id: str = "0"
    sess_version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"  # noqa: S104 - an SDP field, not a socket binding

    def __str__(self) -> str:
        return (
            f"{self.username} {self.sess_id} {self.sess_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (§5.7); ``ttl`` and ``count`` are the
    multicast suffixes ``/ttl`` (IP4 only) and ``/number of addresses``."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"
    ttl: int | None = None
    count: int | None = None

    @property
    def is_hold_address(self) -> bool:
        """``0.0.0.0``: the RFC 2543 way to put a call on hold (RFC 3264 §8.4)."""
        return self.addrtype == "IP4" and self.address == "0.0.0.0"  # noqa: S104

    def __str__(self) -> str:
        text = f"{self.nettype} {self.addrtype} {self.address}"
        if self.ttl is not None:
            text += f"/{self.ttl}"
        if self.count is not None:
            text += f"/{self.count}"
        return text


@dataclass
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (§5.8), e.g. ``AS:64`` (kbit/s) or ``TIAS:64000`` (bit/s)."""

    bwtype: str
    bandwidth: int

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass
class Timing:
    """``t=<start-time> <stop-time>`` with its ``r=`` lines kept verbatim (§5.9, §5.10).
    SIP sessions use ``t=0 0`` (RFC 3264 §5)."""

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)


_INLINE_KEY = re.compile(r"inline:[^|;\s]*")


@dataclass(repr=False)
class Attribute:
    """``a=<name>`` (a property) or ``a=<name>:<value>`` (§5.13), value kept verbatim."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"

    def __repr__(self) -> str:
        # SDES keys (RFC 4568) must not reach logs through the repr of an SDP object.
        value = self.value
        if self.name == "crypto" and value is not None:
            value = _INLINE_KEY.sub("inline:<redacted>", value)
        return f"Attribute(name={self.name!r}, value={value!r})"


class _Attributes:
    """Attribute look-ups shared by session and media level."""

    attributes: list[Attribute]

    def get_attribute(self, name: str) -> Attribute | None:
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        return None

    def get_values(self, name: str) -> list[str]:
        """The values of every ``a=name:value`` line (properties without value are skipped)."""
        return [a.value for a in self.attributes if a.name == name and a.value is not None]

    def has_attribute(self, name: str) -> bool:
        return any(a.name == name for a in self.attributes)

    def own_direction(self) -> Direction | None:
        """The direction attribute written at this level, if any (RFC 8866 §6.7)."""
        found = [a.name for a in self.attributes if a.name in DIRECTION_ATTRIBUTES]
        if len(found) > 1:
            raise SdpParseError("more than one direction attribute")
        return Direction(found[0]) if found else None

    def fingerprints(self) -> list[Fingerprint]:
        return [parse_fingerprint(v) for v in self.get_values("fingerprint")]

    def setup(self) -> SetupRole | None:
        values = self.get_values("setup")
        if len(values) > 1:
            raise SdpParseError("more than one setup attribute")
        return parse_setup(values[0]) if values else None


@dataclass
class MediaDescription(_Attributes):
    """One ``m=`` section (§5.14): ``m=<media> <port>[/<number of ports>] <proto> <fmt> ...``.

    A port of 0 marks a rejected or disabled stream (RFC 3264 §6, §8.2)."""

    media: str = "audio"
    port: int = 0
    proto: str = "RTP/AVP"
    formats: list[str] = field(default_factory=list)
    port_count: int | None = None
    information: str | None = None
    connections: list[Connection] = field(default_factory=list)
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = field(default=None, repr=False)  # k= may hold a clear key (§5.12)
    attributes: list[Attribute] = field(default_factory=list)

    # -- typed views (RFC 8866 §6, RFC 3264, RFC 3605, RFC 5761, RFC 4568, RFC 8122) --

    @property
    def rejected(self) -> bool:
        return self.port == 0

    @property
    def connection(self) -> Connection | None:
        return self.connections[0] if self.connections else None

    def payload_types(self) -> list[int]:
        """The formats as RTP payload types (§5.14: for RTP protos they are PT numbers)."""
        return [parse_payload_type(f) for f in self.formats]

    def payload_formats(
        self, *, defaults: Mapping[int, RtpMap] | None = None, skip_unknown: bool = False
    ) -> list[PayloadFormat]:
        """Every format of the m-line in m-line order, resolved through ``a=rtpmap``/``a=fmtp``,
        then ``defaults`` (e.g. the mapping of the offer, for an answer that leaves out an
        rtpmap), then the RFC 3551 static table.

        A dynamic PT that none of them defines is undefined (RFC 8866 §6.6): an error, or left
        out with ``skip_unknown`` (negotiation just cannot pick it)."""
        rtpmaps: dict[int, RtpMap] = {}
        for value in self.get_values("rtpmap"):
            rtpmap = parse_rtpmap(value)
            rtpmaps.setdefault(rtpmap.payload_type, rtpmap)
        fmtps: dict[int, str] = {}
        for value in self.get_values("fmtp"):
            pt, params = parse_fmtp(value)
            fmtps.setdefault(pt, params)
        result = []
        for pt in self.payload_types():
            found = (
                rtpmaps.get(pt)
                or (defaults.get(pt) if defaults is not None else None)
                or STATIC_PAYLOAD_TYPES.get(pt)
            )
            if found is None:
                if skip_unknown:
                    continue
                raise SdpParseError(f"payload type {pt} has no rtpmap")
            channels = found.channels if found.channels is not None else 1
            result.append(
                PayloadFormat(pt, found.encoding_name, found.clock_rate, channels, fmtps.get(pt))
            )
        return result

    def ptime(self) -> int | None:
        values = self.get_values("ptime")
        return parse_ptime(values[0]) if values else None

    def maxptime(self) -> int | None:
        values = self.get_values("maxptime")
        return parse_ptime(values[0]) if values else None

    def direction(self, session: SessionDescription | None = None) -> Direction:
        """Media level wins over session level; sendrecv if neither says (RFC 8866 §6.7)."""
        own = self.own_direction()
        if own is not None:
            return own
        if session is not None:
            return session.own_direction() or Direction.SENDRECV
        return Direction.SENDRECV

    def rtcp(self) -> RtcpAttribute | None:
        values = self.get_values("rtcp")
        return parse_rtcp(values[0]) if values else None

    @property
    def rtcp_mux(self) -> bool:
        return self.has_attribute("rtcp-mux")

    def crypto(self) -> list[CryptoAttribute]:
        """Every ``a=crypto`` line in offer order (RFC 4568 §5.1: the offerer's preference)."""
        return [parse_crypto(v) for v in self.get_values("crypto")]

    def lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        out = [f"m={' '.join((self.media, port, self.proto, *self.formats))}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        out += [f"c={c}" for c in self.connections]
        out += [f"b={b}" for b in self.bandwidths]
        if self.key is not None:
            out.append(f"k={self.key}")
        out += [f"a={a}" for a in self.attributes]
        return out


@dataclass
class SessionDescription(_Attributes):
    """A whole session description (RFC 8866 §5). ``str()`` gives the CRLF wire form,
    ``bytes()`` its UTF-8 encoding (§5: the default charset is UTF-8)."""

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=lambda: [Timing()])
    zone: str | None = None
    key: str | None = field(default=None, repr=False)  # k= may hold a clear key (§5.12)
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    def media_connection(self, media: MediaDescription) -> Connection | None:
        """The connection that applies to ``media``: its own ``c=``, else the session's."""
        return media.connection or self.connection

    def media_fingerprints(self, media: MediaDescription) -> list[Fingerprint]:
        """Media-level fingerprints replace session-level ones (RFC 8122 §5)."""
        return media.fingerprints() or self.fingerprints()

    def media_setup(self, media: MediaDescription) -> SetupRole | None:
        return media.setup() or self.setup()

    def lines(self) -> list[str]:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out += [f"e={e}" for e in self.emails]
        out += [f"p={p}" for p in self.phones]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"b={b}" for b in self.bandwidths]
        for timing in self.timings:
            out.append(f"t={timing.start} {timing.stop}")
            out += [f"r={r}" for r in timing.repeats]
        if self.zone is not None:
            out.append(f"z={self.zone}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out += [f"a={a}" for a in self.attributes]
        for media in self.media:
            out += media.lines()
        return out

    def __str__(self) -> str:
        return "".join(line + "\r\n" for line in self.lines())

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")


# -- parsing ------------------------------------------------------------------------------

# Rank of each session-level type letter: a line may not come after one of a higher rank.
# 't' and 'r' share a rank so that "t r r t r" is accepted; a repeat is allowed where the
# grammar has '*' (REPEATABLE).
_SESSION_RANK = {
    "v": 0, "o": 1, "s": 2, "i": 3, "u": 4, "e": 5, "p": 6, "c": 7, "b": 8,
    "t": 9, "r": 9, "z": 10, "k": 11, "a": 12,
}  # fmt: skip
_MEDIA_RANK = {"i": 1, "c": 2, "b": 3, "k": 4, "a": 5}
_REPEATABLE = frozenset("epbtrac")
_STRUCTURED = frozenset("vocbtm")


def _parse_origin(value: str) -> Origin:
    fields = value.split(" ")
    if len(fields) != 6 or not all(fields):
        raise SdpParseError("malformed origin (o=) line")
    username, sess_id, sess_version, nettype, addrtype, address = fields
    _digits(sess_id, "session id")
    _check_address(_token(nettype, "nettype"), _token(addrtype, "addrtype"), address)
    return Origin(
        _token(username, "username", utf8=True),
        sess_id,
        _digits(sess_version, "session version"),
        nettype,
        addrtype,
        _token(address, "origin address"),
    )


def _parse_connection(value: str) -> Connection:
    fields = value.split(" ")
    if len(fields) != 3 or not all(fields):
        raise SdpParseError("malformed connection (c=) line")
    nettype, addrtype = _token(fields[0], "nettype"), _token(fields[1], "addrtype")
    address, *suffixes = _token(fields[2], "connection address").split("/")
    ttl = count = None
    # §5.7: IP4 multicast is addr/ttl[/count]; IP6 has no TTL, only addr[/count].
    if addrtype == "IP4" and suffixes:
        ttl = _digits(suffixes[0], "TTL", high=255)
        if len(suffixes) == 2:
            count = _digits(suffixes[1], "number of addresses")
        elif len(suffixes) > 2:
            raise SdpParseError("malformed connection address")
    elif suffixes:
        if len(suffixes) > 1:
            raise SdpParseError("malformed connection address")
        count = _digits(suffixes[0], "number of addresses")
    if count == 0:
        raise SdpParseError("number of addresses must be at least 1")
    _check_address(nettype, addrtype, address)
    return Connection(address, addrtype, nettype, ttl, count)


def _parse_bandwidth(value: str) -> Bandwidth:
    bwtype, sep, amount = value.partition(":")
    if not sep:
        raise SdpParseError("malformed bandwidth (b=) line")
    return Bandwidth(_token(bwtype, "bandwidth type"), _digits(amount, "bandwidth"))


def _parse_timing(value: str) -> Timing:
    fields = value.split(" ")
    if len(fields) != 2:
        raise SdpParseError("malformed timing (t=) line")
    return Timing(_digits(fields[0], "start time"), _digits(fields[1], "stop time"))


def _parse_attribute(value: str) -> Attribute:
    name, sep, attr_value = value.partition(":")
    _token(name, "attribute name")
    return Attribute(name, attr_value if sep else None)


def _parse_media(value: str) -> MediaDescription:
    fields = value.split(" ")
    if len(fields) < 4 or not all(fields):
        raise SdpParseError("malformed media (m=) line")
    if len(fields) > 3 + _MAX_FORMATS:
        raise SdpParseError("too many formats on an m= line")
    media, port_text, proto, *formats = fields
    port_text, slash, count_text = port_text.partition("/")
    port = _digits(port_text, "port", high=65535)
    port_count = _digits(count_text, "number of ports") if slash else None
    if port_count == 0:
        raise SdpParseError("number of ports must be at least 1")
    for fmt in formats:
        _token(fmt, "media format")
    if proto in RTP_PROTOS:
        for fmt in formats:  # §5.14: for RTP the formats are payload type numbers
            parse_payload_type(fmt)
    return MediaDescription(
        _token(media, "media type"), port, _token(proto, "proto"), formats, port_count
    )


def _split_lines(data: bytes | str, max_size: int) -> list[str]:
    if len(data) > max_size:
        raise SdpParseError(f"session description larger than {max_size} bytes", 413)
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpParseError("session description is not UTF-8") from None
    else:
        text = data
    lines = text.split("\n")
    # A final line end leaves one empty string; tolerate extra trailing blank lines (some
    # stacks add one) but not blank lines in the middle.
    while lines and lines[-1] in ("", "\r"):
        lines.pop()
    if len(lines) > MAX_LINES:
        raise SdpParseError(f"more than {MAX_LINES} lines", 413)
    result = []
    for number, raw in enumerate(lines, 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if "\r" in line or "\x00" in line:
            raise SdpParseError(f"line {number}: stray CR or NUL")
        result.append(line)
    return result


def parse_sdp(data: bytes | str, *, max_size: int = MAX_SIZE) -> SessionDescription:
    """Parse a session description (RFC 8866 §5, §9). Raises only :class:`SdpParseError`
    (400, or 413 over ``max_size`` / :data:`MAX_LINES`)."""
    lines = _split_lines(data, max_size)
    sdp = SessionDescription(timings=[])
    media: MediaDescription | None = None
    rank = -1
    seen: set[str] = set()
    session_kinds: set[str] = set()
    for number, line in enumerate(lines, 1):
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpParseError(f"line {number}: not a <type>=<value> line")
        kind, value = line[0], line[2:]
        if kind in _STRUCTURED:
            # Some phones end m= or c= lines with a space; the fields are unambiguous anyway.
            value = value.rstrip(" ")
        try:
            if kind == "m":
                if not sdp.timings:
                    raise SdpParseError("missing t= line before media")
                if len(sdp.media) >= MAX_MEDIA:
                    raise SdpParseError(f"more than {MAX_MEDIA} media descriptions", 413)
                media = _parse_media(value)
                sdp.media.append(media)
                rank, seen = 0, set()
                continue
            ranks = _SESSION_RANK if media is None else _MEDIA_RANK
            new_rank = ranks.get(kind)
            if new_rank is None:
                raise SdpParseError(f"unexpected {kind}= line")
            if new_rank < rank or (kind in seen and kind not in _REPEATABLE):
                raise SdpParseError(f"{kind}= line out of order")
            if kind == "r" and "t" not in seen:
                raise SdpParseError("r= line without t= line")
            rank = new_rank
            seen.add(kind)
            if media is None:
                session_kinds.add(kind)
                _session_line(sdp, kind, value)
            else:
                _media_line(media, kind, value)
        except SdpParseError as exc:
            raise SdpParseError(f"line {number}: {exc.reason}", exc.status_code) from None
    for required in "vost":
        if required not in session_kinds:
            raise SdpParseError(f"missing {required}= line")
    return sdp


def _session_line(sdp: SessionDescription, kind: str, value: str) -> None:
    if kind == "v":
        if value != "0":
            raise SdpParseError(f"unsupported SDP version {value!r}")
        sdp.version = 0
    elif kind == "o":
        sdp.origin = _parse_origin(value)
    elif kind == "s":
        # RFC 8866 §5.3 wants a non-empty name; empty "s=" is common enough to accept.
        sdp.session_name = value
    elif kind == "i":
        sdp.information = value
    elif kind == "u":
        sdp.uri = value
    elif kind == "e":
        sdp.emails.append(value)
    elif kind == "p":
        sdp.phones.append(value)
    elif kind == "c":
        sdp.connection = _parse_connection(value)
    elif kind == "b":
        sdp.bandwidths.append(_parse_bandwidth(value))
    elif kind == "t":
        sdp.timings.append(_parse_timing(value))
    elif kind == "r":
        if not value:
            raise SdpParseError("empty r= line")
        sdp.timings[-1].repeats.append(value)
    elif kind == "z":
        if not value:
            raise SdpParseError("empty z= line")
        sdp.zone = value
    elif kind == "k":
        sdp.key = value
    else:  # "a"
        sdp.attributes.append(_parse_attribute(value))


def _media_line(media: MediaDescription, kind: str, value: str) -> None:
    if kind == "i":
        media.information = value
    elif kind == "c":
        media.connections.append(_parse_connection(value))
    elif kind == "b":
        media.bandwidths.append(_parse_bandwidth(value))
    elif kind == "k":
        media.key = value
    else:  # "a"
        media.attributes.append(_parse_attribute(value))
