"""A thin asyncio adapter around the sans-I/O :class:`~softphone.transport.tls.TLSConnection`.

Layering (trio's ``SSLStream`` shape): a :class:`ByteStream` is anything with
``write``/``drain``/``read``/``close``. :class:`TCPStream` is one over an asyncio TCP transport;
:class:`TLSStream` is one over *any* ByteStream, so a nested TLS (sipsec, draft-gurbani-sip-
sipsec-01 §6.4-6.5: after the CONNECT 200 the same byte stream carries an end-to-end handshake) is
``outer.upgrade(config)`` and reuses the same state machine.

Contract:

- ``write(data)`` is synchronous and queues one lower-layer write per call: with TLS, one call
  with one SIP message (≤ 16 KiB) is one TLS record and one TCP ``send``. Call ``drain()`` for
  flow control.
- ``read()`` returns whatever plaintext is available (waiting for some), ``b""`` at EOF. A
  TLS failure raises :class:`TLSStreamError`.
- ``TLSStream.handshake()`` drives the handshake once and returns the
  :class:`~softphone.transport.tls.HandshakeComplete`; ``read()`` calls it implicitly. Data
  written before it completes goes out right after the client's Finished, in the same flight.
- Nothing here decides trust: ``peer_chain()`` and ``verify_errors`` are for the evaluator.

Exceptions::

    OSError / TimeoutError        connect failures, resets, timeouts: as asyncio raises them
    TLSStreamError                the TLS layer failed (reason from the TLSError event)
     └─ TLSHandshakeError         ... before the handshake completed
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

from cryptography import x509
from OpenSSL import SSL

from softphone.transport.tls import (
    CloseNotify,
    DataReceived,
    Event,
    HandshakeComplete,
    TLSConfig,
    TLSConnection,
    TLSError,
    TLSRole,
    TLSState,
    TLSStateError,
    VerifyRecord,
)

__all__ = [
    "ByteStream",
    "TCPStream",
    "TLSHandshakeError",
    "TLSServer",
    "TLSStream",
    "TLSStreamError",
    "open_tcp_connection",
    "open_tls_connection",
    "start_tls_server",
]

log = logging.getLogger(__name__)

# Reading pauses above this much unread data so a slow consumer pushes back on the peer.
_READ_HIGH_WATER = 256 * 1024


class TLSStreamError(Exception):
    """The TLS layer failed; ``reason`` is the readable cause."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TLSHandshakeError(TLSStreamError):
    """The TLS handshake failed (alert, garbage, version mismatch, EOF during handshake)."""


