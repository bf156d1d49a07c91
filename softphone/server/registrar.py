"""The registrar: TLS (and TCP, UDP) listeners, Digest, the location service (RFC 3261 §10.3).

Two layers, as everywhere in the engine:

* :class:`RegistrarCore` is sans-I/O: a request, ``now`` and the flow it came on in, the
  response out. It checks the domain, authenticates with Digest (RFC 3261 §22; SHA-256 offered
  before MD5, RFC 8760 §2.4), authorises the user for the To AOR (403 otherwise, §10.3 step
  4), and hands the bindings to :class:`~softphone.server.location.LocationService`. OPTIONS
  is answered 200; methods a registrar does not serve get 405 (known) or 501 (unknown).
* :class:`Registrar` is the asyncio part: listeners, one :class:`StreamFramer` per connection
  (RFC 3261 §18.3), one :class:`TransactionLayer` for the server transactions (reliable
  transport), RFC 5626 §3.5.1 keepalives (a CRLFCRLF ping gets a CRLF pong), and the flows
  whose loss removes their outbound bindings.

UDP listeners (``udp:host:port`` in ``--listen``): one message per datagram (RFC 3261 §18.3,
:func:`~softphone.sip.parser.parse_message`); the top Via of each request is stamped with
``received``/``rport`` (§18.2.1, RFC 3581 §4) and the response goes where §18.2.2 and RFC 3581
say (the source address and port when ``rport`` was asked for); server transactions run
unreliable (a retransmitted REGISTER gets the same response again from the transaction, Timer
J). A datagram that does not parse is answered 400 to its source when it is a request whose
Via can be recovered, else dropped and counted (:attr:`Registrar.udp_dropped`); the listener
goes on. STUN Binding requests on the same port are answered with XOR-MAPPED-ADDRESS (RFC
5389, the keep-alive of RFC 5626 §4.4.2 / §8.4); a CR/LF datagram is ignored. The UDP "flow"
of an outbound binding is named after the source address (``udp:ip:port``).

A request that is framed correctly but does not parse is answered with its
``ParseError.status_code`` (400, 505...) when enough header fields survive to route the
response, and the connection goes on; when the framing itself is broken (no or bad
Content-Length, limits exceeded) the connection is closed after that answer.

Logs never carry Authorization values: they go through ``redact_authorization``.

In-process use (tests, the demo network)::

    async with running_registrar(config) as reg:
        reg.tls_port, reg.fingerprint, reg.bindings("sip:alice@example.test")
        await reg.drop_flows()      # as after a restart: every connection closed
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import itertools
import logging
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass

from softphone.security.certificates import fingerprint_hex
from softphone.server.config import RegistrarConfig
from softphone.server.location import Binding, LocationService, canonical_aor
from softphone.sip.dialog import new_tag
from softphone.sip.digest import redact_authorization
from softphone.sip.digest_server import DigestServer
from softphone.sip.errors import ParseError
from softphone.sip.framing import FramingError, StreamFramer
from softphone.sip.headers import parse_option_tags
from softphone.sip.message import Message, Request, Response
from softphone.sip.parser import parse_message
from softphone.sip.transaction import Send, ServerTransaction, Terminated, Timeout, Transaction
from softphone.sip.transaction import TransportError as TransactionTransportError
from softphone.sip.transaction_layer import LayerAction, NewRequest, TransactionLayer
from softphone.sip.uri import SipURI, parse_uri
from softphone.transport.stream import (
    ByteStream,
    TCPStream,
    TLSServer,
    TLSStream,
    TLSStreamError,
    start_tls_server,
)
from softphone.transport.tls import TLSConfig
from softphone.transport.udp import (
    BINDING_REQUEST,
    MAX_DATAGRAM,
    DatagramEndpoint,
    StunError,
    error_response_for_raw,
    is_keepalive,
    is_stun,
    open_datagram_endpoint,
    parse_stun,
    response_destination,
    stamp_received,
    stun_binding_response,
)

__all__ = [
    "ALLOWED_METHODS",
    "SUPPORTED_OPTIONS",
    "Registrar",
    "RegistrarCore",
    "error_response_for_raw",
    "running_registrar",
]

log = logging.getLogger(__name__)

ALLOWED_METHODS = ("REGISTER", "OPTIONS", "ACK", "CANCEL")
SUPPORTED_OPTIONS = ("outbound", "path")
# Methods some RFC defines: a registrar answers them 405, anything else 501 (§8.2.1, §21.5.2).
_KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "BYE",
        "PRACK",
        "UPDATE",
        "INFO",
        "MESSAGE",
        "SUBSCRIBE",
        "NOTIFY",
        "REFER",
        "PUBLISH",
    }
)
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization")


# ---------------------------------------------------------------------------- sans-I/O core


class RegistrarCore:
    """Decides the response to each request (sans-I/O; see the module docstring)."""

    def __init__(
        self,
        config: RegistrarConfig,
        *,
        digest: DigestServer | None = None,
        location: LocationService | None = None,
    ) -> None:
        self.config = config
        self.domain = config.domain.lower()
        self.digest = digest or DigestServer(
            config.effective_realm,
            config.credentials(),
            algorithms=config.algorithms,
            nonce_lifetime=config.nonce_lifetime,
        )
        self.location = location or LocationService(
            min_expires=config.min_expires,
            max_expires=config.max_expires,
            default_expires=config.default_expires,
        )

    def handle_request(
        self, request: Request, now: float, *, flow: str | None = None, cancels: bool = False
    ) -> Response | None:
        """The final response to ``request`` (None for an ACK: nothing to answer).

        ``flow`` names the connection it arrived on (RFC 5626 outbound bindings);
        ``cancels`` says whether a CANCEL matched a server transaction (§9.2).
        """
        if request.method == "ACK":
            return None
        try:
            return self._dispatch(request, now, flow, cancels)
        except ParseError as exc:
            return self._respond(request, exc.status_code, exc.reason)

    def _dispatch(self, request: Request, now: float, flow: str | None, cancels: bool) -> Response:
        if request.method == "CANCEL":
            # Every request is answered at once, so a CANCEL changes nothing (§9.2).
            return self._respond(request, 200 if cancels else 481)
        if not isinstance(request.uri, SipURI):
            return self._respond(request, 416)  # §8.2.2.1
        unsupported = [
            tag
            for tag in parse_option_tags(request.headers.get_all("Require"))
            if tag not in SUPPORTED_OPTIONS
        ]
        if unsupported:
            response = self._respond(request, 420)  # §8.2.2.3
            response.headers.add("Unsupported", ", ".join(unsupported))
            return response
        if request.method == "OPTIONS":
            return self._capabilities(self._respond(request, 200))
        if request.method == "REGISTER":
            return self._register(request, now, flow)
        code = 405 if request.method in _KNOWN_METHODS else 501
        return self._capabilities(self._respond(request, code))

    def _register(self, request: Request, now: float, flow: str | None) -> Response:
        uri = request.uri
        assert isinstance(uri, SipURI)
        if uri.host.lower() != self.domain:
            return self._respond(request, 404, "Domain Not Served Here")  # §10.3 step 1
        to_uri = request.to.uri
        aor = canonical_aor(to_uri)
        if not isinstance(to_uri, SipURI) or to_uri.host.lower() != self.domain:
            return self._respond(request, 404, "Address-of-Record Not Served Here")  # step 5
        verdict = self.digest.verify(
            "REGISTER",
            str(uri),
            request.headers.get_all(self.digest.credentials_header),
            now,
            request.body,
        )
        if not verdict.ok:
            log.info("REGISTER for %s: %s (%s)", aor, verdict.outcome.name, verdict.reason)
            if verdict.status_code != self.digest.status_code:
                return self._respond(request, verdict.status_code or 400, verdict.reason)
            response = self._respond(request, self.digest.status_code)
            for name, value in self.digest.challenge(now, stale=verdict.stale):
                response.headers.add(name, value)
            return response
        user = unicodedata.normalize("NFC", to_uri.user or "")
        if verdict.username != user:
            # §10.3 step 4: this user may not change this AOR's bindings.
            log.info("REGISTER for %s by %r refused: not their AOR", aor, verdict.username)
            return self._respond(request, 403, "Forbidden: Not Your Address-of-Record")
        result = self.location.register(request, aor, now, flow=flow)
        response = self._respond(request, result.status_code, result.reason)
        if result.min_expires is not None:
            response.headers.add("Min-Expires", str(result.min_expires))
        for contact in result.contacts:
            response.headers.add("Contact", contact)
        if result.ok:
            for path in result.path:
                response.headers.add("Path", path)
            if result.outbound:
                response.headers.add("Require", "outbound")
                if self.config.flow_timer is not None:
                    response.headers.add("Flow-Timer", str(self.config.flow_timer))
            response.headers.add("Supported", ", ".join(SUPPORTED_OPTIONS))
        if result.status_code == 500:
            response.headers.add("Retry-After", "5")
        log.info(
            "REGISTER for %s by %s on %s: %d, %d binding(s)",
            aor,
            verdict.username,
            flow,
            result.status_code,
            len(result.bindings),
        )
        return response

    def _respond(self, request: Request, code: int, reason: str | None = None) -> Response:
        return Response.for_request(request, code, _safe_reason(reason), to_tag=new_tag())

    @staticmethod
    def _capabilities(response: Response) -> Response:
        response.headers.add("Allow", ", ".join(ALLOWED_METHODS))
        response.headers.add("Supported", ", ".join(SUPPORTED_OPTIONS))
        return response


def _safe_reason(reason: str | None) -> str | None:
    """A Reason-Phrase from our own words: printable, one line, bounded."""
    if reason is None:
        return None
    cleaned = "".join(c if c.isprintable() else " " for c in reason)[:120].strip()
    return cleaned or None


def loggable(message: Message) -> str:
    """The header section of ``message`` for a debug log, credentials redacted."""
    lines = []
    for name, value in message.headers:
        shown = redact_authorization(value) if name.lower() in _CREDENTIAL_HEADERS else value
        lines.append(f"{name}: {shown}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- framing

_MAX_HEADER_BYTES = 65536
_MAX_BODY_BYTES = 65536


def _broken_frame(pending: bytes, skip: int) -> bytes:
    """The bytes from the frame that broke the framing: ``pending`` after its first ``skip``
    whole messages. A fresh framer is fed byte by byte, so the framer's own rules decide where
    each message ends (this runs once, just before a connection is closed)."""
    if not skip:
        return pending
    probe = StreamFramer(max_header_bytes=_MAX_HEADER_BYTES, max_body_bytes=_MAX_BODY_BYTES)
    done = 0
    for i in range(len(pending)):
        try:
            done += len(probe.feed(pending[i : i + 1]))
        except FramingError:
            break
        if done >= skip:
            return pending[i + 1 :]
    return b""


# ---------------------------------------------------------------------------- asyncio


class _AsyncioStream:
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

    def close(self) -> None:
        self._writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


@dataclass(eq=False)
class _Connection:
    flow: str
    transport: str
    peer: tuple[str, int] | None
    stream: ByteStream
    task: asyncio.Task[None] | None = None

    def send(self, data: bytes) -> bool:
        try:
            self.stream.write(data)
        except (OSError, RuntimeError, TLSStreamError) as exc:
            log.info("send on %s failed: %s", self.flow, exc)
            return False
        return True


@dataclass(eq=False)
class _UDPPeer:
    """Where the responses of one server transaction received over UDP go (§18.2.2)."""

    flow: str
    endpoint: DatagramEndpoint
    source: tuple[str, int]
    transport: str = "udp"

    def send(self, data: bytes) -> bool:
        try:
            self.endpoint.sendto(data, self.source)
        except (OSError, RuntimeError) as exc:
            log.info("send on %s failed: %s", self.flow, exc)
            return False
        return True

    def send_response(self, response: Response) -> bool:
        try:
            self.endpoint.sendto(bytes(response), response_destination(response, self.source))
        except (OSError, RuntimeError) as exc:
            log.info("send on %s failed: %s", self.flow, exc)
            return False
        return True


_Peer = _Connection | _UDPPeer


class Registrar:
    """The registrar's listeners and connections (see the module docstring)."""

    def __init__(self, config: RegistrarConfig) -> None:
        self.config = config
        self.core = RegistrarCore(config)
        self.layer = TransactionLayer()
        self._tls_servers: list[TLSServer] = []
        self._tcp_servers: list[asyncio.Server] = []
        self._udp_endpoints: list[DatagramEndpoint] = []
        self._connections: dict[str, _Connection] = {}
        self._tx_connection: dict[Transaction, _Peer] = {}
        #: UDP datagrams neither answered nor used: unparsable with no Via to answer to,
        #: stray responses, STUN that is not a Binding request.
        self.udp_dropped = 0
        #: STUN Binding requests answered on the UDP listeners.
        self.stun_answered = 0
        self._flow_ids = itertools.count(1)
        self._wake = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None
        self._tls_config: TLSConfig | None = None
        self.fingerprint: str | None = None  # SHA-256 of our certificate, AB:CD:... form

    # -- information --------------------------------------------------------------------------

    @property
    def location(self) -> LocationService:
        return self.core.location

    @property
    def tls_port(self) -> int:
        if not self._tls_servers:
            raise RuntimeError("no TLS listener")
        return self._tls_servers[0].port

    @property
    def tcp_port(self) -> int:
        if not self._tcp_servers:
            raise RuntimeError("no TCP listener")
        return int(self._tcp_servers[0].sockets[0].getsockname()[1])

    @property
    def udp_port(self) -> int:
        if not self._udp_endpoints:
            raise RuntimeError("no UDP listener")
        return self._udp_endpoints[0].local_address[1]

    @property
    def listening(self) -> list[tuple[str, str, int]]:
        """(transport, host, port) of every listener."""
        out = [("tls", *_sockname(s.server)) for s in self._tls_servers]
        out += [("tcp", *_sockname(s)) for s in self._tcp_servers]
        out += [("udp", *e.local_address) for e in self._udp_endpoints]
        return out

    @property
    def flows(self) -> list[str]:
        return list(self._connections)

    def bindings(self, aor: str) -> list[Binding]:
        """The live bindings of ``aor`` (any form: ``sips:alice@example.test;x=y`` too)."""
        key = canonical_aor(parse_uri(aor))
        return self.location.bindings(key, asyncio.get_running_loop().time())

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.config.needs_tls:
            chain, key = self.config.tls_identity()
            self._tls_config = TLSConfig.server(chain, key)
            self.fingerprint = fingerprint_hex(chain[0])
        try:
            for address in self.config.listen:
                if address.transport == "tls":
                    assert self._tls_config is not None
                    self._tls_servers.append(
                        await start_tls_server(
                            address.host,
                            address.port,
                            self._tls_config,
                            self._on_tls_connection,
                            on_error=_log_tls_failure,
                        )
                    )
                elif address.transport == "udp":
                    self._udp_endpoints.append(await self._open_udp(address.host, address.port))
                else:
                    self._tcp_servers.append(
                        await asyncio.start_server(
                            self._on_tcp_connection, address.host, address.port
                        )
                    )
        except BaseException:
            await self.close()
            raise
        self._timer_task = loop.create_task(self._timer_loop())
        log.info("registrar for %s listening on %s", self.config.domain, self.listening)

    async def close(self) -> None:
        for tcp in self._tcp_servers:
            tcp.close()
        for tls in self._tls_servers:
            tls.close()
        for udp in self._udp_endpoints:
            udp.close()
        for udp in self._udp_endpoints:
            await udp.wait_closed()
        self._udp_endpoints.clear()
        await self.drop_flows()
        for tls in self._tls_servers:
            await tls.wait_closed()
        for tcp in self._tcp_servers:
            await tcp.wait_closed()
        self._tls_servers.clear()
        self._tcp_servers.clear()
        if self._timer_task is not None:
            self._timer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer_task
            self._timer_task = None

    async def drop_flows(self) -> None:
        """Close every connection, as a restart would; their outbound bindings go too."""
        connections = list(self._connections.values())
        for conn in connections:
            conn.stream.close()
        tasks = [c.task for c in connections if c.task is not None and not c.task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        for conn in connections:  # in case a task never reached its cleanup
            self._forget(conn)

    # -- connections --------------------------------------------------------------------------

    async def _on_tls_connection(self, stream: TLSStream) -> None:
        peer = (
            stream.lower.get_extra_info("peername") if isinstance(stream.lower, TCPStream) else None
        )
        await self._serve(stream, "tls", _address(peer))

    async def _on_tcp_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        stream = _AsyncioStream(reader, writer)
        try:
            await self._serve(stream, "tcp", _address(writer.get_extra_info("peername")))
        finally:
            stream.close()

    async def _serve(
        self, stream: ByteStream, transport: str, peer: tuple[str, int] | None
    ) -> None:
        where = f"{peer[0]}:{peer[1]}" if peer else "?"
        conn = _Connection(f"{transport}:{where}#{next(self._flow_ids)}", transport, peer, stream)
        conn.task = asyncio.current_task()
        self._connections[conn.flow] = conn
        framer = StreamFramer(max_header_bytes=_MAX_HEADER_BYTES, max_body_bytes=_MAX_BODY_BYTES)
        held = bytearray()  # the bytes the framer holds (always a suffix of the stream)
        try:
            while True:
                data = await stream.read()
                if not data:
                    break
                held += data
                if not self._feed(conn, framer, held, data):
                    break
        except (OSError, TLSStreamError) as exc:
            log.info("connection %s failed: %s", conn.flow, exc)
        finally:
            self._forget(conn)
            stream.close()

    def _feed(self, conn: _Connection, framer: StreamFramer, held: bytearray, data: bytes) -> bool:
        """Feed ``data`` (already appended to ``held``) and handle what it completed; False
        when the framing is broken and the connection must be closed (RFC 3261 §18.3).

        A message that is framed but does not parse gets its 4xx and the framer goes on with
        the messages behind it (``feed(b"")``, which may raise again for the next one).
        """
        while True:
            pings = framer.pings
            try:
                messages = framer.feed(data)
            except FramingError as exc:
                self._pong(conn, framer.pings - pings)
                for message in exc.messages:
                    self._on_message(conn, message)
                if not exc.recoverable:
                    raw = _broken_frame(bytes(held), len(exc.messages))
                    held.clear()
                    self._answer_unparsed(conn, raw, exc)
                    log.info("closing %s: framing broken (%s)", conn.flow, exc.reason)
                    return False
                self._answer_unparsed(conn, exc.raw, exc)
                del held[: len(held) - framer.buffered]
                data = b""
                continue
            self._pong(conn, framer.pings - pings)
            for message in messages:
                self._on_message(conn, message)
            del held[: len(held) - framer.buffered]
            return True

    @staticmethod
    def _pong(conn: _Connection, pings: int) -> None:
        for _ in range(pings):
            conn.send(b"\r\n")  # RFC 5626 §3.5.1 pong

    def _forget(self, conn: _Connection) -> None:
        if self._connections.pop(conn.flow, None) is None:
            return
        gone = self.location.flow_lost(conn.flow)
        for tx in [t for t, c in self._tx_connection.items() if c is conn]:
            del self._tx_connection[tx]
        log.info("flow %s closed; %d outbound binding(s) removed", conn.flow, len(gone))

    def _answer_unparsed(self, conn: _Connection, raw: bytes, error: ParseError) -> None:
        log.info("unparsable message on %s: %s", conn.flow, error.reason)
        response = error_response_for_raw(raw, error)
        if response is not None:
            conn.send(bytes(response))

    def _on_message(self, conn: _Connection, message: Message) -> None:
        if isinstance(message, Response):
            return  # we send no requests: any response is stray (§18.1.2)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s from %s\n%s", message.method, message.uri, conn.flow, loggable(message)
            )
        now = asyncio.get_running_loop().time()
        try:
            actions = self.layer.receive(message, now, reliable=True)
        except ParseError as exc:
            response = error_response_for_raw(bytes(message), exc)
            if response is not None:
                conn.send(bytes(response))
            return
        self._run(actions, now, conn)

    def _run(self, actions: list[LayerAction], now: float, conn: _Peer | None) -> None:
        for action in actions:
            if isinstance(action, NewRequest):
                self._on_new_request(action, now, conn)
            elif isinstance(action, Send):
                tx = action.transaction
                target = (self._tx_connection.get(tx) if tx is not None else None) or conn
                message = action.message
                if isinstance(target, _UDPPeer) and isinstance(message, Response):
                    sent = target.send_response(message)
                else:
                    sent = target is not None and target.send(bytes(message))
                if not sent and isinstance(tx, ServerTransaction):
                    self._run(self.layer.transport_error(tx, now), now, None)
            elif (
                isinstance(action, (Terminated, Timeout, TransactionTransportError))
                and action.transaction is not None
            ):
                self._tx_connection.pop(action.transaction, None)
            # Deliver: an ACK for a 2xx we never send; nothing to do.
        self._wake.set()

    def _on_new_request(self, action: NewRequest, now: float, conn: _Peer | None) -> None:
        tx = action.transaction
        if tx is None or conn is None:
            return  # an ACK outside any transaction (§17.1.1.3): no answer
        self._tx_connection[tx] = conn
        response = self.core.handle_request(
            action.request, now, flow=conn.flow, cancels=action.cancels is not None
        )
        if response is None:
            return
        if action.request.method == "REGISTER" and 200 <= response.status_code < 300:
            response.headers.add("Date", email.utils.formatdate(usegmt=True))  # §10.3 step 8
        log.debug("-> %d %s to %s", response.status_code, response.reason, conn.flow)
        self._run(self.layer.send_response(response, now, transaction=tx), now, conn)

    async def _timer_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            deadline = self.layer.next_deadline()
            timeout = 30.0 if deadline is None else min(30.0, max(0.0, deadline - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            now = loop.time()
            self.location.expire(now)
            deadline = self.layer.next_deadline()
            if deadline is not None and deadline <= now:
                self._run(self.layer.handle_timer(now), now, None)
                self._wake.clear()

    # -- UDP ----------------------------------------------------------------------------------

    async def _open_udp(self, host: str, port: int) -> DatagramEndpoint:
        holder: list[DatagramEndpoint] = []

        def on_datagram(data: bytes, source: tuple[str, int]) -> None:
            self._on_datagram(holder[0], data, source)

        endpoint = await open_datagram_endpoint(
            on_datagram, local_addr=(host, port), on_error=_log_udp_error
        )
        holder.append(endpoint)
        return endpoint

    def _on_datagram(
        self, endpoint: DatagramEndpoint, data: bytes, source: tuple[str, int]
    ) -> None:
        """One datagram on a UDP listener (see the module docstring); never raises."""
        try:
            self._handle_datagram(endpoint, data, source)
        except Exception:  # one bad datagram must not stop the listener
            self.udp_dropped += 1
            log.exception("error while handling a datagram from %s:%d", *source)

    def _handle_datagram(
        self, endpoint: DatagramEndpoint, data: bytes, source: tuple[str, int]
    ) -> None:
        where = f"udp:{source[0]}:{source[1]}"
        if is_stun(data):
            self._answer_stun(endpoint, data, source)
            return
        if is_keepalive(data):
            return
        peer = _UDPPeer(where, endpoint, source)
        try:
            message = parse_message(data, max_size=MAX_DATAGRAM)
        except ParseError as exc:
            response = error_response_for_raw(data, exc)
            if response is None:
                self.udp_dropped += 1
                log.info("dropped an unparsable datagram from %s: %s", where, exc.reason)
            else:
                log.info("unparsable request from %s: %s", where, exc.reason)
                peer.send(bytes(response))  # to the source: its Via may be what broke
            return
        if isinstance(message, Response):
            self.udp_dropped += 1  # we send no requests: any response is stray (§18.1.2)
            return
        try:
            stamp_received(message, source)
        except ParseError as exc:
            response = error_response_for_raw(data, exc)
            if response is not None:
                peer.send(bytes(response))
            else:
                self.udp_dropped += 1
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s from %s\n%s", message.method, message.uri, where, loggable(message))
        now = asyncio.get_running_loop().time()
        try:
            actions = self.layer.receive(message, now, reliable=False)
        except ParseError as exc:
            response = error_response_for_raw(data, exc)
            if response is not None:
                peer.send(bytes(response))
            else:
                self.udp_dropped += 1
            return
        self._run(actions, now, peer)

    def _answer_stun(
        self, endpoint: DatagramEndpoint, data: bytes, source: tuple[str, int]
    ) -> None:
        try:
            request = parse_stun(data)
        except StunError:
            self.udp_dropped += 1
            return
        if request.type != BINDING_REQUEST:
            self.udp_dropped += 1  # only Binding requests are served (RFC 5626 §8.4)
            return
        with contextlib.suppress(OSError, RuntimeError):
            endpoint.sendto(stun_binding_response(request, source), source)
            self.stun_answered += 1


def _log_udp_error(exc: Exception) -> None:
    # ICMP errors for datagrams we sent (a UA that went away): nothing to undo (§18.4).
    log.info("UDP error: %s", exc)


def _sockname(server: asyncio.Server) -> tuple[str, int]:
    name = server.sockets[0].getsockname()
    return str(name[0]), int(name[1])


def _address(peer: object) -> tuple[str, int] | None:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1])
    return None


def _log_tls_failure(exc: BaseException) -> None:
    log.info("TLS connection failed: %s", exc)


@contextlib.asynccontextmanager
async def running_registrar(config: RegistrarConfig) -> AsyncIterator[Registrar]:
    """A started :class:`Registrar`, closed on exit (for tests and the demo network)."""
    registrar = Registrar(config)
    await registrar.start()
    try:
        yield registrar
    finally:
        await registrar.close()
