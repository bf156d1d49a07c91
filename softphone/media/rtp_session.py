"""One audio stream on the wire: :class:`MediaSession` runs RTP/SRTP and RTCP for a call.

Built from a :class:`~softphone.sdp.policy.Negotiated` (codec, payload types, remote address,
rtcp-mux, direction, SRTP suite and keys) and a local port. Every 20 ms it reads a frame from
its :class:`~softphone.media.tone.FrameSource`, encodes, protects and sends it, and plays the
frame due from the jitter buffer into its :class:`~softphone.media.tone.AudioSink`.

Security rules of the receive path, in order:

1. A datagram from a source other than the one we are bound to is dropped unread
   (``unexpected-source``). Before any packet has been accepted that source is the address in
   the peer's SDP; with SRTP, a packet from elsewhere that *authenticates* moves us there
   (symmetric RTP latching, RFC 4961 / "comedia", so a peer behind NAT works) — without
   SRTP nothing authenticates, so we never move. After the latch, any other source is
   dropped before libsrtp sees it, so strangers cannot touch the replay window.
2. SRTP/SRTCP failures (tag, replay, truncation) are dropped and counted by reason.
3. Malformed RTP, payload types outside the session, late and duplicate frames: dropped and
   counted.

We always send from the port we receive on (symmetric RTP, RFC 4961). SSRC, first sequence
number and first timestamp are random (RFC 3550 §5.1, RFC 3711 §9.2: SRTP's security does not
depend on it, but predictable values help an attacker splice packets).

DTLS-SRTP (RFC 5763/5764, :mod:`softphone.media.dtls`): given a ``dtls`` endpoint, the
session runs the handshake on the RTP socket before any media. Datagrams are told apart by
their first byte (RFC 7983 §7): 0-3 STUN (we do no ICE: dropped, counted ``stun``), 20-63
DTLS (fed to the endpoint, only from the peer's address), 128-191 RTP/RTCP, anything else is
garbage (``malformed``). Until the handshake is done nothing is sent but DTLS, and SRTP that
arrives early is dropped (``before-keys``). When it completes, SRTP is keyed from the
exported material and :meth:`MediaSession.wait_secured` returns the keys' suite; when it
fails (fingerprint mismatch, no certificate, no handshake within the bound, an alert) no media
is ever sent, :meth:`~MediaSession.wait_secured` raises the :class:`~softphone.media.dtls.DtlsError`
and :class:`MediaSecurityFailed` is emitted: the call ends with its reason (fail closed).
DTLS records after the handshake (retransmissions, strangers' forgeries) are answered by
OpenSSL or dropped and counted (``dtls-after-handshake``); they never change the keys.

Mute and levels (the in-call window): with :attr:`MediaSession.muted` set, the source is still
read (a microphone's buffer keeps draining) but each frame is replaced by digital silence that
is encoded and sent as usual, so RTP timestamps and sequence numbers stay continuous and the
peer's media timeout never fires (RFC 3550 §5.1; we do not send comfort noise, RFC 3389, since
no ``CN`` payload is negotiated). :attr:`~MediaSession.sent_dbfs` and
:attr:`~MediaSession.received_dbfs` hold the RMS level of the last frame sent and played.

Events go to ``on_event``: :class:`MediaStatistics` every ``stats_interval``,
:class:`MediaTimeout` when no RTP arrived for ``media_timeout`` seconds while the peer should
be sending, :class:`MediaResumed`, :class:`SourceLatched`, :class:`DtmfReceived`,
:class:`MediaSecurityFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import operator
import secrets
import socket
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc.rtp import RtpPacket

from softphone.media.codecs import INTERNAL_FRAME_SAMPLES, CodecPipeline
from softphone.media.dtls import DtlsEndpoint, DtlsError, DtlsState, SrtpKeys, is_dtls
from softphone.media.dtmf import DtmfReceiver, DtmfSender
from softphone.media.jitter import Concealer, JitterBuffer, PlayoutKind
from softphone.media.rtcp import (
    Goodbye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    RtcpParseError,
    SenderReport,
    SourceDescription,
    is_rtcp,
    ntp_timestamp,
    parse_compound,
    round_trip_time,
    serialize_compound,
)
from softphone.media.srtp import DropReason, PacketProtection, PlainContext, SrtpContext
from softphone.media.thread import MediaThread
from softphone.media.tone import AudioSink, FrameSource, SilenceSource
from softphone.sdp.policy import Keying, Negotiated

__all__ = [
    "DtmfReceived",
    "MediaEvent",
    "MediaResumed",
    "MediaSecurityFailed",
    "MediaSession",
    "MediaStatistics",
    "MediaTimeout",
    "ReservedPorts",
    "SourceLatched",
    "level_dbfs",
    "protection_for",
    "reserve_ports",
]

_log = logging.getLogger(__name__)
_FRAME = 0.02
_SILENT_FRAME = bytes(2 * INTERNAL_FRAME_SAMPLES)
Address = tuple[str, int]


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaStatistics:
    """A snapshot of the stream, for the call window and the agent's JSON events."""

    codec: str
    payload_type: int
    encrypted: bool
    suite: str | None  # SRTP crypto-suite wire name, None without SRTP
    keying: str  # "sdes", "dtls-srtp" or "none" (UX.md: how the keys travelled)
    local_ssrc: int
    remote_ssrc: int | None
    remote_address: Address
    latched: bool
    packets_sent: int
    octets_sent: int
    packets_received: int
    octets_received: int
    packets_lost: int  # RFC 3550 A.3 cumulative, what we did not get from the peer
    jitter_ms: float  # RFC 3550 A.8, of the peer's stream as we receive it
    remote_fraction_lost: float | None  # the peer's view of our stream (last RR/SR block)
    remote_jitter_ms: float | None
    rtt_ms: float | None  # RFC 3550 §6.4.1 from LSR/DLSR
    concealed: int  # frames played as loss concealment
    jitter_delay_ms: float  # the jitter buffer's current target delay
    drops: dict[str, int] = field(default_factory=dict)  # by DropReason value


