"""SIP over UDP: the datagram endpoint, the rules of RFC 3261 §18 for datagrams, minimal STUN.

Three parts, the first two sans-I/O:

* **STUN** (RFC 5389), only what RFC 5626 §4.4.2 / §8.4 keep-alives need: a Binding request (the
  20-byte header: type, length 0, the magic cookie ``0x2112A442``, a 96-bit transaction id), a
  Binding success response carrying ``XOR-MAPPED-ADDRESS`` (the server side), and parsing that
  answer (``MAPPED-ADDRESS`` is accepted too, as RFC 5389 §15.1 allows from old servers). STUN
  and SIP share the port: a datagram is STUN when its first two bits are zero and the cookie is
  in place (RFC 7983 §7 demultiplexing; a SIP message starts with a letter).
* **Datagram rules**: one datagram is one whole message (RFC 3261 §18.3 needs no framing over
  UDP; :func:`~softphone.sip.parser.parse_message` takes it); a datagram of only CR/LF is a
  keep-alive and is ignored; a request that does not parse gets its 4xx to the source if its
  Via can be recovered (:func:`error_response_for_raw`), otherwise it is dropped and counted.
  A server stamps the top Via with ``received`` and ``rport`` (:func:`stamp_received`, §18.2.1
  and RFC 3581 §4) and sends the response where :func:`response_destination` says (§18.2.2 and
  RFC 3581 §4: the source address and port when ``rport`` was asked for).
  A client must not send a request over UDP when it is larger than 1300 bytes and the path MTU
  is unknown (§18.1.1): :func:`check_request_size` raises :class:`MessageTooLargeError`.
* :class:`DatagramEndpoint`: an asyncio datagram protocol handing each datagram and each ICMP
  error (RFC 3261 §18.4) to callbacks; :func:`open_datagram_endpoint` makes one (bound for a
  server, connected to one peer for a client flow).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from softphone.sip.errors import LocalProtocolError, ParseError
from softphone.sip.message import Headers, Message, Request, Response, reason_phrase

__all__ = [
    "BINDING_REQUEST",
    "BINDING_SUCCESS",
    "MAGIC_COOKIE",
    "MAX_DATAGRAM",
    "MAX_UDP_REQUEST",
    "DatagramEndpoint",
    "MessageTooLargeError",
    "StunError",
    "StunMessage",
    "check_request_size",
    "error_response_for_raw",
    "is_keepalive",
    "is_stun",
    "mapped_address",
    "open_datagram_endpoint",
    "parse_stun",
    "response_destination",
    "stamp_received",
    "stun_binding_request",
    "stun_binding_response",
]

# -- STUN (RFC 5389) ---------------------------------------------------------------------------

#: RFC 5389 §6: the fixed value in bytes 4-7 of every STUN message.
MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111
_ATTR_MAPPED_ADDRESS = 0x0001
_ATTR_XOR_MAPPED_ADDRESS = 0x0020
_ATTR_SOFTWARE = 0x8022
_FAMILY_IPV4 = 0x01
_FAMILY_IPV6 = 0x02
_HEADER = struct.Struct("!HHI12s")
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")


class StunError(ValueError):
    """Bytes that are not a well-formed STUN message."""


@dataclass(frozen=True)
class StunMessage:
    """A STUN message: ``type`` (method and class), ``transaction_id`` (12 bytes) and its
    attributes in order as ``(type, value)``."""

    type: int
    transaction_id: bytes
    attributes: tuple[tuple[int, bytes], ...] = field(default=())

    def attribute(self, kind: int) -> bytes | None:
        return next((value for t, value in self.attributes if t == kind), None)


def is_stun(data: bytes) -> bool:
    """RFC 7983 §7 / RFC 5389 §6: first two bits zero, the magic cookie, a length that is a
    multiple of 4 and matches the datagram. A SIP message never looks like this."""
    return (
        len(data) >= _HEADER.size
        and data[0] & 0xC0 == 0
        and data[4:8] == _COOKIE_BYTES
        and int.from_bytes(data[2:4], "big") == len(data) - _HEADER.size
        and len(data) % 4 == 0
    )


def parse_stun(data: bytes) -> StunMessage:
    """The header and attributes of one STUN message (raises :class:`StunError`)."""
    if not is_stun(data):
        raise StunError("not a STUN message")
    kind, length, _cookie, tid = _HEADER.unpack_from(data)
    attributes: list[tuple[int, bytes]] = []
    pos, end = _HEADER.size, _HEADER.size + length
    while pos < end:
        if pos + 4 > end:
            raise StunError("truncated STUN attribute header")
        attr_type, attr_len = struct.unpack_from("!HH", data, pos)
        value_end = pos + 4 + attr_len
        if value_end > end:
            raise StunError("STUN attribute longer than the message")
        attributes.append((attr_type, data[pos + 4 : value_end]))
        pos = value_end + (-attr_len % 4)  # RFC 5389 §15: padded to 32 bits
    return StunMessage(kind, tid, tuple(attributes))


def stun_binding_request(transaction_id: bytes | None = None) -> tuple[bytes, bytes]:
    """A Binding request with no attribute (RFC 5389 §7.1, RFC 5626 §8.4): ``(bytes, tid)``."""
    tid = transaction_id if transaction_id is not None else secrets.token_bytes(12)
    if len(tid) != 12:
        raise ValueError("a STUN transaction id is 96 bits")
    return _HEADER.pack(BINDING_REQUEST, 0, MAGIC_COOKIE, tid), tid


def _xor_address(host: str, port: int, tid: bytes) -> bytes:
    ip = ipaddress.ip_address(host.strip("[]"))
    x_port = port ^ (MAGIC_COOKIE >> 16)
    if ip.version == 4:
        x_addr = int(ip) ^ MAGIC_COOKIE
        return struct.pack("!BBHI", 0, _FAMILY_IPV4, x_port, x_addr)
    mask = int.from_bytes(_COOKIE_BYTES + tid, "big")
    return struct.pack("!BBH", 0, _FAMILY_IPV6, x_port) + (int(ip) ^ mask).to_bytes(16, "big")


def stun_binding_response(request: StunMessage, source: tuple[str, int]) -> bytes:
    """The Binding success response to ``request`` from ``source``: XOR-MAPPED-ADDRESS is the
    address and port the request came from (RFC 5389 §10.1.2, §15.2)."""
    value = _xor_address(source[0], source[1], request.transaction_id)
    body = struct.pack("!HH", _ATTR_XOR_MAPPED_ADDRESS, len(value)) + value
    return _HEADER.pack(BINDING_SUCCESS, len(body), MAGIC_COOKIE, request.transaction_id) + body


def mapped_address(message: StunMessage) -> tuple[str, int] | None:
    """The reflexive address in a Binding response: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS."""
    xored = message.attribute(_ATTR_XOR_MAPPED_ADDRESS)
    if xored is not None:
        return _decode_address(xored, message.transaction_id, xor=True)
    plain = message.attribute(_ATTR_MAPPED_ADDRESS)
    if plain is not None:
        return _decode_address(plain, message.transaction_id, xor=False)
    return None


def _decode_address(value: bytes, tid: bytes, *, xor: bool) -> tuple[str, int] | None:
    if len(value) < 4:
        return None
    family, port = value[1], int.from_bytes(value[2:4], "big")
    raw = value[4:]
    if xor:
        port ^= MAGIC_COOKIE >> 16
    if family == _FAMILY_IPV4 and len(raw) == 4:
        number = int.from_bytes(raw, "big") ^ (MAGIC_COOKIE if xor else 0)
        return str(ipaddress.IPv4Address(number)), port
    if family == _FAMILY_IPV6 and len(raw) == 16:
        mask = int.from_bytes(_COOKIE_BYTES + tid, "big") if xor else 0
        return str(ipaddress.IPv6Address(int.from_bytes(raw, "big") ^ mask)), port
    return None


# -- SIP datagrams (RFC 3261 §18, RFC 3581) ----------------------------------------------------

#: RFC 3261 §18.1.1: above this (path MTU unknown) a request must go over a congestion
#: controlled transport such as TCP.
MAX_UDP_REQUEST = 1300
#: The largest UDP payload (IPv4); a datagram is read whole up to this.
MAX_DATAGRAM = 65507


class MessageTooLargeError(LocalProtocolError):
    """A request too large for UDP (RFC 3261 §18.1.1); ``size`` and ``limit`` in bytes."""

    def __init__(self, size: int, limit: int = MAX_UDP_REQUEST) -> None:
        super().__init__(
            f"the request is {size} bytes, more than the {limit} bytes RFC 3261 §18.1.1 allows "
            "over UDP without a known path MTU: use TCP or TLS for this account"
        )
        self.size = size
        self.limit = limit


def check_request_size(message: Message, data: bytes, limit: int = MAX_UDP_REQUEST) -> None:
    """Raise :class:`MessageTooLargeError` for a request over ``limit`` bytes (§18.1.1).

    Responses are not limited: §18.2.2 sends them back over the transport the request came on.
    """
    if isinstance(message, Request) and len(data) > limit:
        raise MessageTooLargeError(len(data), limit)


def is_keepalive(data: bytes) -> bool:
    """A datagram of CR/LF only: an RFC 5626 §3.5.1-style ping some UAs send over UDP too."""
    return not data.strip(b"\r\n")


def _replace_top_via(headers: Headers, value: str) -> None:
    # remove_first takes only the first value of a "Via: a, b" line; the new one goes first.
    headers.remove_first("Via")
    headers.prepend("Via", value)


def stamp_received(request: Request, source: tuple[str, int]) -> None:
    """RFC 3261 §18.2.1 and RFC 3581 §4 on a request that arrived from ``source``.

    ``received`` is added when the sent-by host differs from the source address (and always
    when ``rport`` was asked for); a bare ``rport`` is filled in with the source port.
    Raises ``ParseError`` if the top Via does not parse.
    """
    via = request.top_via
    host, port = source
    params = dict(via.params)
    changed = False
    asks_rport = "rport" in params and not params["rport"]
    if asks_rport:
        params["rport"] = str(port)
        changed = True
    if asks_rport or via.host.strip("[]").lower() != host.lower():
        params["received"] = host
        changed = True
    if changed:
        _replace_top_via(request.headers, str(via.copy(params=params)))


def response_destination(response: Response, source: tuple[str, int]) -> tuple[str, int]:
    """Where a response to a request received over UDP goes (RFC 3261 §18.2.2, RFC 3581 §4).

    ``received`` (else the sent-by host) at the ``rport`` value (else the sent-by port, else
    5060). ``source`` is where the request came from: used when the Via does not name an
    address (a sent-by host name without ``received`` is the source address, as a server that
    stamps every request with :func:`stamp_received` always has one). ``maddr`` is not honoured
    (multicast is not supported).
    """
    try:
        via = response.top_via
    except ParseError:
        return source
    host = via.received or via.host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = source[0]
    port = via.rport or via.port or 5060
    return host, port


_HEAD_END_RE = re.compile(rb"\n\r?\n")
_ROUTING_HEADERS = {
    "via": "Via",
    "v": "Via",
    "from": "From",
    "f": "From",
    "to": "To",
    "t": "To",
    "call-id": "Call-ID",
    "i": "Call-ID",
    "cseq": "CSeq",
}


def _safe_reason(reason: str) -> str:
    return "".join(c if c.isprintable() else " " for c in reason)[:120].strip()


def error_response_for_raw(raw: bytes, error: ParseError) -> Response | None:
    """A response to a request that did not parse, built from its raw header lines.

    §8.2.6 needs Via, From, To, Call-ID and CSeq copied; without a Via that parses there is
    no way back, and a response (``SIP/...``) is never answered. Returns None when nothing
    can be sent.
    """
    stripped = raw.lstrip(b"\r\n")
    if stripped[:4].upper() == b"SIP/":
        return None
    end = _HEAD_END_RE.search(stripped)
    head = stripped[: end.start() if end else len(stripped)].decode("utf-8", "replace")
    lines: list[str] = []
    for line in head.replace("\r\n", "\n").split("\n")[1:]:
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    headers = Headers()
    try:
        for line in lines:
            name, colon, value = line.partition(":")
            canonical = _ROUTING_HEADERS.get(name.strip().lower())
            if colon and canonical is not None:
                headers.add(canonical, value.strip())
    except (LocalProtocolError, ValueError):
        return None
    if "Via" not in headers:
        return None
    code = error.status_code if 400 <= error.status_code <= 699 else 400
    reason = _safe_reason(f"{reason_phrase(code)} ({error.reason})")
    return Response(code, reason or reason_phrase(code), headers)


# -- the asyncio endpoint ----------------------------------------------------------------------

DatagramHandler = Callable[[bytes, tuple[str, int]], None]
ErrorHandler = Callable[[Exception], None]


class DatagramEndpoint(asyncio.DatagramProtocol):
    """One UDP socket: every datagram to ``on_datagram(data, (host, port))``, every ICMP error
    (``error_received``, RFC 3261 §18.4) to ``on_error``. ``closed`` resolves when the socket
    is gone."""

    def __init__(self, on_datagram: DatagramHandler, on_error: ErrorHandler | None = None) -> None:
        self.on_datagram = on_datagram
        self.on_error = on_error
        self.transport: asyncio.DatagramTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.datagrams_received = 0
        self.datagrams_sent = 0

    # asyncio.DatagramProtocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython 3.11's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.datagrams_received += 1
        self.on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        if self.on_error is not None:
            self.on_error(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    # ours
    @property
    def local_address(self) -> tuple[str, int]:
        name = self.transport.get_extra_info("sockname") if self.transport else None
        if isinstance(name, tuple) and len(name) >= 2:
            return str(name[0]), int(name[1])
        return ("0.0.0.0", 0)  # noqa: S104  # only before the socket exists

    @property
    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def sendto(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        """Send one datagram (to the connected peer when ``addr`` is None)."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the UDP socket is closed")
        if addr is None:
            self.transport.sendto(data)
        else:
            self.transport.sendto(data, addr)
        self.datagrams_sent += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self.closed)


async def open_datagram_endpoint(
    on_datagram: DatagramHandler,
    *,
    local_addr: tuple[str, int] | None = None,
    remote_addr: tuple[str, int] | None = None,
    on_error: ErrorHandler | None = None,
) -> DatagramEndpoint:
    """A UDP socket bound to ``local_addr`` (a server) or connected to ``remote_addr`` (a
    client flow: only that peer's datagrams arrive, and ICMP errors are reported)."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: DatagramEndpoint(on_datagram, on_error),
        local_addr=local_addr,
        remote_addr=remote_addr,
    )
    return protocol
