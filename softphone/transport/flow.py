"""A flow: one connection that carries SIP, with RFC 5626 keep-alives (TLS, TCP or UDP).

RFC 5626 §3.1 calls the bidirectional connection between a UA and its edge proxy a *flow*: the
UA registers over it, the registrar sends incoming requests back over it, and the UA keeps it
alive and notices when it dies. This module is the I/O half of that; the SIP half (REGISTER,
transactions) is in ``softphone.ua``.

Contract::

    flow = await open_flow(target, secure=True, check_peer=gate_check)   # TCP + TLS + trust
    flow.start(on_message)            # every whole SIP message read is passed to on_message
    flow.send(request)                # the whole message in ONE write (one TLS record ≤ 16 KiB)
    flow.start_keepalive(interval)    # CRLFCRLF every ~interval s; a CRLF pong due in 10 s
    reason = await flow.closed        # resolves (never raises) when the flow is gone
    flow.close("why")
    flow.stop_keepalive()             # before a CONNECT: no ping may land inside a tunnel
    stream, rest = await flow.detach()  # sipsec: the connection becomes the tunnel (below)

Rules kept here:

- ``sips:`` only ever over TLS (RFC 3261 §26.2.2): a ``secure`` open refuses a TCP or UDP
  target, whatever DNS or a ``;transport=tcp`` parameter said. No downgrade, ever.
- RFC 3261 §26.3.2.1: the REGISTER is sent only after the registrar's certificate is accepted.
  :func:`open_flow` therefore hands the presented chain to ``check_peer`` between the TLS
  handshake and the first SIP byte, and returns no flow (nothing can be sent) unless it says
  yes. A certificate that must close the connection at once (expired, draft-gurbani-sip-tls-
  use A.2.1) is closed before the person is asked; accepting it opens a new connection, which
  must present the very same certificate.
- RFC 3261 §18.3 on TLS/TCP: a message that is framed correctly but is not valid SIP is
  answered 400 when it is a request whose Via survives, else dropped and counted
  (:attr:`Flow.messages_dropped`); the flow goes on. Broken framing (no usable
  Content-Length, over a limit) closes the flow.
- RFC 5626 §4.4.1: keep-alive for connection-oriented transports is the CRLF CRLF "ping"
  answered by a CRLF "pong"; no pong within 10 s means the flow failed.

UDP (:class:`UDPFlow`, ``sip:`` only): a socket connected to the target, one message per
datagram (:mod:`softphone.transport.udp`), ``transport == "UDP"`` so the UA runs its
transactions unreliable (Timer A/E/G retransmissions). It refuses to send a request over 1300
bytes (RFC 3261 §18.1.1: :class:`MessageTooLargeError`, the flow stays open); a datagram that
does not parse is answered 400 when it is a request whose Via survives, else dropped and
counted (:attr:`UDPFlow.datagrams_dropped`); an ICMP error (port unreachable, RFC 3261 §18.4)
closes the flow. Keep-alives are RFC 5626 §4.4.2 STUN Binding requests (RFC 5389,
retransmitted 0.5, 1, 2, 4 s... within :data:`PONG_TIMEOUT`); the XOR-MAPPED-ADDRESS of the
answer is :attr:`UDPFlow.mapped_address` and its change is a flow failure (§4.4.2). A registrar
that never answers STUN (``expect_pong=None`` and the first request unanswered) is not judged:
:attr:`UDPFlow.stun_supported` becomes False, the pings stop, and the UA keeps the binding (and
NAT mapping) alive by refreshing the registration only.

draft-gurbani-sip-sipsec-01 §6.6: the connection that carried a CONNECT and its 2xx becomes the
tunnel. :meth:`Flow.pause_reading` stops the read loop (and keep-alives) and waits until it has
stopped, so the peer's ClientHello that follows a 200 we send is never read as SIP;
:meth:`Flow.detach` then hands over the stream and the bytes already read but not framed. The
flow counts as closed from then on, and :meth:`Flow.close` leaves the stream to its new owner.
A flow over a nested TLS (the tunnel itself) finds its local address through ``.lower``.
``Flow.on_trace`` (set by the UA) sees every SIP message sent or received (the SIP trace).

Exceptions::

    FlowError               could not open the flow (connect, TLS handshake, transport refused)
     └─ TrustRefusedError   the peer's certificate was not accepted; nothing was sent
    FlowClosedError         send() on a flow that is gone
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from softphone.security.certificates import fingerprint_sha256
from softphone.sip.errors import ParseError
from softphone.sip.framing import FramingError, StreamFramer
from softphone.sip.message import Message
from softphone.sip.parser import parse_message
from softphone.transport.locate import Target
from softphone.transport.stream import (
    TCPStream,
    TLSStream,
    TLSStreamError,
    open_tcp_connection,
    open_tls_connection,
)
from softphone.transport.tls import TLSConfig
from softphone.transport.udp import (
    BINDING_SUCCESS,
    MAX_DATAGRAM,
    MAX_UDP_REQUEST,
    DatagramEndpoint,
    MessageTooLargeError,
    StunError,
    check_request_size,
    error_response_for_raw,
    is_keepalive,
    is_stun,
    mapped_address,
    open_datagram_endpoint,
    parse_stun,
    stun_binding_request,
)

__all__ = [
    "DEFAULT_KEEPALIVE_INTERVAL",
    "PING",
    "PONG",
    "PONG_TIMEOUT",
    "Flow",
    "FlowClosedError",
    "FlowError",
    "FlowTransport",
    "PeerCheck",
    "PeerVerdict",
    "TrustRefusedError",
    "UDPFlow",
    "UDPTooLargeError",
    "keepalive_delay",
    "open_flow",
]

log = logging.getLogger(__name__)

#: RFC 5626 §3.5.1 / §4.4.1 keep-alive bytes.
PING = b"\r\n\r\n"
PONG = b"\r\n"
#: RFC 5626 §4.4.1: "If a pong is not received within 10 seconds, the flow has failed."
PONG_TIMEOUT = 10.0
#: RFC 5626 §4.4.1: without a Flow-Timer, a connection-oriented UA pings about every 120 s
#: (it picks a random time between 80 % and 100 % of the interval, so phones do not align).
DEFAULT_KEEPALIVE_INTERVAL = 120.0

FlowTransport = Literal["TLS", "TCP", "UDP"]
#: RFC 5389 §7.2.1: the first STUN retransmission after 500 ms, doubling each time.
STUN_RTO = 0.5


class FlowError(Exception):
    """The flow could not be opened; ``reason`` says why in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrustRefusedError(FlowError):
    """The peer's certificate was refused (by policy or by the person); nothing was sent."""


