"""The asyncio half of the proxy: carries out :class:`~softphone.server.proxy.ProxyCore`'s
decisions over the registrar's connections (RFC 3261 §16.6, §16.7, §18.2.2) and runs the sipsec
CONNECT exchange up to the tunnel (draft-gurbani-sip-sipsec-01 §6.6).

* Next hops: one pool of TLS connections per routed domain, opened with our TLS identity as
  client certificate; the next hop's certificate must pass
  :func:`softphone.security.trust.evaluate` for ``Identity.domain(domain)`` against
  ``peer_anchors`` (RFC 5922 §7), else the request is answered 502 with the reason and never
  sent. Connections we opened are peer-proxy connections (no Digest challenge on them).
* Route hops (RFC 3261 §16.12: a Route URI whose host ``routes`` does not name, such as a
  Kamailio Record-Route ``sips:127.0.0.1:5061;transport=tls;lr``): a connection we already
  opened to that host and port carries the request; otherwise a new TLS connection to it,
  whose certificate must name the Route URI's host (an IP literal as an iPAddress
  subjectAltName), checked against the same ``peer_anchors``; a mismatch is a 502.
* CONNECT: the arrival connection and the forwarding connection are *reserved* until the final
  response (:attr:`Connection.reserved_by`); a 2xx opens a :class:`Tunnel` in the same step as
  it is written upstream; the bindings of both flows are dropped (they no longer carry SIP).
  A non-2xx final response releases both.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509

from softphone.security.certificates import Identity, SecurityError
from softphone.security.trust import Problem, Purpose, evaluate
from softphone.server.connection import Connection
from softphone.server.observe import Observer
from softphone.server.proxy import ProxyCore, Reply, Source, ToDomain, ToFlow
from softphone.server.tunnel import Tunnel
from softphone.sip.errors import ParseError
from softphone.sip.message import Request, Response
from softphone.transport.stream import TLSStream, TLSStreamError, open_tls_connection
from softphone.transport.tls import TLSConfig

if TYPE_CHECKING:
    from softphone.server.registrar import Registrar

__all__ = ["NextHopError", "ProxyRelay"]

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 10.0


class NextHopError(Exception):
    """The next hop could not be reached or failed its certificate check; ``reason`` is the
    Reason-Phrase of the 502."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(eq=False)
class _Pending:
    """A CONNECT forwarded and not yet answered with a final response."""

    upstream: Connection
    downstream: Connection | None
    request: Request
    timer: asyncio.TimerHandle | None = None