@dataclass(frozen=True)
class MediaTimeout:
    """No RTP for ``silent_for`` seconds while the peer should be sending."""

    silent_for: float


@dataclass(frozen=True)
class MediaResumed:
    """RTP arrived again after a :class:`MediaTimeout`."""


@dataclass(frozen=True)
class SourceLatched:
    """We now send to and accept from ``address`` (it authenticated with the call's keys)."""

    address: Address
    previous: Address


@dataclass(frozen=True)
class DtmfReceived:
    digit: str
    duration: float


@dataclass(frozen=True)
class MediaSecurityFailed:
    """The DTLS-SRTP handshake failed: no media flows; ``reason`` in words (fail closed)."""

    reason: str


MediaEvent = (
    MediaStatistics
    | MediaTimeout
    | MediaResumed
    | SourceLatched
    | DtmfReceived
    | MediaSecurityFailed
)


class _AwaitingKeys:
    """The protection of a DTLS-SRTP session before its handshake is done: nothing goes out
    and nothing comes in (the RTP loop does not send; early SRTP is dropped)."""

    suite = None

    def __init__(self) -> None:
        self._drops: Counter[DropReason] = Counter()

    @property
    def drops(self) -> Counter[DropReason]:
        return self._drops

    def protect(self, packet: bytes) -> bytes:
        raise RuntimeError("no SRTP keys yet: the DTLS handshake is not done")

    def protect_rtcp(self, packet: bytes) -> bytes:
        raise RuntimeError("no SRTP keys yet: the DTLS handshake is not done")

    def unprotect(self, packet: bytes) -> bytes | DropReason:
        return DropReason.SRTP_ERROR  # not reached: the session drops before this

    def unprotect_rtcp(self, packet: bytes) -> bytes | DropReason:
        return DropReason.SRTP_ERROR


# -- sockets -------------------------------------------------------------------------------


class ReservedPorts:
    """UDP sockets bound before the offer is written, so the SDP can carry their ports.

    Ownership: until a :class:`MediaSession` hands a socket to an asyncio transport, the
    reservation owns it and :meth:`close` closes it. From the moment of the hand-over
    (:meth:`adopt`) the transport owns it: :meth:`close` leaves it alone, so a late
    ``close()`` (a call released before its media stopped) can never close a descriptor a live
    transport still has registered with the selector (whose number the kernel would then give
    to the next socket: "File descriptor N is used by transport"). Idempotent.
    """

    def __init__(self, rtp: socket.socket, rtcp: socket.socket | None = None) -> None:
        self.rtp = rtp
        self.rtcp = rtcp
        self.rtp_port = int(rtp.getsockname()[1])
        self.rtcp_port = None if rtcp is None else int(rtcp.getsockname()[1])
        self._adopted: set[int] = set()  # id() of the sockets a transport owns

    def __repr__(self) -> str:
        return f"ReservedPorts(rtp_port={self.rtp_port}, rtcp_port={self.rtcp_port})"

    def adopt(self, sock: socket.socket) -> socket.socket:
        """Hand ``sock`` to a transport: from now on :meth:`close` does not touch it."""
        if sock.fileno() < 0:
            raise RuntimeError(f"{self!r}: the socket was closed before media started")
        self._adopted.add(id(sock))
        return sock

    @property
    def closed(self) -> bool:
        """Whether every socket is closed (by us or by the transport that adopted it)."""
        return all(s.fileno() < 0 for s in (self.rtp, self.rtcp) if s is not None)

    def close(self) -> None:
        for sock in (self.rtp, self.rtcp):
            if sock is not None and id(sock) not in self._adopted:
                sock.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def reserve_ports(host: str = "0.0.0.0", port: int = 0, *, rtcp: bool = False) -> ReservedPorts:  # noqa: S104
    """Bind the RTP socket (and, without rtcp-mux, RTCP on the next port: RTP even, RTCP odd,
    RFC 3550 §11). ``port=0`` picks a free pair."""
    if not rtcp:
        return ReservedPorts(_bind(host, port))
    for _ in range(50):
        rtp_sock = _bind(host, port)
        rtp_port = int(rtp_sock.getsockname()[1])
        if rtp_port % 2 and port == 0:
            rtp_sock.close()
            continue
        try:
            return ReservedPorts(rtp_sock, _bind(host, rtp_port + 1))
        except OSError:
            rtp_sock.close()
            if port:
                raise
    raise OSError("no free even/odd UDP port pair")