class FlowClosedError(FlowError):
    """The flow is closed; ``reason`` is why it closed."""


@dataclass(frozen=True)
class PeerVerdict:
    """The answer of a :data:`PeerCheck`.

    ``accepted``: the connection may carry SIP. ``reason``: why not (for the person).
    ``reconnect_requiring``: the check closed the connection before asking (expired
    certificate) and the person then accepted; a new connection must present exactly this
    SHA-256 fingerprint.
    """

    accepted: bool
    reason: str = ""
    reconnect_requiring: bytes | None = None


#: ``check(chain, server_name, close_now) -> verdict``: decides about the peer's certificate
#: chain (leaf first) for ``server_name``; ``close_now()`` closes the connection at once.
PeerCheck = Callable[[Sequence[x509.Certificate], str, Callable[[], None]], Awaitable[PeerVerdict]]
MessageHandler = Callable[[Message], None]


def keepalive_delay(interval: float, rng: random.Random | None = None) -> float:
    """RFC 5626 §4.4.1: a random time between 80 % and 100 % of ``interval``."""
    r = rng or random.Random()  # noqa: S311  # spreading pings, not cryptography
    return interval * r.uniform(0.8, 1.0)


class Flow:
    """One open connection carrying SIP (see the module docstring for the contract)."""

    target: Target
    transport: FlowTransport
    peer_chain: tuple[x509.Certificate, ...]
    peer_fingerprint: bytes | None
    tls_version: str | None
    closed: asyncio.Future[str]

    def __init__(
        self,
        stream: TLSStream | TCPStream,
        target: Target,
        *,
        transport: FlowTransport,
        connect_round_trips: int,
        pong_timeout: float = PONG_TIMEOUT,
    ) -> None:
        self._stream = stream
        self._init_state(target, transport, connect_round_trips, pong_timeout)
        if isinstance(stream, TLSStream):
            self.peer_chain = tuple(stream.peer_chain())
            if self.peer_chain:
                self.peer_fingerprint = fingerprint_sha256(self.peer_chain[0])
            result = stream.handshake_result
            self.tls_version = result.version if result else None
        self._framer = StreamFramer()
        #: Messages framed correctly but not valid SIP that could not be answered (a response,
        #: a request without a usable Via): dropped, the flow goes on.
        self.messages_dropped = 0

    def _init_state(
        self,
        target: Target,
        transport: FlowTransport,
        connect_round_trips: int,
        pong_timeout: float,
    ) -> None:
        """What every flow has, whatever carries it."""
        self.target = target
        self.transport = transport
        #: Round trips spent before the first SIP byte could go: TCP (1) + TLS handshake
        #: flights; 0 for UDP.
        self.connect_round_trips = connect_round_trips
        self.pong_timeout = pong_timeout
        self.peer_chain = ()
        self.peer_fingerprint = None
        self.tls_version = None
        self.closed = asyncio.get_running_loop().create_future()
        self._pong = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._read_task: asyncio.Task[None] | None = None
        self._keepalive_tasks: list[asyncio.Task[None]] = []
        #: True once :meth:`detach` handed the connection to a sipsec tunnel.
        self.detached = False
        #: Called with ("sent"|"received", message) for every SIP message (the SIP trace).
        self.on_trace: Callable[[str, Message], None] | None = None
        self.messages_sent = 0
        self.messages_received = 0
        self.pings_sent = 0
        self.pongs_received = 0

    # -- information --------------------------------------------------------------------------

    @property
    def remote(self) -> str:
        """``host:port`` of the peer (IPv6 in brackets), as events show it."""
        host = self.target.host_ip
        return f"[{host}]:{self.target.port}" if ":" in host else f"{host}:{self.target.port}"

    @property
    def local_address(self) -> tuple[str, int]:
        """Our end of the connection (for Via sent-by and the Contact, RFC 3261 §18.1.1)."""
        # A nested TLS (sipsec tunnel) sits on another TLS: walk down to the TCP stream.
        tcp: object = self._stream
        while not isinstance(tcp, TCPStream) and hasattr(tcp, "lower"):
            tcp = tcp.lower
        if not isinstance(tcp, TCPStream):
            return ("0.0.0.0", 0)  # noqa: S104  # only for a transport without a socket
        sockname = tcp.get_extra_info("sockname")
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            return str(sockname[0]), int(sockname[1])
        return ("0.0.0.0", 0)  # noqa: S104  # only for a transport without a socket

    @property
    def is_closed(self) -> bool:
        return self.closed.done()

    # -- running ------------------------------------------------------------------------------

    def start(self, on_message: MessageHandler) -> None:
        """Start reading; each whole message goes to ``on_message`` (called in the loop)."""
        self._read_task = self._spawn(self._read_loop(on_message))

    def start_keepalive(self, interval: float, *, expect_pong: bool | None = True) -> None:
        """Ping every 80-100 % of ``interval`` seconds (RFC 5626 §4.4.1).

        ``expect_pong``: True when the registrar said it supports outbound (a pong missing for
        :attr:`pong_timeout` seconds closes the flow); None to find out: once a pong came,
        pongs are required from then on, while a peer that never answered the first ping is
        only pinged (keeping NAT bindings open) and is not judged by it.
        """
        if interval <= 0:
            raise ValueError("the keep-alive interval must be positive")
        self._keepalive_tasks.append(self._spawn(self._keepalive_loop(interval, expect_pong)))

    def stop_keepalive(self) -> None:
        """Stop pinging (draft-gurbani-sip-sipsec-01 §6.6: once a CONNECT may turn this
        connection into a tunnel, a CRLF ping would land inside the end-to-end TLS)."""
        tasks, self._keepalive_tasks = self._keepalive_tasks, []
        for task in tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def pause_reading(self) -> None:
        """Stop the read loop and keep-alives without closing (sends still work), and wait
        until the read loop has really stopped: no byte read after this returns is taken
        for SIP. The first half of :meth:`detach`."""
        self.stop_keepalive()
        task, self._read_task = self._read_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def detach(
        self, reason: str = "handed over to an end-to-end (sipsec) tunnel"
    ) -> tuple[TLSStream | TCPStream, bytes]:
        """Hand the connection over (draft-gurbani-sip-sipsec-01 §6.6: the connection that
        carried the CONNECT and its 2xx becomes the tunnel): stop reading and pinging, and
        return the underlying stream and the bytes already read but not framed as SIP.

        The flow then counts as closed (``closed`` resolves with ``reason``) but
        :meth:`close` no longer touches the stream: its new owner closes it."""
        await self.pause_reading()
        self.detached = True
        # Bytes held by the framer waiting for "the rest of a message" are the start of what
        # the tunnel carries (StreamFramer has no public way to hand its buffer back).
        leftover = bytes(self._framer._buffer)
        if not self.closed.done():
            self.closed.set_result(reason)
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        return self._stream, leftover

    def send(self, message: Message) -> None:
        """Write the whole message at once: one ``write`` (one TLS record up to 16 KiB, one
        TCP send with TCP_NODELAY), so no Nagle stall or split record costs a round trip."""
        if self.closed.done():
            raise FlowClosedError(self.closed.result())
        try:
            self._stream.write(bytes(message))
        except (OSError, RuntimeError, TLSStreamError) as exc:
            reason = f"the connection failed while sending ({_why(exc)})"
            self.close(reason)
            raise FlowClosedError(reason) from exc
        self.messages_sent += 1
        self._trace("sent", message)

    def _trace(self, direction: str, message: Message) -> None:
        if self.on_trace is not None:
            try:
                self.on_trace(direction, message)
            except Exception:  # a broken trace consumer must not break the flow
                log.exception("the SIP trace consumer failed")

    async def ping(self) -> bool:
        """Send one CRLF CRLF ping and wait up to :attr:`pong_timeout` s for the pong
        (RFC 5626 §4.4.1); False (and the flow closed) if none came."""
        if await self._ping_once():
            return True
        self.close(f"no keep-alive answer (pong) within {self.pong_timeout:g} s")
        return False

    async def _ping_once(self) -> bool:
        self._pong.clear()
        self._write_raw(PING)
        self.pings_sent += 1
        try:
            async with asyncio.timeout(self.pong_timeout):
                await self._pong.wait()
        except TimeoutError:
            return False
        return True

    def close(self, reason: str = "closed by us") -> None:
        """Close the connection (TLS close_notify first); ``closed`` resolves with ``reason``
        unless it has already resolved with an earlier one."""
        if not self.closed.done():
            self.closed.set_result(reason)
        if not self.detached:
            with contextlib.suppress(OSError, RuntimeError, TLSStreamError):
                self._stream.close()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()

    async def aclose(self, reason: str = "closed by us") -> None:
        """:meth:`close` and wait for the reading and keep-alive tasks to end."""
        self.close(reason)
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current]
        await asyncio.gather(*others, return_exceptions=True)

    # -- internals ----------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        return task

    def _write_raw(self, data: bytes) -> None:
        if self.closed.done():
            raise FlowClosedError(self.closed.result())
        try:
            self._stream.write(data)
        except (OSError, RuntimeError, TLSStreamError) as exc:
            self.close(f"the connection failed while sending ({exc})")
            raise FlowClosedError(self.closed.result()) from exc

    async def _read_loop(self, on_message: MessageHandler) -> None:
        try:
            while not self.closed.done():
                data = await self._stream.read()
                if not data:
                    self.close(f"the server at {self.remote} closed the connection")
                    return
                self._feed(data, on_message)
        except asyncio.CancelledError:
            raise
        except FlowClosedError:
            return
        except (OSError, TLSStreamError) as exc:
            self.close(f"the connection to {self.remote} failed ({_why(exc)})")
        except Exception as exc:  # a bug in a handler must not leave the flow half alive
            log.exception("error while handling data from %s", self.remote)
            self.close(f"internal error while reading ({type(exc).__name__})")

    def _feed(self, data: bytes, on_message: MessageHandler) -> None:
        pings, pongs = self._framer.pings, self._framer.pongs
        while True:
            try:
                messages = self._framer.feed(data)
            except FramingError as exc:
                for message in exc.messages:
                    self._deliver(message, on_message)
                if not exc.recoverable:
                    # RFC 3261 §18.3: the stream is out of sync; deliver what was whole, close.
                    self.close(f"malformed data from {self.remote} ({exc.reason})")
                    return
                # One framed message that is not valid SIP: answer it, keep the flow, and go on
                # with what is buffered behind it (which may raise again).
                self._answer_unparsed(exc.raw, exc)
                data = b""
                continue
            break
        if self._framer.pongs > pongs:
            self.pongs_received += self._framer.pongs - pongs
            self._pong.set()
        for _ in range(self._framer.pings - pings):
            self._write_raw(PONG)  # a peer's ping (RFC 5626 §3.5.1) is answered in kind
        for message in messages:
            self._deliver(message, on_message)

    def _answer_unparsed(self, raw: bytes, error: ParseError) -> None:
        """A request that did not parse gets its 4xx when its Via survives; anything else
        (a response, a request without a usable Via) is dropped and counted."""
        response = error_response_for_raw(raw, error)
        if response is None:
            self.messages_dropped += 1
            log.info("dropped an unparsable message from %s: %s", self.remote, error.reason)
            return
        log.info("answering an unparsable request from %s: %s", self.remote, error.reason)
        self._write_raw(bytes(response))

    def _deliver(self, message: Message, on_message: MessageHandler) -> None:
        self.messages_received += 1
        self._trace("received", message)
        on_message(message)

    async def _keepalive_loop(self, interval: float, expect_pong: bool | None) -> None:
        strict = expect_pong
        with contextlib.suppress(FlowClosedError):
            while not self.closed.done():
                await asyncio.sleep(keepalive_delay(interval))
                if self.closed.done():
                    return
                if strict is False:
                    self._write_raw(PING)
                    self.pings_sent += 1
                    continue
                answered = await self._ping_once()
                if answered:
                    strict = True  # the peer pongs: from now on a missing pong is a failure
                elif strict:
                    self.close(f"no keep-alive answer (pong) within {self.pong_timeout:g} s")
                    return
                else:
                    strict = False  # a peer that never pongs: keep its NAT binding open only