class ProxyRelay:
    """Forwarding, response routing and tunnels for one :class:`Registrar`."""

    def __init__(
        self,
        registrar: Registrar,
        *,
        observer: Observer | None = None,
    ) -> None:
        self.registrar = registrar
        self.config = registrar.config
        self.core = ProxyCore(registrar.config, registrar.location)
        self.observer = observer
        #: Live tunnels by id, with their byte counters (:class:`Tunnel`).
        self.tunnels: dict[int, Tunnel] = {}
        #: Tunnels opened since start (closed ones included).
        self.tunnels_opened = 0
        #: Called with (tunnel_id, byte count) for every relayed chunk, e.g.
        #: ``ProxyView.add_relayed``.
        self.on_relayed: Callable[[int, int], None] | None = None
        #: Seconds a forwarded CONNECT may wait for its final response (64·T1, RFC 3261
        #: Timer B/F) before the caller gets 408 and both connections are released.
        self.connect_timeout = 32.0
        self._pending: dict[str, _Pending] = {}
        self._peers: dict[str, list[Connection]] = {}
        self._connecting: dict[tuple[str, str, int], asyncio.Task[Connection]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._client_configs: dict[str, TLSConfig] = {}

    @property
    def peer_connections(self) -> list[Connection]:
        """The connections we opened to next hops (routed domains and Route hops)."""
        return [conn for conns in self._peers.values() for conn in conns]

    # -- requests -----------------------------------------------------------------------------

    def handle_request(self, conn: Connection, request: Request, now: float) -> None:
        """Route a request that is not for the registrar itself."""
        source = Source(conn.ident, conn.flow, conn.transport, conn.peer_proxy)
        decision = self.core.route(
            request, now, source, usable=self._flow_usable, flow_to=self.registrar.flow_to
        )
        if isinstance(decision, Reply):
            self.registrar.reply(conn, request, decision.response, now)
            return
        branch = decision.request.top_via.branch or ""
        connect = request.method == "CONNECT"
        if connect:
            conn.reserved_by = branch
            pending = _Pending(conn, None, request)
            pending.timer = asyncio.get_running_loop().call_later(
                self.connect_timeout, self._connect_timed_out, branch
            )
            self._pending[branch] = pending
        if isinstance(decision, ToFlow):
            target = self.registrar.connection_for_flow(decision.flow)
            if target is None or not target.usable:
                self._unreserve(branch)
                self.registrar.reply(
                    conn, request, self.core.reply(request, 480, "Flow gone").response, now
                )
                return
            self._send_request(target, decision.request, branch if connect else None)
            return
        self._spawn(self._forward_to_domain(conn, request, decision, branch if connect else None))

    async def _forward_to_domain(
        self, conn: Connection, request: Request, decision: ToDomain, branch: str | None
    ) -> None:
        try:
            target = await self._peer_connection(decision, exclusive=branch is not None)
        except NextHopError as exc:
            log.info("next hop for %s: %s", decision.domain, exc.reason)
            if branch is not None:
                self._unreserve(branch)
            now = asyncio.get_running_loop().time()
            reply = self.core.reply(request, 502, exc.reason).response
            self.registrar.reply(conn, request, reply, now)
            return
        if branch is not None:
            pending = self._pending.get(branch)
            if pending is None:  # the caller went away meanwhile
                return
        self._send_request(target, decision.request, branch)

    def _send_request(self, target: Connection, request: Request, branch: str | None) -> None:
        if branch is not None:
            target.reserved_by = branch
            pending = self._pending.get(branch)
            if pending is not None:
                pending.downstream = target
        data = bytes(request)
        if target.send(data, branch=branch):
            self.registrar.observe_out(target, request, data)
        elif branch is not None:
            self._unreserve(branch)

    def _flow_usable(self, flow: str) -> bool:
        conn = self.registrar.connection_for_flow(flow)
        return conn is not None and conn.usable

    # -- responses ----------------------------------------------------------------------------

    def handle_response(self, conn: Connection, response: Response) -> None:
        """Send a response back over its request's connection (§16.7, §18.2.2)."""
        upstream = self.core.response_target(response)
        if upstream is None:
            log.info("stray response on %s dropped (not our Via)", conn.flow)
            return
        target = self.registrar.connection_by_id(upstream.connection_id)
        pending = self._pending.get(upstream.branch)
        relayed = upstream.response
        data = bytes(relayed)
        if pending is None or pending.downstream is not conn:
            if target is not None and target.send(data):
                self.registrar.observe_out(target, relayed, data)
            return
        code = relayed.status_code
        if code < 200:
            if target is not None and target.send(data, branch=upstream.branch):
                self.registrar.observe_out(target, relayed, data)
            return
        del self._pending[upstream.branch]
        if pending.timer is not None:
            pending.timer.cancel()
        if target is None or target is not pending.upstream:
            self._release(pending)
            return
        if code >= 300:
            self._release(pending)
            if target.send(data):
                self.registrar.observe_out(target, relayed, data)
            return
        # 2xx: write it and go transparent in the same step (the caller's ClientHello follows
        # the instant it reads the 200; nothing may be framed as SIP after it).
        if not target.send(data, branch=upstream.branch):
            self._release(pending)
            return
        self.registrar.observe_out(target, relayed, data)
        self._open_tunnel(target, conn, str(pending.request.uri))

    def _open_tunnel(self, upstream: Connection, downstream: Connection, uri: str) -> None:
        self.tunnels_opened += 1
        tunnel = Tunnel(
            self.tunnels_opened,
            upstream,
            downstream,
            proxy=self.config.domain,
            request_uri=uri,
            idle_timeout=self.config.tunnel_idle_timeout,
            observer=self.observer,
            on_relayed=self._relayed,
            on_closed=self._tunnel_closed,
        )
        self.tunnels[tunnel.id] = tunnel
        tunnel.open()
        for side in (upstream, downstream):
            self.registrar.flow_became_tunnel(side)
            if side.domain is not None and side in self._peers.get(side.domain, []):
                self._peers[side.domain].remove(side)
        if upstream.held:  # bytes the caller sent behind the CONNECT, unframed
            data = bytes(upstream.held)
            upstream.held.clear()
            tunnel.relay_now(upstream, data)

    def _tunnel_closed(self, tunnel: Tunnel) -> None:
        self.tunnels.pop(tunnel.id, None)

    def _relayed(self, tunnel_id: int, count: int) -> None:
        if self.on_relayed is not None:
            self.on_relayed(tunnel_id, count)

    def _connect_timed_out(self, branch: str) -> None:
        pending = self._pending.pop(branch, None)
        if pending is None:
            return
        self._release(pending)
        request = pending.request
        log.info("CONNECT to %s: no final response in %g s", request.uri, self.connect_timeout)
        now = asyncio.get_running_loop().time()
        reply = self.core.reply(request, 408, "No final response to the CONNECT").response
        self.registrar.reply(pending.upstream, request, reply, now)

    def _release(self, pending: _Pending) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
        for side in (pending.upstream, pending.downstream):
            if side is not None:
                side.reserved_by = None

    def _unreserve(self, branch: str) -> None:
        pending = self._pending.pop(branch, None)
        if pending is not None:
            self._release(pending)

    def connection_lost(self, conn: Connection) -> None:
        """Forget pending CONNECTs over ``conn`` (the other side is released)."""
        for branch, pending in list(self._pending.items()):
            if conn in (pending.upstream, pending.downstream):
                del self._pending[branch]
                self._release(pending)
        if conn.domain is not None and conn in self._peers.get(conn.domain, []):
            self._peers[conn.domain].remove(conn)

    # -- next hops ----------------------------------------------------------------------------

    async def _peer_connection(self, decision: ToDomain, *, exclusive: bool) -> Connection:
        """A usable TLS connection to the next hop (new or reused): the proxy of a domain in
        ``routes``, or the host and port of a Route URI (``decision.route_hop``)."""
        reused = self._reusable(decision)
        if reused is not None:
            return reused
        key = (decision.domain, decision.host, decision.port)
        task = self._connecting.get(key)
        if task is None or exclusive:
            task = asyncio.get_running_loop().create_task(
                self._open_peer(decision.domain, decision.host, decision.port)
            )
            if not exclusive:
                self._connecting[key] = task
                task.add_done_callback(lambda _t: self._connecting.pop(key, None))
        conn = await asyncio.shield(task)
        if not conn.usable:  # another CONNECT took it meanwhile
            return await self._peer_connection(decision, exclusive=True)
        return conn

    def _reusable(self, decision: ToDomain) -> Connection | None:
        """An open connection that may carry the request. For a domain in ``routes``: one we
        opened to its proxy. For a Route hop: any connection we opened to that host and port
        (RFC 3261 §18.1.1: an open connection to the destination is used), e.g. the one to
        Kamailio as ``example.test`` when its Record-Route names ``127.0.0.1:5061``. A
        connection the peer opened to us is not reused: its certificate, if any, was checked
        only against ``routes`` (RFC 5923 aliases are not implemented)."""
        if not decision.route_hop:
            return next((c for c in self._peers.get(decision.domain, []) if c.usable), None)
        address = (decision.host, decision.port)
        for conns in self._peers.values():
            for conn in conns:
                if conn.usable and conn.peer == address:
                    return conn
        return None

    async def _open_peer(self, domain: str, host: str, port: int) -> Connection:
        """A new TLS connection to ``host``:``port`` whose certificate proves ``domain``
        (RFC 5922 §7.3, checked with ``peer_anchors``); :class:`NextHopError` otherwise."""
        anchors = self.config.peer_anchors
        tls = self._client_configs.get(domain)
        if tls is None:  # one per domain: its SSL.Context is built once (shared_context)
            chain, key = self.config.tls_identity()
            tls = TLSConfig.client(
                server_name=domain,  # no SNI for an IP literal (RFC 6066 §3)
                certificate_chain=chain,
                private_key=key,
                trust_anchors=anchors,
            )
            self._client_configs[domain] = tls
        try:
            stream = await open_tls_connection(host, port, tls, timeout=_CONNECT_TIMEOUT)
        except (OSError, TimeoutError, TLSStreamError) as exc:
            raise NextHopError(
                f"Bad Gateway: cannot reach the next hop {domain} at {host}:{port}: {exc}"
            ) from exc
        try:
            problems = _certificate_problems(stream.peer_chain(), domain, anchors)
        except (SecurityError, ValueError) as exc:
            stream.close()
            raise NextHopError(f"Bad Gateway: certificate check failed: {exc}") from exc
        if problems:
            stream.close()
            names = ", ".join(p.name for p in problems)
            raise NextHopError(f"Bad Gateway: next hop {host}:{port} is not {domain} ({names})")
        conn = self.registrar.adopt_outgoing(stream, (host, port), domain)
        self._peers.setdefault(domain, []).append(conn)
        return conn

    def peer_domain(self, stream: TLSStream) -> str | None:
        """The routed domain whose proxy ``stream``'s client certificate proves (RFC 5922 §7.2:
        checked against ``peer_anchors`` for the domain), or None for a client."""
        chain = stream.peer_chain()
        if not chain or not self.config.peer_anchors:
            return None
        now = dt.datetime.now(dt.UTC)
        for domain in self.core.routes:
            try:
                report = evaluate(
                    chain,
                    Identity.domain(domain),
                    now=now,
                    anchors=self.config.peer_anchors,
                    purpose=Purpose.CLIENT,
                )
            except (SecurityError, ValueError):
                continue
            if report.acceptable:
                return domain
        return None

    def _spawn(self, coro: object) -> None:
        assert asyncio.iscoroutine(coro)
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks) + list(self._connecting.values()):
            task.cancel()
        for pending in list(self._pending.values()):
            self._release(pending)
        self._pending.clear()
        for tunnel in list(self.tunnels.values()):
            tunnel.close("proxy stopped")
        self._tasks.clear()

    def route_error(self, request: Request, exc: ParseError) -> Response:
        return self.core.reply(request, exc.status_code, exc.reason).response


def _certificate_problems(
    chain: Sequence[x509.Certificate], name: str, anchors: Sequence[x509.Certificate]
) -> list[Problem]:
    """What is wrong with a next hop's ``chain`` for ``name`` (empty: it may carry requests).

    A domain name is checked by :func:`evaluate` (RFC 5922 §7.3). An IP literal (a Route URI
    such as Kamailio's ``sips:127.0.0.1:5061``) must be an iPAddress subjectAltName of the
    leaf (RFC 5280 §4.2.1.6; a dNSName spelling the address does not count); the rest of the
    report (chain, validity, anchors) applies unchanged.
    """
    report = evaluate(
        chain,
        Identity.domain(name),
        now=dt.datetime.now(dt.UTC),
        anchors=anchors,
        purpose=Purpose.SERVER,
    )
    problems = [f.problem for f in report.findings]
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return [] if report.acceptable else problems
    problems = [p for p in problems if p not in (Problem.NAME_MISMATCH, Problem.NO_NAME)]
    if not chain or address not in _san_addresses(chain[0]):
        problems.insert(0, Problem.NAME_MISMATCH)
    return problems


def _san_addresses(cert: x509.Certificate) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    values = san.get_values_for_type(x509.IPAddress)
    return [a for a in values if isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address)]
