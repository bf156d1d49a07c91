"""One connection of the registrar/proxy: its stream, framer and sipsec state.

A connection carries SIP (framed, RFC 3261 §18.3) until a CONNECT is forwarded over it or
arrived on it: it is then *reserved* (draft-gurbani-sip-sipsec-01 §6.6: nothing else may be
interleaved with the bytes the endpoints exchange after the 2xx) and, on a 2xx, becomes one side
of a :class:`~softphone.server.tunnel.Tunnel`: bytes relayed without parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from softphone.sip.digest import redact_authorization
from softphone.sip.framing import StreamFramer
from softphone.sip.message import Message
from softphone.transport.stream import ByteStream, TCPStream, TLSStream, TLSStreamError

if TYPE_CHECKING:
    from softphone.server.tunnel import Tunnel

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "AsyncioStream",
    "Connection",
    "loggable",
    "shutdown_write",
]

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 65536
MAX_BODY_BYTES = 65536
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization")


def loggable(message: Message) -> str:
    """The header section of ``message`` for a debug log, credentials redacted."""
    lines = []
    for name, value in message.headers:
        shown = redact_authorization(value) if name.lower() in _CREDENTIAL_HEADERS else value
        lines.append(f"{name}: {shown}")
    return "\n".join(lines)


class AsyncioStream:
    """A :class:`ByteStream` over asyncio's StreamReader/StreamWriter (plain TCP)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise ConnectionResetError("write on a closed TCP connection")
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    async def read(self) -> bytes:
        return await self._reader.read(65536)

    def write_eof(self) -> None:
        if self._writer.can_write_eof() and not self._writer.is_closing():
            self._writer.write_eof()

    def close(self) -> None:
        self._writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


def shutdown_write(stream: ByteStream) -> None:
    """Half-close our sending side: TLS close_notify (RFC 8446 §6.1), then TCP FIN; reading
    goes on (draft §6.6: the connection stays open until both endpoints are done)."""
    with contextlib.suppress(OSError, RuntimeError, TLSStreamError):
        if isinstance(stream, TLSStream):
            stream.close(close_lower=False)
            lower = stream.lower
            if isinstance(lower, TCPStream) and not lower.transport.is_closing():
                lower.transport.write_eof()
        elif isinstance(stream, AsyncioStream):
            stream.write_eof()
        elif isinstance(stream, TCPStream) and not stream.transport.is_closing():
            stream.transport.write_eof()


@dataclass(eq=False)
class Connection:
    """One TCP/TLS connection (see the module docstring).

    ``ident`` is the number our Via branches carry (responses come back over it, §18.2.2);
    ``peer_proxy`` is true for connections to or from a configured peer proxy, ``domain`` the
    domain a connection we opened leads to.
    """

    flow: str
    transport: str
    peer: tuple[str, int] | None
    stream: ByteStream
    ident: int = 0
    task: asyncio.Task[None] | None = None
    peer_proxy: bool = False
    domain: str | None = None
    reserved_by: str | None = None  # the branch of the CONNECT pending on it
    tunnel: Tunnel | None = None
    framer: StreamFramer = field(
        default_factory=lambda: StreamFramer(
            max_header_bytes=MAX_HEADER_BYTES, max_body_bytes=MAX_BODY_BYTES
        )
    )
    held: bytearray = field(default_factory=bytearray)  # bytes the framer holds
    closed: bool = False

    @property
    def peer_name(self) -> str:
        return f"{self.peer[0]}:{self.peer[1]}" if self.peer else "?"

    @property
    def usable(self) -> bool:
        """Whether SIP may be sent on it now (not closed, reserved, nor a tunnel)."""
        return not self.closed and self.reserved_by is None and self.tunnel is None

    def send(self, data: bytes, *, branch: str | None = None) -> bool:
        """Write one SIP message. Refused (False) on a tunnel, and on a reserved connection
        unless ``branch`` is the reserving CONNECT's (its own responses)."""
        if self.tunnel is not None or (self.reserved_by is not None and self.reserved_by != branch):
            log.info("not sending on %s: reserved for a CONNECT or a tunnel", self.flow)
            return False
        try:
            self.stream.write(data)
        except (OSError, RuntimeError, TLSStreamError) as exc:
            log.info("send on %s failed: %s", self.flow, exc)
            return False
        return True