class UDPFlow(Flow):
    """A flow over UDP (``sip:`` only): a socket connected to the target, one message per
    datagram, STUN keep-alives (see the module docstring)."""

    def __init__(
        self,
        endpoint: DatagramEndpoint,
        target: Target,
        *,
        pong_timeout: float = PONG_TIMEOUT,
        max_request_size: int = MAX_UDP_REQUEST,
    ) -> None:
        # Not Flow.__init__: there is no byte stream and nothing to frame.
        self._init_state(target, "UDP", 0, pong_timeout)
        self._endpoint = endpoint
        self.max_request_size = max_request_size
        self._on_message: MessageHandler | None = None
        self._early: list[bytes] = []  # datagrams that came before start()
        self._stun_tid: bytes | None = None
        #: Our address as the registrar sees it (STUN XOR-MAPPED-ADDRESS), once answered.
        self.mapped_address: tuple[str, int] | None = None
        #: None: not known yet; True: the peer answers STUN; False: it never did (the UA then
        #: keeps the flow alive by refreshing the registration only).
        self.stun_supported: bool | None = None
        #: Datagrams that were neither SIP, STUN for us, nor a keep-alive (RFC 3261 §18.3).
        self.datagrams_dropped = 0
        self.keepalives_received = 0
        endpoint.on_datagram = self._datagram
        endpoint.on_error = self._icmp_error
        endpoint.closed.add_done_callback(lambda _: self.close("the UDP socket was closed"))

    @property
    def local_address(self) -> tuple[str, int]:
        return self._endpoint.local_address

    # -- running ------------------------------------------------------------------------------

    def start(self, on_message: MessageHandler) -> None:
        self._on_message = on_message
        early, self._early = self._early, []
        for data in early:
            self._handle_sip(data)

    def send(self, message: Message) -> None:
        """One message in one datagram. A request over :attr:`max_request_size` bytes raises
        :class:`MessageTooLargeError` (RFC 3261 §18.1.1) and nothing is sent."""
        if self.closed.done():
            raise FlowClosedError(self.closed.result())
        data = bytes(message)
        try:
            check_request_size(message, data, self.max_request_size)
        except MessageTooLargeError as exc:
            raise UDPTooLargeError(exc) from exc
        self._write_raw(data)
        self.messages_sent += 1
        self._trace("sent", message)

    def close(self, reason: str = "closed by us") -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        self._endpoint.close()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()

    # -- keep-alive: STUN (RFC 5626 §4.4.2, RFC 5389) -----------------------------------------

    async def _ping_once(self) -> bool:
        """One STUN Binding transaction: retransmitted after 0.5, 1, 2, 4 s... (RFC 5389
        §7.2.1) until :attr:`pong_timeout`; True when answered. A changed mapped address
        closes the flow (RFC 5626 §4.4.2: the NAT binding is not the one registered)."""
        request, tid = stun_binding_request()
        self._stun_tid = tid
        self._pong.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pong_timeout
        rto = STUN_RTO
        try:
            while True:
                self._write_raw(request)
                self.pings_sent += 1
                wait = min(rto, deadline - loop.time())
                if wait <= 0:
                    return False
                try:
                    async with asyncio.timeout(wait):
                        await self._pong.wait()
                    return True
                except TimeoutError:
                    rto *= 2
        finally:
            self._stun_tid = None

    async def _keepalive_loop(self, interval: float, expect_pong: bool | None) -> None:
        strict = expect_pong
        with contextlib.suppress(FlowClosedError):
            while not self.closed.done():
                await asyncio.sleep(keepalive_delay(interval))
                if self.closed.done():
                    return
                if await self._ping_once():
                    self.stun_supported = True
                    strict = True
                elif strict:
                    self.close(f"no STUN keep-alive answer within {self.pong_timeout:g} s")
                    return
                else:
                    self.stun_supported = False
                    log.info(
                        "%s does not answer STUN: keeping the flow alive by re-registering",
                        self.remote,
                    )
                    return

    # -- receiving ----------------------------------------------------------------------------

    def _datagram(self, data: bytes, source: tuple[str, int]) -> None:
        if self.closed.done():
            return
        if is_stun(data):
            self._handle_stun(data)
        elif is_keepalive(data):
            self.keepalives_received += 1
        elif self._on_message is None:
            if len(self._early) < 16:
                self._early.append(data)
        else:
            self._handle_sip(data)

    def _handle_stun(self, data: bytes) -> None:
        try:
            message = parse_stun(data)
        except StunError:
            self.datagrams_dropped += 1
            return
        if message.type != BINDING_SUCCESS or message.transaction_id != self._stun_tid:
            self.datagrams_dropped += 1  # a stray or late answer, or a request to us
            return
        address = mapped_address(message)
        self.pongs_received += 1
        if address is not None:
            if self.mapped_address is not None and address != self.mapped_address:
                old, self.mapped_address = self.mapped_address, address
                self.close(
                    f"our address as seen by {self.remote} changed from {_hostport(old)} to "
                    f"{_hostport(address)} (a NAT rebinding: the flow registered is gone)"
                )
                return
            self.mapped_address = address
        self._pong.set()

    def _handle_sip(self, data: bytes) -> None:
        assert self._on_message is not None
        try:
            message = parse_message(data, max_size=MAX_DATAGRAM)
        except ParseError as exc:
            response = error_response_for_raw(data, exc)
            if response is None:
                self.datagrams_dropped += 1
                log.info("dropped an unparsable datagram from %s: %s", self.remote, exc.reason)
                return
            log.info("answering an unparsable request from %s: %s", self.remote, exc.reason)
            with contextlib.suppress(FlowClosedError):
                self._write_raw(bytes(response))
            return
        try:
            self._deliver(message, self._on_message)
        except Exception:  # a bug in a handler must not kill the socket
            log.exception("error while handling a datagram from %s", self.remote)

    def _icmp_error(self, exc: Exception) -> None:
        # RFC 3261 §18.4: an ICMP error is a transport error; the flow is gone.
        self.close(f"the server at {self.remote} is not reachable over UDP ({_why(exc)})")

    def _write_raw(self, data: bytes) -> None:
        if self.closed.done():
            raise FlowClosedError(self.closed.result())
        try:
            self._endpoint.sendto(data)
        except (OSError, RuntimeError) as exc:
            self.close(f"sending to {self.remote} failed ({_why(exc)})")
            raise FlowClosedError(self.closed.result()) from exc