class ByteStream(Protocol):
    """A bidirectional byte stream (what TLS runs over, and what TLSStream itself is)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    async def read(self) -> bytes: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


class _TCPProtocol(asyncio.Protocol):
    """Buffers received bytes for :class:`TCPStream` and tracks write pressure."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.on_connected: Callable[[_TCPProtocol], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Nagle would hold back the second small write of a flight for a whole RTT.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.on_connected is not None:
            self.on_connected(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _READ_HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return True  # keep our write side open: a TLS close_notify reply may still go out

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.exc = exc
        self._writable.set()
        self._wake()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait_readable(self) -> None:
        if self.buffer or self.eof:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def wait_writable(self) -> None:
        await self._writable.wait()


class TCPStream:
    """A :class:`ByteStream` over an asyncio TCP transport (TCP_NODELAY set)."""

    def __init__(self, transport: asyncio.Transport, protocol: _TCPProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._reading = False

    @property
    def transport(self) -> asyncio.Transport:
        return self._transport

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._transport.get_extra_info(name, default)

    @property
    def tcp_nodelay(self) -> bool:
        """What the kernel says about TCP_NODELAY on this socket."""
        sock = self._transport.get_extra_info("socket")
        return bool(sock is not None and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def write(self, data: bytes) -> None:
        if self._transport.is_closing():
            raise ConnectionResetError("write on a closed TCP connection")
        if data:
            self._transport.write(data)

    async def drain(self) -> None:
        await self._protocol.wait_writable()
        if self._transport.is_closing() and self._protocol.exc is not None:
            raise ConnectionResetError(str(self._protocol.exc)) from self._protocol.exc

    async def read(self) -> bytes:
        if self._reading:
            raise RuntimeError("read() called while another read() is waiting")
        self._reading = True
        try:
            await self._protocol.wait_readable()
        finally:
            self._reading = False
        data = bytes(self._protocol.buffer)
        self._protocol.buffer.clear()
        if not self._transport.is_closing():
            self._transport.resume_reading()  # no-op unless the high-water mark paused it
        if not data and self._protocol.exc is not None:
            raise ConnectionResetError(str(self._protocol.exc)) from self._protocol.exc
        return data

    def close(self) -> None:
        self._transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._protocol.closed)

    def upgrade(
        self, config: TLSConfig, *, initial_data: bytes = b"", context: SSL.Context | None = None
    ) -> TLSStream:
        """TLS over this TCP stream (STARTTLS-style); see :meth:`TLSStream.upgrade`."""
        return TLSStream(self, config, initial_data=initial_data, context=context)


class TLSStream:
    """TLS over any :class:`ByteStream` (see the module docstring for the contract)."""

    def __init__(
        self,
        lower: ByteStream,
        config: TLSConfig,
        *,
        initial_data: bytes = b"",
        context: SSL.Context | None = None,
        handshake_in_thread: bool = False,
    ) -> None:
        """``initial_data``: ciphertext the layer above already read off ``lower`` (e.g. bytes
        that arrived behind a CONNECT 200 in the same read) and must not be lost.

        ``handshake_in_thread``: OpenSSL's handshake work on each flight from the peer runs in
        a worker thread (OpenSSL runs without the GIL) while the loop waits; nothing else may
        use the stream until :meth:`handshake` returns. For a handshake that signs with a big
        RSA key on the desktop phone's loop: a sipsec identity is RSA-3072, and one flight
        took 5-7 ms of CPU here (issue 7: the loop never stalls 20 ms)."""
        self.lower = lower
        self.handshake_in_thread = handshake_in_thread
        self.tls = TLSConnection(config, context=context)
        self._initial = initial_data
        self._plaintext = bytearray()
        self._eof = False
        self._clean_close = True
        self._error: TLSStreamError | None = None
        self._result: HandshakeComplete | None = None
        self._lock = asyncio.Lock()  # one pump (lower.read + feed) at a time
        #: Number of times the handshake had to wait for bytes from the peer (TLS 1.3 client: 1).
        self.handshake_waits = 0

    # -- information -------------------------------------------------------------------------

    @property
    def handshake_result(self) -> HandshakeComplete | None:
        return self._result

    def peer_chain(self) -> list[x509.Certificate]:
        return self.tls.peer_chain()

    @property
    def verify_errors(self) -> tuple[VerifyRecord, ...]:
        return self.tls.verify_errors

    @property
    def clean_close(self) -> bool:
        """False once the peer ended the stream without a close_notify (truncation risk)."""
        return self._clean_close

    # -- handshake ---------------------------------------------------------------------------

    async def handshake(self, *, timeout: float | None = None) -> HandshakeComplete:
        """Run the handshake (once); raises :class:`TLSHandshakeError` or ``TimeoutError``."""
        if self._result is not None:
            return self._result
        async with asyncio.timeout(timeout), self._lock:
            self._raise_if_failed()
            if self.tls.config.role is TLSRole.CLIENT and self.tls.state is TLSState.IDLE:
                self.tls.start_handshake()
                self._flush()
            if self._initial:
                data, self._initial = self._initial, b""
                await self._feed_handshake(data)
            # _completed() rather than self._result: the awaits below change it behind mypy's
            # narrowing.
            while (result := self._completed()) is None:
                self._raise_if_failed()
                if self._eof:
                    raise TLSHandshakeError("the peer closed during the TLS handshake")
                self.handshake_waits += 1
                await self._feed_handshake(await self.lower.read())
            return result

    # -- data --------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data`` (one record if ≤ 16 KiB); before the handshake completes it waits in
        the TLS layer and leaves with the client's Finished."""
        self._raise_if_failed()
        try:
            self.tls.send(data)
        except TLSStateError as exc:
            raise TLSStreamError(f"write on a closed TLS stream ({exc})") from exc
        self._flush()

    async def drain(self) -> None:
        await self.lower.drain()

    async def read(self) -> bytes:
        """Plaintext as it arrives; ``b""`` at EOF (clean or not, see :attr:`clean_close`)."""
        if not self._plaintext and not self._eof:
            await self.handshake()
            async with self._lock:
                while not self._plaintext and not self._eof:
                    self._raise_if_failed()
                    self._feed(await self.lower.read())
        if self._plaintext:
            data = bytes(self._plaintext)
            self._plaintext.clear()
            return data
        self._raise_if_failed()
        return b""

    def close(self, *, close_lower: bool = True) -> None:
        """Send close_notify and (by default) close the lower stream too."""
        self.tls.close()
        with contextlib.suppress(OSError, RuntimeError, TLSStreamError):
            self._flush()
        if close_lower:
            self.lower.close()

    async def wait_closed(self) -> None:
        await self.lower.wait_closed()

    def upgrade(
        self, config: TLSConfig, *, initial_data: bytes = b"", context: SSL.Context | None = None
    ) -> TLSStream:
        """A nested TLS whose ciphertext is this stream's plaintext (sipsec after CONNECT 200).

        The nested stream owns reading from here on: do not call ``read()`` on this stream
        again. ``initial_data`` is plaintext of this stream already read by the caller.
        """
        return TLSStream(self, config, initial_data=initial_data, context=context)

    # -- internals ---------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        events = self.tls.receive_data(data)
        self._flush()  # alerts, the client Finished, close_notify replies
        self._handle(events)

    async def _feed_handshake(self, data: bytes) -> None:
        if not self.handshake_in_thread:
            self._feed(data)
            return
        work = asyncio.ensure_future(asyncio.to_thread(self.tls.receive_data, data))
        try:
            events = await asyncio.shield(work)
        except asyncio.CancelledError:  # a timeout: OpenSSL is still in the connection, and
            with contextlib.suppress(Exception):  # nobody may close it before it is out
                await work
            raise
        self._flush()
        self._handle(events)

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, HandshakeComplete):
                self._result = event
            elif isinstance(event, DataReceived):
                self._plaintext += event.data
            elif isinstance(event, CloseNotify):
                self._eof = True
                self._clean_close = event.clean
            elif isinstance(event, TLSError):
                self._eof = True
                cls = TLSStreamError if self._result is not None else TLSHandshakeError
                self._error = cls(event.reason)

    def _flush(self) -> None:
        data = self.tls.data_to_send()
        if data:
            self.lower.write(data)

    def _completed(self) -> HandshakeComplete | None:
        return self._result

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error


async def open_tcp_connection(host: str, port: int, *, timeout: float | None = 10.0) -> TCPStream:
    """Connect a :class:`TCPStream` (TCP_NODELAY set)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        transport, protocol = await loop.create_connection(_TCPProtocol, host, port)
    assert isinstance(transport, asyncio.Transport)
    return TCPStream(transport, protocol)


async def open_tls_connection(
    host: str,
    port: int,
    config: TLSConfig,
    *,
    timeout: float | None = 10.0,
    handshake: bool = True,
) -> TLSStream:
    """TCP connect and (unless ``handshake=False``) complete the TLS handshake within
    ``timeout``. Certificate problems do not fail it: inspect ``verify_errors``."""
    if config.role is not TLSRole.CLIENT:
        raise ValueError("open_tls_connection needs a client TLSConfig")
    if config.server_name is None:
        # The name we dialled is the name to check (RFC 5922 §7); SNI skips address literals.
        config = dataclasses.replace(config, server_name=host)
    async with asyncio.timeout(timeout):
        tcp = await open_tcp_connection(host, port, timeout=None)
        stream = TLSStream(tcp, config)
        if handshake:
            try:
                await stream.handshake()
            except BaseException:
                tcp.close()
                raise
    return stream


class TLSServer:
    """Handle of :func:`start_tls_server`; closing it also cancels the connection tasks."""

    def __init__(self, server: asyncio.Server, tasks: set[asyncio.Task[None]]) -> None:
        self.server = server
        self._tasks = tasks

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        self.server.close()
        for task in list(self._tasks):
            task.cancel()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def __aenter__(self) -> TLSServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


async def start_tls_server(
    host: str,
    port: int,
    config: TLSConfig,
    on_connection: Callable[[TLSStream], Awaitable[None]],
    *,
    handshake_timeout: float | None = 10.0,
    on_error: Callable[[BaseException], None] | None = None,
) -> TLSServer:
    """Listen on ``host:port`` (0: any free port) and call ``on_connection(stream)`` after each
    TLS handshake. The stream is closed when ``on_connection`` returns. Handshake failures go to
    ``on_error`` (default: logged) and close the connection.
    """
    if config.role is not TLSRole.SERVER:
        raise ValueError("start_tls_server needs a server TLSConfig")
    loop = asyncio.get_running_loop()
    context = config.shared_context  # certificate loading happens once
    tasks: set[asyncio.Task[None]] = set()

    async def serve(protocol: _TCPProtocol) -> None:
        assert protocol.transport is not None
        stream = TLSStream(TCPStream(protocol.transport, protocol), config, context=context)
        try:
            await stream.handshake(timeout=handshake_timeout)
            await on_connection(stream)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  # one bad connection must not stop the server
            if on_error is not None:
                on_error(exc)
            else:
                log.warning("TLS connection from %s failed: %s", _peer_of(protocol), exc)
        finally:
            stream.close()

    def factory() -> _TCPProtocol:
        protocol = _TCPProtocol()

        def connected(p: _TCPProtocol) -> None:
            task = loop.create_task(serve(p))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        protocol.on_connected = connected
        return protocol

    server = await loop.create_server(factory, host, port)
    return TLSServer(server, tasks)


def _peer_of(protocol: _TCPProtocol) -> object:
    return protocol.transport.get_extra_info("peername") if protocol.transport else None
