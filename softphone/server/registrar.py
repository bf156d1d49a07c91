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

It is also the domain's proxy (RFC 3261 §16) and sipsec relay (draft-gurbani-sip-sipsec-01
§6.6): a request that is not a REGISTER, not addressed to the registrar itself (a Request-URI
with no user naming our host, no Route beyond ours) and not the ACK/CANCEL of a transaction we
answered goes to :class:`~softphone.server.relay.ProxyRelay` (routing decisions in
:mod:`softphone.server.proxy`, the byte splice in :mod:`softphone.server.tunnel`). Responses
arriving on a connection are routed back by our Via branch. ``Registrar(config,
observer=...)`` reports :class:`~softphone.server.observe.SipSeen` for every message parsed
("in") and sent ("out"), and the tunnels' opening and closing; :attr:`Registrar.tunnels` holds
the live tunnels with their byte counters, and ``registrar.relay.on_relayed`` (e.g.
``ProxyView.add_relayed``) is called for each relayed chunk.

UDP listeners (``udp:host:port`` in ``--listen``, :mod:`softphone.server.udp_listener`): one
message per datagram (RFC 3261 §18.3,
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

from softphone.security.certificates import fingerprint_hex
from softphone.server.config import RegistrarConfig
from softphone.server.connection import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    AsyncioStream,
    Connection,
    loggable,
)
from softphone.server.location import Binding, LocationService, canonical_aor
from softphone.server.observe import Observation, Observer, SipSeen
from softphone.server.relay import ProxyRelay
from softphone.server.tunnel import Tunnel
from softphone.server.udp_listener import UDPListenerMixin, UDPPeer
from softphone.sip.dialog import new_tag
from softphone.sip.digest_server import DigestServer
from softphone.sip.errors import ParseError
from softphone.sip.framing import FramingError, StreamFramer
from softphone.sip.headers import parse_option_tags
from softphone.sip.message import Message, Request, Response
from softphone.sip.transaction import Send, ServerTransaction, Terminated, Timeout, Transaction
from softphone.sip.transaction import TransportError as TransactionTransportError
from softphone.sip.transaction_layer import (
    LayerAction,
    NewRequest,
    TransactionLayer,
    server_key,
)
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
    DatagramEndpoint,
    error_response_for_raw,
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


# ---------------------------------------------------------------------------- framing

_MAX_HEADER_BYTES = MAX_HEADER_BYTES
_MAX_BODY_BYTES = MAX_BODY_BYTES


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


_Peer = Connection | UDPPeer