class UDPTooLargeError(FlowError):
    """:meth:`UDPFlow.send` refused a request too large for UDP (RFC 3261 §18.1.1); the flow
    stays open. ``size`` and ``limit`` in bytes."""

    def __init__(self, error: MessageTooLargeError) -> None:
        super().__init__(str(error))
        self.size = error.size
        self.limit = error.limit


def _hostport(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- opening -----------------------------------------------------------------------------------


def _check_transport(target: Target, secure: bool) -> FlowTransport:
    if secure and target.transport != "TLS":
        # RFC 3261 §26.2.2: a sips: URI means TLS on every hop; never fall back to TCP or UDP.
        raise FlowError(
            f"a sips: address needs TLS on every hop; refusing to send it over "
            f"{target.transport} (RFC 3261 §26.2.2)"
        )
    if target.transport == "UDP":
        return "UDP"
    return "TLS" if target.transport == "TLS" else "TCP"


async def open_flow(
    target: Target,
    *,
    secure: bool,
    check_peer: PeerCheck | None = None,
    tls_config: TLSConfig | None = None,
    connect_timeout: float = 10.0,
    pong_timeout: float = PONG_TIMEOUT,
) -> Flow:
    """Connect to ``target`` and return a flow ready for SIP (not yet reading: call start).

    A UDP target gives a :class:`UDPFlow` (refused when ``secure``: no SIPS over UDP).

    For TLS, ``check_peer`` is required and decides about the certificate before anything
    is sent (RFC 3261 §26.3.2.1); ``tls_config`` defaults to a client config whose SNI and
    name to check are ``target.server_name`` (RFC 5922 §4). Raises :class:`FlowError` (a
    :class:`TrustRefusedError` when the certificate was not accepted).
    """
    transport = _check_transport(target, secure)
    if transport == "UDP":
        try:
            endpoint = await open_datagram_endpoint(
                _unset_handler, remote_addr=(target.host_ip, target.port)
            )
        except OSError as exc:
            raise FlowError(
                f"cannot open UDP to {target.host_ip}:{target.port} ({_why(exc)})"
            ) from exc
        return UDPFlow(endpoint, target, pong_timeout=pong_timeout)
    if transport == "TCP":
        try:
            tcp = await open_tcp_connection(target.host_ip, target.port, timeout=connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise FlowError(
                f"cannot connect to {target.host_ip}:{target.port} ({_why(exc)})"
            ) from exc
        return Flow(tcp, target, transport="TCP", connect_round_trips=1, pong_timeout=pong_timeout)
    if check_peer is None:
        raise FlowError("a TLS flow needs a certificate check: nothing is accepted silently")
    config = dataclasses.replace(tls_config or TLSConfig.client(), server_name=target.server_name)
    stream = await _tls_connect(target, config, connect_timeout)
    verdict = await check_peer(stream.peer_chain(), target.server_name, stream.close)
    if not verdict.accepted:
        stream.close()
        raise TrustRefusedError(verdict.reason or "the server's certificate was not accepted")
    if verdict.reconnect_requiring is not None:
        stream.close()
        stream = await _tls_connect(target, config, connect_timeout)
        chain = stream.peer_chain()
        if not chain or fingerprint_sha256(chain[0]) != verdict.reconnect_requiring:
            stream.close()
            raise TrustRefusedError(
                "the server presented a different certificate on the new connection than the "
                "one you accepted"
            )
    return Flow(
        stream,
        target,
        transport="TLS",
        connect_round_trips=1 + stream.handshake_waits,
        pong_timeout=pong_timeout,
    )


async def _tls_connect(target: Target, config: TLSConfig, timeout: float) -> TLSStream:
    try:
        return await open_tls_connection(target.host_ip, target.port, config, timeout=timeout)
    except TLSStreamError as exc:
        raise FlowError(f"TLS with {target.host_ip}:{target.port} failed ({exc.reason})") from exc
    except (OSError, TimeoutError) as exc:
        raise FlowError(f"cannot connect to {target.host_ip}:{target.port} ({_why(exc)})") from exc


def _unset_handler(data: bytes, source: tuple[str, int]) -> None:
    """Replaced by :class:`UDPFlow` before the loop can deliver anything."""


def _why(exc: BaseException) -> str:
    # TimeoutError and some OSErrors have no message of their own.
    if isinstance(exc, TimeoutError) and not str(exc):
        return "timed out"
    return str(exc) or type(exc).__name__