def protection_for(negotiated: Negotiated) -> PacketProtection:
    """The SRTP context of an SDES call, or no protection for plain RTP. DTLS-SRTP keys come
    from the handshake: build an :class:`SrtpContext` from them and pass it in instead."""
    if negotiated.keying is Keying.NONE:
        return PlainContext()
    if negotiated.keying is Keying.SDES:
        local, remote, suite = negotiated.local_crypto, negotiated.remote_crypto, negotiated.suite
        if local is None or remote is None or suite is None:
            raise ValueError("an SDES call needs a suite and both crypto attributes")
        return SrtpContext(suite, local.key.key_salt, remote.key.key_salt)
    raise ValueError("DTLS-SRTP keys come from the DTLS handshake: pass protection=")


def _same_source(a: Address, b: Address) -> bool:
    if a[1] != b[1]:
        return False
    try:
        ia, ib = ipaddress.ip_address(a[0]), ipaddress.ip_address(b[0])
    except ValueError:
        return a[0] == b[0]
    if isinstance(ia, ipaddress.IPv6Address) and ia.ipv4_mapped is not None:
        ia = ia.ipv4_mapped
    if isinstance(ib, ipaddress.IPv6Address) and ib.ipv4_mapped is not None:
        ib = ib.ipv4_mapped
    return ia == ib


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, deliver: Callable[[bytes, Address], None]) -> None:
        self._deliver = deliver
        self.errors = 0
        #: Set once the transport has closed its socket (``connection_lost``).
        self.lost = asyncio.Event()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._deliver(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable before the peer listens: expected early in a call.
        self.errors += 1


# -- the session ---------------------------------------------------------------------------


class MediaSession:
    """RTP/SRTP + RTCP for one negotiated audio stream. ``await start()``, ``await stop()``."""

    def __init__(
        self,
        negotiated: Negotiated,
        *,
        ports: ReservedPorts | None = None,
        local_host: str = "0.0.0.0",  # noqa: S104
        local_port: int = 0,
        source: FrameSource | None = None,
        sink: AudioSink | None = None,
        on_event: Callable[[MediaEvent], None] | None = None,
        protection: PacketProtection | None = None,
        dtls: DtlsEndpoint | None = None,
        media_timeout: float = 30.0,
        rtcp_interval: float = 5.0,
        stats_interval: float = 1.0,
        cname: str | None = None,
        thread: MediaThread | None = None,
    ) -> None:
        self._rng = secrets.SystemRandom()
        #: Where the sockets and the 20 ms loop run: ``None`` on the caller's loop, else on
        #: the media thread's loop, events handed back to the caller's (softphone.media.thread).
        self.thread = thread
        self._caller_loop: asyncio.AbstractEventLoop | None = None
        self._ports = ports
        self._local = (local_host, local_port)
        self.source: FrameSource = source if source is not None else SilenceSource()
        self.sink = sink
        self._on_event = on_event
        self.media_timeout = media_timeout
        self.rtcp_interval = rtcp_interval
        self.stats_interval = stats_interval
        self.cname = cname or f"{secrets.token_hex(8)}@softphone"
        self.ssrc = self._rng.getrandbits(32)
        self._seq = self._rng.getrandbits(16)
        self._ts = self._rng.getrandbits(32)
        self.packets_sent = 0
        self.octets_sent = 0
        self._rtp_transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        self._endpoints: list[_Endpoint] = []
        self._starting: asyncio.Event | None = None  # set when start() has returned
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self._drops: Counter[DropReason] = Counter()
        self._dtmf_queue: deque[tuple[str, float]] = deque()
        self._dtmf_gap = 0
        self._rtt: float | None = None
        self._remote_block: ReportBlock | None = None
        self._timed_out = False
        self._need_marker = True
        self._sent_since_report = False
        self._started_at = 0.0
        #: DTLS-SRTP: the handshake that keys SRTP; ``None`` for SDES or plain RTP.
        self.dtls = dtls
        self._secured: asyncio.Future[SrtpKeys] | None = None
        self._media_drops: Counter[str] = Counter()  # reasons outside DropReason
        #: Microphone mute: the source is still read (its buffer drains) but silence is sent.
        self.muted = False
        #: RMS (dBFS) of the last frame sent / played; -inf for digital silence or none yet.
        self.sent_dbfs = -math.inf
        self.received_dbfs = -math.inf
        if dtls is not None:
            if negotiated.keying is not Keying.DTLS_SRTP:
                raise ValueError("a DTLS endpoint for a call not keyed by DTLS-SRTP")
            protection = _AwaitingKeys()
        self._configure(negotiated, protection)

    # -- configuration -------------------------------------------------------------------

    def _configure(self, negotiated: Negotiated, protection: PacketProtection | None) -> None:
        self.negotiated = negotiated
        self.protection = protection if protection is not None else protection_for(negotiated)
        self.pipeline = CodecPipeline(negotiated.codec)
        self._step = self.pipeline.timestamp_step
        te = negotiated.telephone_event
        te_clock = te.clock_rate if te is not None else negotiated.codec.clock_rate
        self._dtmf_tx = DtmfSender(te_clock, round(te_clock * _FRAME))
        self._dtmf_rx = DtmfReceiver(te_clock)
        self._remote_rtp: Address = negotiated.remote_rtp
        self._remote_rtcp: Address = (
            negotiated.remote_rtp if negotiated.rtcp_mux else negotiated.remote_rtcp
        )
        self.latched = False
        self._reset_receiver(None)

    def _reset_receiver(self, ssrc: int | None) -> None:
        clock = self.negotiated.codec.clock_rate
        self.remote_ssrc = ssrc
        self._jitter = JitterBuffer(clock, self._step)
        self._concealer = Concealer(INTERNAL_FRAME_SAMPLES)
        self._reception = ReceptionStats(ssrc or 0, clock)
        self._packets_received = 0
        self._octets_received = 0
        self._last_rtp: float | None = None

    def update(self, negotiated: Negotiated, protection: PacketProtection | None = None) -> None:
        """A new offer/answer (re-INVITE: hold, resume, new address, new keys or codec)."""
        if self.thread is not None:
            self.thread.call(self._update, negotiated, protection)
        else:
            self._update(negotiated, protection)

    def _update(self, negotiated: Negotiated, protection: PacketProtection | None) -> None:
        old = self.negotiated
        self._restart_media_timeout()
        same_keys = (
            protection is None
            and negotiated.keying == old.keying
            and negotiated.suite == old.suite
            and negotiated.local_crypto == old.local_crypto
            and negotiated.remote_crypto == old.remote_crypto
        )
        if same_keys and negotiated.codec == old.codec and negotiated.remote_rtp == old.remote_rtp:
            self.negotiated = negotiated  # direction only: keep latch, stats and SRTP state
            if negotiated.direction.sends and not old.direction.sends:
                self._need_marker = True
            return
        # Same keys: keep the SRTP context. A fresh one would restart the rollover counter
        # and, after a sequence wrap, reuse keystream (RFC 3711 §9.2: never twice per key).
        self._configure(negotiated, self.protection if same_keys else protection)

    def _restart_media_timeout(self) -> None:
        """The peer's silence counts from the new offer/answer: after a long hold, or with new
        keys, the time of the last packet would otherwise end the call at once."""
        self._timed_out = False
        self._last_rtp = None
        with contextlib.suppress(RuntimeError):  # not started: no loop clock needed yet
            self._started_at = asyncio.get_running_loop().time()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def local_port(self) -> int:
        if self._ports is None:
            raise RuntimeError("not started")
        return self._ports.rtp_port

    @property
    def local_rtcp_port(self) -> int | None:
        if self._ports is None:
            raise RuntimeError("not started")
        return self._ports.rtcp_port

    async def start(self) -> None:
        """Hand the reserved sockets to asyncio transports and start the 20 ms loop (and, for
        DTLS-SRTP, the handshake). A :meth:`stop` that comes while this runs wins: nothing
        starts, and the sockets are closed through their transports. After :meth:`stop`,
        ``start()`` does nothing. With a :attr:`thread`, all of it runs on the media loop and
        events come back to the loop that called this."""
        if self.thread is not None:
            self._caller_loop = asyncio.get_running_loop()
            await self.thread.run(self._start())
        else:
            await self._start()

    async def _start(self) -> None:
        if self.stopped:
            return
        if self._starting is not None:
            raise RuntimeError("MediaSession.start() called twice")
        loop = asyncio.get_running_loop()
        self._starting = asyncio.Event()
        try:
            if self._ports is None:
                self._ports = reserve_ports(
                    self._local[0], self._local[1], rtcp=not self.negotiated.rtcp_mux
                )
            ports = self._ports
            self._rtp_transport = await self._open(ports, ports.rtp, self._on_rtp_socket)
            if ports.rtcp is not None and not self._stop_requested():
                self._rtcp_transport = await self._open(ports, ports.rtcp, self._on_rtcp_socket)
            self._started_at = loop.time()
            if self.dtls is not None:
                self._secured = loop.create_future()
            if self._stop_requested():  # stop() came during the awaits: it closes what we opened
                return
            if self.dtls is not None:
                self._send_dtls(self.dtls.start(self._started_at))
            self._task = asyncio.create_task(self._run(), name="media-session")
        finally:
            self._starting.set()

    async def _open(
        self,
        ports: ReservedPorts,
        sock: socket.socket,
        deliver: Callable[[bytes, Address], None],
    ) -> asyncio.DatagramTransport:
        """A transport over the reserved ``sock``; from here on the transport owns it (and
        closes it, also when this is cancelled or fails half-way)."""
        endpoint = _Endpoint(deliver)
        ports.adopt(sock)
        try:
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: endpoint, sock=sock
            )
        except BaseException:
            sock.close()  # no-op if the half-made transport closed it already
            raise
        self._endpoints.append(endpoint)
        return transport

    async def wait_secured(self) -> SrtpKeys | None:
        """DTLS-SRTP: wait for the handshake and return its keys (``DtlsError`` if it failed:
        the reason is in words for the person). ``None`` for SDES or plain RTP."""
        if self.thread is not None:
            return await self.thread.run(self._wait_secured())
        return await self._wait_secured()

    async def _wait_secured(self) -> SrtpKeys | None:
        if self.dtls is None:
            return None
        if self._secured is None:
            if self._stopped:  # stopped before its start() ran (the media thread's order)
                raise DtlsError("the call ended before media was secured")
            raise RuntimeError("not started")
        return await asyncio.shield(self._secured)

    @property
    def keyed(self) -> bool:
        """SRTP keys are in place (always, except before a DTLS handshake completes)."""
        return not isinstance(self.protection, _AwaitingKeys)

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called (the session never runs again)."""
        return self._stopped

    def _stop_requested(self) -> bool:
        # A call, not an attribute: stop() may set the flag while start() awaits, and mypy
        # would otherwise keep start()'s earlier narrowing of it.
        return self._stopped

    async def stop(self) -> None:
        """Send RTCP BYE (RFC 3550 §6.6), stop the loop, close the sockets. Returns when the
        sockets are closed; safe to call twice, before :meth:`start`, and while it runs."""
        first = not self._stopped
        self._stopped = True  # at once: a start() still on its way starts nothing
        if self.thread is not None:
            await self.thread.run(self._stop(first))
        else:
            await self._stop(first)

    async def _stop(self, first: bool) -> None:
        if self._starting is not None:
            await self._starting.wait()  # a start() in progress finishes (and starts nothing)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if first:
            with contextlib.suppress(OSError):
                self._send_rtcp(time.time(), asyncio.get_running_loop().time(), bye=True)
                if self.dtls is not None:
                    self._send_dtls(self.dtls.close())
        if self._secured is not None and not self._secured.done():
            self._secured.set_exception(DtlsError("the call ended before media was secured"))
            self._secured.exception()  # retrieved: no "never retrieved" warning
        for transport in (self._rtp_transport, self._rtcp_transport):
            if transport is not None:
                transport.close()
        self._rtp_transport = self._rtcp_transport = None
        if self._ports is not None:
            self._ports.close()  # what no transport adopted (reserved but never started)
        endpoints, self._endpoints = self._endpoints, []
        for endpoint in endpoints:  # connection_lost: the descriptor is really closed
            await endpoint.lost.wait()

    def send_dtmf(self, digits: str, duration: float = 0.1) -> None:
        """Queue DTMF digits as RFC 4733 events (``ValueError`` if the peer has no
        telephone-event or a digit is not one of ``0-9*#A-D``)."""
        if self.negotiated.telephone_event is None:
            raise ValueError("the peer did not negotiate telephone-event")
        for digit in digits:
            if digit.upper() not in "0123456789*#ABCD":
                raise ValueError(f"not a DTMF digit: {digit!r}")
            self._dtmf_queue.append((digit, duration))

    # -- the 20 ms loop ------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start
        next_rtcp = start + self._rtcp_delay(initial=True)
        next_stats = start + self.stats_interval
        while True:
            now = loop.time()
            try:
                self._dtls_timer(now)
                self.tick(now)
                if now >= next_rtcp:
                    self._send_rtcp(time.time(), now)
                    next_rtcp = now + self._rtcp_delay()
                if now >= next_stats:
                    self._emit(self._statistics())
                    next_stats = now + self.stats_interval
            except OSError as exc:  # the socket went away under us (network change)
                _log.warning("media send failed: %s", exc)
            deadline += _FRAME
            if deadline < now - 0.2:  # suspended or starved: do not burst to catch up
                deadline = now + _FRAME
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    def _rtcp_delay(self, *, initial: bool = False) -> float:
        # RFC 3550 §6.3.5: randomise to [0.5, 1.5] x the interval; the first report at half.
        factor = 0.5 if initial else 1.0
        return self.rtcp_interval * factor * self._rng.uniform(0.5, 1.5)

    def tick(self, now: float) -> None:
        """One frame period: send one frame, play one frame, check the media timeout."""
        frame = self.source.read()
        if self.muted and frame is not None:
            # RFC 3550 §5.1: keep sending (silence) so timestamps and the peer's media
            # timeout stay continuous; no comfort noise (RFC 3389) is negotiated.
            frame = _SILENT_FRAME
        sending = frame is not None and self.negotiated.direction.sends
        self.sent_dbfs = level_dbfs(frame) if sending and frame is not None else -math.inf
        self._send_frame(frame)
        self._playout(now)
        self._check_timeout(now)

    def _send_frame(self, frame: bytes | None) -> None:
        sends = self.negotiated.direction.sends
        te = self.negotiated.telephone_event
        if not self._dtmf_tx.active and self._dtmf_queue and te is not None and sends:
            if self._dtmf_gap > 0:
                self._dtmf_gap -= 1
            else:
                digit, duration = self._dtmf_queue.popleft()
                self._dtmf_tx.start(digit, self._ts, duration)
                self._dtmf_gap = 3  # 60 ms of audio between digits
        if self._dtmf_tx.active and te is not None:
            packet = self._dtmf_tx.next_packet()
            if packet is not None and sends:
                self._send_rtp(te.payload_type, packet.payload, packet.timestamp, packet.marker)
            self._need_marker = True
        elif frame is None or not sends:
            self._need_marker = True
        else:
            for payload in self.pipeline.encode(frame):
                self._send_rtp(self.negotiated.codec.payload_type, payload, self._ts)
        self._ts = (self._ts + self._step) & 0xFFFFFFFF

    def _send_rtp(self, pt: int, payload: bytes, timestamp: int, marker: bool = False) -> None:
        if self._rtp_transport is None or not self.keyed:
            return
        marker = marker or self._need_marker
        self._need_marker = False
        packet = RtpPacket(
            payload_type=pt,
            marker=int(marker),
            sequence_number=self._seq,
            timestamp=timestamp,
            ssrc=self.ssrc,
            payload=payload,
        )
        self._seq = (self._seq + 1) & 0xFFFF
        data = self.protection.protect(packet.serialize())
        self._rtp_transport.sendto(data, self._remote_rtp)
        self.packets_sent += 1
        self.octets_sent += len(payload)
        self._sent_since_report = True

    def _playout(self, now: float) -> None:
        out = self._jitter.pop(now)
        if out.kind is PlayoutKind.FRAME:
            pcm = self.pipeline.decode(out.payload, out.timestamp)
            pcm = self._concealer.good(_fit(pcm)) if pcm else self._concealer.conceal()
        elif out.kind is PlayoutKind.CONCEAL:
            pcm = self._concealer.conceal()
        else:
            pcm = _SILENT_FRAME
        self.received_dbfs = level_dbfs(pcm)
        if self.sink is not None:
            self.sink.write(pcm)

    def _check_timeout(self, now: float) -> None:
        # The peer sends to us only if our direction receives (a=sendonly from us = hold).
        if not self.negotiated.direction.receives or self._timed_out:
            return
        since = self._last_rtp if self._last_rtp is not None else self._started_at
        if now - since >= self.media_timeout:
            self._timed_out = True
            self._emit(MediaTimeout(now - since))

    # -- receive -------------------------------------------------------------------------

    def _on_rtp_socket(self, data: bytes, addr: Address) -> None:
        now = asyncio.get_running_loop().time()
        if self.dtls is not None and not self._demultiplex(data, addr, now):
            return
        if self.negotiated.rtcp_mux and is_rtcp(data):
            self.receive_rtcp(data, addr, now, time.time())
        else:
            self.receive_rtp(data, addr, now)

    def _on_rtcp_socket(self, data: bytes, addr: Address) -> None:
        loop = asyncio.get_running_loop()
        self.receive_rtcp(data, addr, loop.time(), time.time())

    def _drop(self, reason: DropReason) -> None:
        self._drops[reason] += 1

    # -- DTLS-SRTP -------------------------------------------------------------------------

    def _demultiplex(self, data: bytes, addr: Address, now: float) -> bool:
        """RFC 7983 §7 on a DTLS-SRTP socket: ``True`` lets an RTP/RTCP packet through."""
        assert self.dtls is not None
        first = data[0] if data else -1
        if 128 <= first <= 191:
            if self.keyed:
                return True
            self._media_drops["before-keys"] += 1
        elif is_dtls(data):
            if not _same_source(addr, self._remote_rtp):
                self._drop(DropReason.UNEXPECTED_SOURCE)  # strangers never reach OpenSSL
            else:
                self.receive_dtls(data, now)
        elif 0 <= first <= 3:
            self._media_drops["stun"] += 1  # no ICE here (RFC 7983: STUN)
        else:
            self._drop(DropReason.MALFORMED)
        return False

    def receive_dtls(self, data: bytes, now: float) -> None:
        """One DTLS datagram from the peer's address (public for tests)."""
        assert self.dtls is not None
        if self.dtls.state in (DtlsState.CONNECTED, DtlsState.CLOSED):
            self._media_drops["dtls-after-handshake"] += 1
        self._send_dtls(self.dtls.receive(data, now))
        self._dtls_progress()

    def _dtls_timer(self, now: float) -> None:
        dtls = self.dtls
        if dtls is None or dtls.state is not DtlsState.HANDSHAKING:
            return
        deadline = dtls.get_timer(now)
        if deadline is not None and now >= deadline:
            self._send_dtls(dtls.handle_timer(now))
            self._dtls_progress()

    def _send_dtls(self, datagrams: list[bytes]) -> None:
        if self._rtp_transport is None:
            return
        for datagram in datagrams:
            self._rtp_transport.sendto(datagram, self._remote_rtp)

    def _dtls_progress(self) -> None:
        dtls, secured = self.dtls, self._secured
        if dtls is None or secured is None or secured.done():
            return
        if dtls.state is DtlsState.CONNECTED and dtls.keys is not None:
            keys = dtls.keys
            self.protection = SrtpContext(keys.suite, keys.local_key_salt, keys.remote_key_salt)
            self._need_marker = True
            secured.set_result(keys)
        elif dtls.state is DtlsState.FAILED:
            error = dtls.error or DtlsError("the media encryption handshake failed")
            secured.set_exception(error)
            secured.exception()  # the call reads it through the event or wait_secured()
            self._emit(MediaSecurityFailed(error.reason))

    def _accept_source(self, addr: Address, expected: Address) -> bool | None:
        """``True``: the expected source; ``None``: a stranger we may latch to if its packet
        authenticates; ``False``: drop unread."""
        if _same_source(addr, expected):
            return True
        if self.latched or isinstance(self.protection, PlainContext):
            return False
        return None

    def receive_rtp(self, data: bytes, addr: Address, now: float) -> None:
        """One datagram from the RTP socket (public for tests and other transports)."""
        known = self._accept_source(addr, self._remote_rtp)
        if known is False:
            self._drop(DropReason.UNEXPECTED_SOURCE)
            return
        clear = self.protection.unprotect(data)
        if isinstance(clear, DropReason):
            return  # counted by the protection context
        try:
            packet = RtpPacket.parse(clear)
        except ValueError:
            self._drop(DropReason.MALFORMED)
            return
        if not self.negotiated.direction.receives:
            self._drop(DropReason.NOT_RECEIVING)
            return
        if known is None:
            self._latch(addr)
        elif not self.latched:
            self.latched = True
        if packet.ssrc != self.remote_ssrc:
            self._reset_receiver(packet.ssrc)
        self._last_rtp = now
        if self._timed_out:
            self._timed_out = False
            self._emit(MediaResumed())
        te = self.negotiated.telephone_event
        if te is not None and packet.payload_type == te.payload_type:
            for digit in self._dtmf_rx.receive(packet.timestamp, packet.payload):
                self._emit(DtmfReceived(digit.digit, digit.duration))
            return
        if packet.payload_type != self.negotiated.codec.payload_type:
            self._drop(DropReason.UNKNOWN_PAYLOAD_TYPE)
            return
        self._packets_received += 1
        self._octets_received += len(packet.payload)
        self._reception.update(packet.sequence_number, packet.timestamp, now, len(packet.payload))
        reason = self._jitter.push(packet.sequence_number, packet.timestamp, packet.payload, now)
        if reason is not None:
            self._drop(reason)

    def _latch(self, addr: Address) -> None:
        previous = self._remote_rtp
        self._remote_rtp = addr
        if self.negotiated.rtcp_mux:
            self._remote_rtcp = addr
        self.latched = True
        self._emit(SourceLatched(addr, previous))

    def receive_rtcp(self, data: bytes, addr: Address, now: float, wall: float) -> None:
        """One RTCP datagram; ``now`` monotonic, ``wall`` Unix time (for RTT)."""
        if not _same_source(addr, self._remote_rtcp) and (
            self.latched or isinstance(self.protection, PlainContext)
        ):
            self._drop(DropReason.UNEXPECTED_SOURCE)
            return
        clear = self.protection.unprotect_rtcp(data)
        if isinstance(clear, DropReason):
            return
        try:
            packets = parse_compound(clear)
        except RtcpParseError:
            self._drop(DropReason.MALFORMED)
            return
        if not self.negotiated.rtcp_mux:
            self._remote_rtcp = addr  # authenticated (or the expected plain source)
        for packet in packets:
            if isinstance(packet, SenderReport):
                if packet.ssrc == self.remote_ssrc:
                    self._reception.note_sender_report(packet, now)
                self._read_blocks(packet.reports, wall)
            elif isinstance(packet, ReceiverReport):
                self._read_blocks(packet.reports, wall)

    def _read_blocks(self, blocks: tuple[ReportBlock, ...], wall: float) -> None:
        for block in blocks:
            if block.ssrc != self.ssrc:
                continue
            self._remote_block = block
            rtt = round_trip_time(block, wall)
            if rtt is not None:
                self._rtt = rtt

    def _send_rtcp(self, wall: float, now: float, *, bye: bool = False) -> None:
        transport = self._rtp_transport if self.negotiated.rtcp_mux else self._rtcp_transport
        if transport is None or not self.keyed:
            return
        blocks: tuple[ReportBlock, ...] = ()
        if self.remote_ssrc is not None and self._reception.received:
            blocks = (self._reception.report_block(now),)
        first: SenderReport | ReceiverReport
        if self._sent_since_report:
            first = SenderReport(
                self.ssrc,
                ntp_timestamp(wall),
                self._ts,
                self.packets_sent,
                self.octets_sent,
                blocks,
            )
        else:
            first = ReceiverReport(self.ssrc, blocks)
        self._sent_since_report = False
        packets: list[SenderReport | ReceiverReport | SourceDescription | Goodbye] = [
            first,
            SourceDescription(((self.ssrc, self.cname),)),
        ]
        if bye:
            packets.append(Goodbye((self.ssrc,)))
        data = self.protection.protect_rtcp(serialize_compound(list(packets)))
        transport.sendto(data, self._remote_rtcp)

    # -- reporting -----------------------------------------------------------------------

    def _emit(self, event: MediaEvent) -> None:
        if self._on_event is None:
            return
        caller = self._caller_loop
        if caller is None or self.thread is None or not self.thread.on_media_thread():
            self._on_event(event)
            return
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody listens
            caller.call_soon_threadsafe(self._on_event, event)

    @property
    def drops(self) -> Counter[DropReason]:
        """Every drop so far: ours, the SRTP context's and the jitter buffer's."""
        if self.thread is not None:
            return self.thread.call(self._count_drops)
        return self._count_drops()

    def _count_drops(self) -> Counter[DropReason]:
        total: Counter[DropReason] = Counter(self._drops)
        total.update(self.protection.drops)
        return total

    def statistics(self) -> MediaStatistics:
        """Counters, jitter, loss and keys of the stream so far (read on the media loop)."""
        if self.thread is not None:
            return self.thread.call(self._statistics)
        return self._statistics()

    def _statistics(self) -> MediaStatistics:
        neg = self.negotiated
        block = self._remote_block
        clock = neg.codec.clock_rate
        suite = getattr(self.protection, "suite", None)
        return MediaStatistics(
            codec=neg.codec.encoding_name,
            payload_type=neg.codec.payload_type,
            encrypted=not isinstance(self.protection, PlainContext),
            suite=None if suite is None else suite.wire_name,
            keying=neg.keying.value,
            local_ssrc=self.ssrc,
            remote_ssrc=self.remote_ssrc,
            remote_address=self._remote_rtp,
            latched=self.latched,
            packets_sent=self.packets_sent,
            octets_sent=self.octets_sent,
            packets_received=self._packets_received,
            octets_received=self._octets_received,
            packets_lost=max(0, self._reception.cumulative_lost),
            jitter_ms=self._reception.jitter.seconds * 1000,
            remote_fraction_lost=None if block is None else block.fraction_lost / 256,
            remote_jitter_ms=None if block is None else block.jitter / clock * 1000,
            rtt_ms=None if self._rtt is None else self._rtt * 1000,
            concealed=self._jitter.concealed,
            jitter_delay_ms=self._jitter.target_delay * 1000,
            drops={
                **{reason.value: n for reason, n in sorted(self._count_drops().items()) if n},
                **{reason: n for reason, n in sorted(self._media_drops.items()) if n},
            },
        )


def level_dbfs(pcm: bytes) -> float:
    """RMS of one frame of s16 PCM in dBFS (-inf for digital silence); cheap enough to run
    on every frame sent and played (one C-level multiply-sum over the samples)."""
    data = array("h")
    data.frombytes(pcm[: len(pcm) // 2 * 2])
    if not data:
        return -math.inf
    power = sum(map(operator.mul, data, data)) / len(data)
    return 10 * math.log10(power / (32768 * 32768)) if power else -math.inf


def _fit(pcm: bytes) -> bytes:
    """Exactly one internal frame (a peer's odd ptime is cut or padded: see the gaps)."""
    size = len(_SILENT_FRAME)
    if len(pcm) == size:
        return pcm
    return pcm[:size] if len(pcm) > size else pcm + bytes(size - len(pcm))