class Registrar(UDPListenerMixin):
    """The registrar's listeners and connections (see the module docstring)."""

    def __init__(self, config: RegistrarConfig, *, observer: Observer | None = None) -> None:
        self.config = config
        self.core = RegistrarCore(config)
        self.layer = TransactionLayer()
        self.observer = observer
        #: The proxy (RFC 3261 §16) and sipsec relay (draft §6.6): see softphone.server.relay.
        self.relay = ProxyRelay(self, observer=observer)
        self._by_id: dict[int, Connection] = {}
        self._tls_servers: list[TLSServer] = []
        self._tcp_servers: list[asyncio.Server] = []
        self._udp_endpoints: list[DatagramEndpoint] = []
        self._connections: dict[str, Connection] = {}
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

    @property
    def tunnels(self) -> dict[int, Tunnel]:
        """Live sipsec tunnels by id; each has ``bytes_up_to_down``/``bytes_down_to_up``."""
        return self.relay.tunnels

    def bindings(self, aor: str) -> list[Binding]:
        """The live bindings of ``aor`` (any form: ``sips:alice@example.test;x=y`` too)."""
        key = canonical_aor(parse_uri(aor))
        return self.location.bindings(key, asyncio.get_running_loop().time())

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.config.needs_tls:
            chain, key = self.config.tls_identity()
            # Peer proxies present their certificate as client certificate (RFC 5922 §7.2):
            # asked for (never required) when there are peer CAs to check it against.
            self._tls_config = TLSConfig.server(
                chain,
                key,
                request_client_certificate=bool(self.config.peer_anchors),
                trust_anchors=self.config.peer_anchors,
            )
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
        self.relay.core.addresses = {(host, port) for _, host, port in self.listening}
        if self._tls_servers:  # a Record-Route with record_route_host names this port
            self.relay.core.record_route_port = self.tls_port
        log.info("registrar for %s listening on %s", self.config.domain, self.listening)

    async def close(self) -> None:
        await self.relay.close()
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
        await self._serve(stream, "tls", _address(peer), peer_domain=self.relay.peer_domain(stream))

    async def _on_tcp_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        stream = AsyncioStream(reader, writer)
        try:
            await self._serve(stream, "tcp", _address(writer.get_extra_info("peername")))
        finally:
            stream.close()

    def _new_connection(
        self, stream: ByteStream, transport: str, peer: tuple[str, int] | None
    ) -> Connection:
        ident = next(self._flow_ids)
        where = f"{peer[0]}:{peer[1]}" if peer else "?"
        conn = Connection(f"{transport}:{where}#{ident}", transport, peer, stream, ident=ident)
        self._connections[conn.flow] = conn
        self._by_id[ident] = conn
        return conn

    async def _serve(
        self,
        stream: ByteStream,
        transport: str,
        peer: tuple[str, int] | None,
        *,
        peer_domain: str | None = None,
    ) -> None:
        conn = self._new_connection(stream, transport, peer)
        conn.peer_proxy = peer_domain is not None
        conn.task = asyncio.current_task()
        await self._read_loop(conn)

    def adopt_outgoing(self, stream: ByteStream, peer: tuple[str, int], domain: str) -> Connection:
        """A connection we opened to a peer proxy: served like an incoming one."""
        conn = self._new_connection(stream, "tls", peer)
        conn.peer_proxy = True
        conn.domain = domain
        conn.task = asyncio.get_running_loop().create_task(self._read_loop(conn))
        return conn

    async def _read_loop(self, conn: Connection) -> None:
        stream = conn.stream
        try:
            while True:
                data = await stream.read()
                if conn.tunnel is not None:  # transparent: relayed, never parsed (§6.6)
                    if not await conn.tunnel.relay(conn, data):
                        await conn.tunnel.closed.wait()
                        break
                    continue
                if not data:
                    break
                conn.held += data
                if not self._feed(conn, data):
                    break
        except (OSError, TLSStreamError) as exc:
            log.info("connection %s failed: %s", conn.flow, exc)
            if conn.tunnel is not None:
                conn.tunnel.source_failed(conn, str(exc))
        finally:
            self._forget(conn)
            stream.close()

    def _feed(self, conn: Connection, data: bytes) -> bool:
        """Feed ``data`` (already appended to ``conn.held``) and handle what it completed;
        False when the framing is broken and the connection must be closed (RFC 3261 §18.3).

        A message that is framed but does not parse gets its 4xx and the framer goes on with
        the messages behind it (``feed(b"")``, which may raise again for the next one). When
        a message turns the connection into a tunnel (a CONNECT 2xx), the bytes behind it are
        relayed, not framed.
        """
        framer, held = conn.framer, conn.held
        while True:
            pings = framer.pings
            try:
                messages = framer.feed(data)
            except FramingError as exc:
                self._pong(conn, framer.pings - pings)
                if self._deliver(conn, exc.messages):
                    return True
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
            if self._deliver(conn, messages):
                return True
            del held[: len(held) - framer.buffered]
            return True

    def _deliver(self, conn: Connection, messages: list[Message]) -> bool:
        """Handle ``messages``; True when one of them made ``conn`` a tunnel (the bytes behind
        it, still in ``conn.held``, are then relayed)."""
        for index, message in enumerate(messages):
            self._on_message(conn, message)
            tunnel = conn.tunnel
            if tunnel is not None:
                rest = _broken_frame(bytes(conn.held), index + 1)
                conn.held.clear()
                tunnel.relay_now(conn, rest)
                return True
        return False

    @staticmethod
    def _pong(conn: Connection, pings: int) -> None:
        for _ in range(pings):
            conn.send(b"\r\n")  # RFC 5626 §3.5.1 pong (refused on a reserved connection)

    def _forget(self, conn: Connection) -> None:
        conn.closed = True
        self.relay.connection_lost(conn)
        if self._connections.pop(conn.flow, None) is None:
            return
        self._by_id.pop(conn.ident, None)
        gone = self.location.flow_lost(conn.flow)
        for tx in [t for t, c in self._tx_connection.items() if c is conn]:
            del self._tx_connection[tx]
        log.info("flow %s closed; %d outbound binding(s) removed", conn.flow, len(gone))

    def flow_became_tunnel(self, conn: Connection) -> None:
        """``conn`` carries a tunnel now: its bindings go (the UA re-registers elsewhere)."""
        gone = self.location.flow_lost(conn.flow)
        log.info("flow %s is a tunnel; %d binding(s) removed", conn.flow, len(gone))

    def connection_by_id(self, ident: int) -> Connection | None:
        return self._by_id.get(ident)

    def connection_for_flow(self, flow: str) -> Connection | None:
        return self._connections.get(flow)

    def flow_to(self, contact: SipURI) -> str | None:
        """An open connection from ``contact``'s host and port (a binding registered without
        RFC 5626 outbound, reached by connection reuse); the newest one wins."""
        host = contact.host.strip("[]")
        secure = contact.scheme == "sips" or contact.transport == "tls"
        port = contact.port or (5061 if secure else 5060)
        for conn in reversed(self._connections.values()):
            if conn.peer == (host, port) and conn.usable and not conn.peer_proxy:
                return conn.flow
        return None

    def _answer_unparsed(self, conn: Connection, raw: bytes, error: ParseError) -> None:
        log.info("unparsable message on %s: %s", conn.flow, error.reason)
        response = error_response_for_raw(raw, error)
        if response is not None:
            conn.send(bytes(response))

    # -- observations -------------------------------------------------------------------------

    def _emit(self, observation: Observation) -> None:
        if self.observer is None:
            return
        try:
            self.observer(observation)
        except Exception:  # an observer's bug must not break the proxy
            log.exception("observer failed")

    def _observe(self, direction: str, peer: str, message: Message, data: bytes | None) -> None:
        if self.observer is not None:
            raw = bytes(message) if data is None else data
            at = asyncio.get_running_loop().time()
            self._emit(SipSeen(self.config.domain, direction, peer, message, raw, at))

    def observe_out(self, conn: _Peer, message: Message, data: bytes | None = None) -> None:
        where = conn.peer_name if isinstance(conn, Connection) else conn.flow
        self._observe("out", where, message, data)

    # -- messages -----------------------------------------------------------------------------

    def _on_message(self, conn: Connection, message: Message) -> None:
        self._observe("in", conn.peer_name, message, None)
        if isinstance(message, Response):
            self.relay.handle_response(conn, message)  # §16.7 (not ours: dropped, §18.1.2)
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s from %s\n%s", message.method, message.uri, conn.flow, loggable(message)
            )
        now = asyncio.get_running_loop().time()
        try:
            for_us = self._for_registrar(message)
        except ParseError as exc:
            response = error_response_for_raw(bytes(message), exc)
            if response is not None:
                conn.send(bytes(response))
            return
        if not for_us:
            self.relay.handle_request(conn, message, now)
            return
        try:
            actions = self.layer.receive(message, now, reliable=True)
        except ParseError as exc:
            response = error_response_for_raw(bytes(message), exc)
            if response is not None:
                conn.send(bytes(response))
            return
        self._run(actions, now, conn)

    def _for_registrar(self, request: Request) -> bool:
        """Whether the registrar itself answers ``request``: a REGISTER, an ACK or CANCEL of
        a transaction we answered, or a request addressed to us (no user, our host) with no
        Route beyond ours; everything else is the proxy's (RFC 3261 §16)."""
        if request.method == "REGISTER":
            return True
        if request.method == "ACK":
            return self.layer.find_server(server_key(request)) is not None
        if request.method == "CANCEL":
            return self.layer.find_server(server_key(request)) is not None or (
                self.layer.cancel_target(request) is not None
            )
        ours = self.relay.core.is_ours
        return ours(request.uri) and all(ours(r.uri) for r in request.routes)

    def reply(self, conn: _Peer, request: Request, response: Response, now: float) -> None:
        """Answer ``request`` ourselves through a server transaction (its ACK is absorbed)."""
        try:
            actions = self.layer.receive(request, now, reliable=isinstance(conn, Connection))
        except ParseError as exc:
            raw = error_response_for_raw(bytes(request), exc)
            if raw is not None:
                conn.send(bytes(raw))
            return
        for action in actions:
            if isinstance(action, NewRequest) and action.transaction is not None:
                self._tx_connection[action.transaction] = conn
                actions = self.layer.send_response(response, now, transaction=action.transaction)
                self._run(actions, now, conn)
                return
        self._run(actions, now, conn)  # a retransmission: the transaction answers it again

    def _run(self, actions: list[LayerAction], now: float, conn: _Peer | None) -> None:
        for action in actions:
            if isinstance(action, NewRequest):
                self._on_new_request(action, now, conn)
            elif isinstance(action, Send):
                tx = action.transaction
                target = (self._tx_connection.get(tx) if tx is not None else None) or conn
                message = action.message
                if isinstance(target, UDPPeer) and isinstance(message, Response):
                    sent = target.send_response(message)
                else:
                    sent = target is not None and target.send(bytes(message))
                if sent and target is not None:
                    self.observe_out(target, message)
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
        request = action.request
        response: Response | None
        if request.method == "CONNECT" and isinstance(conn, UDPPeer):
            response = self.relay.core.reply(
                request, 400, "sipsec needs a connection (TCP or TLS)"
            ).response
        else:
            response = self.core.handle_request(
                request, now, flow=conn.flow, cancels=action.cancels is not None
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
async def running_registrar(
    config: RegistrarConfig, *, observer: Observer | None = None
) -> AsyncIterator[Registrar]:
    """A started :class:`Registrar`, closed on exit (for tests and the demo network)."""
    registrar = Registrar(config, observer=observer)
    await registrar.start()
    try:
        yield registrar
    finally:
        await registrar.close()
