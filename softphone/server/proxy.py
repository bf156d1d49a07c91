"""Routing decisions of the proxy (RFC 3261 §16) and the sipsec relay (draft-gurbani-sip-sipsec-01
§6.6), sans-I/O: a request, ``now`` and where it came from in; a :data:`Decision` out.

:class:`ProxyCore` is transaction-stateless (§16.11): it keeps no state per request. What lets
responses find their way back over the connection their request came in on (§18.2.2) is the
branch of the Via it adds (§16.6 step 8): ``z9hG4bK`` ``sp`` ⟨connection id⟩ ``.`` ⟨MAC⟩, where
the MAC covers the connection id and the branch of the Via below ours. A response is routed
back (:meth:`ProxyCore.response_target`) only when the MAC checks out. The branch is a function
of the incoming branch, so a CANCEL and the ACK for a non-2xx get the branch of their INVITE
(§16.11, "the same branch for the CANCEL").

Request processing, in the order of §16.3-§16.6:

1. ``Max-Forwards: 0`` → 483 (§16.3 step 3); ``Proxy-Require`` tags other than ``sipsec`` →
   420 with ``Unsupported`` (§16.3 step 5, §8.2.2.3).
2. CONNECT (draft §6.3, §6.6): only over a connection (400 over UDP) and only with
   ``Proxy-Require: sipsec`` (400 otherwise); then routed like an INVITE.
3. Authentication of outgoing requests (``authenticate_outgoing``): an out-of-dialog request
   from a client (not a peer proxy) whose Request-URI is not in our domain needs Digest
   ``Proxy-Authorization`` for a local user (407 otherwise, §22.3). Our realm's credentials
   are removed before forwarding: the next proxy never sees the caller's Digest username.
4. Route (§16.4): our own Route values (host = our domain, one of our addresses, or our
   ``record_route_host``) are popped; a remaining Route is the next hop (loose routing,
   §16.12, §16.6 step 7), whatever its host: a domain in ``routes`` goes to that domain's
   proxy; any other host is reached at the Route URI's own host and port over TLS (a
   ``sips:`` or ``transport=tls`` URI, or one with no transport: this proxy forwards over TLS
   only; ``transport=tcp``/``udp`` is 502), its certificate checked for that host (RFC 5922
   §7.3; an IP literal must be an iPAddress subjectAltName) — :class:`ToDomain` with
   ``route_hop``. That is how a dialog's in-dialog requests follow another proxy's
   Record-Route, e.g. Kamailio's ``sips:127.0.0.1:5061;transport=tls;lr``.
5. Target (§16.5): a Request-URI that is the contact of a registration goes over that
   binding's flow (RFC 5626 §5.3: in-dialog requests to a UA behind its flow); our domain →
   the location service (404 unknown user, 480 no usable binding). A binding without an
   outbound flow is reached over an open connection from its contact's address, if any
   (connection reuse); we do no DNS for contacts. A domain in ``routes`` →
   that domain's proxy over TLS; anything else → 404 with the reason.
6. ``sips:`` (§26.2.2): every hop TLS; a target reachable only over TCP is 480 with the reason.
7. Forwarding (§16.6): Max-Forwards decremented (70 when absent), Record-Route with ``lr``
   for dialog-creating requests when ``record_route`` (its host is our domain, or
   ``record_route_host`` with the port of our TLS listener, for peers that cannot resolve our
   domain), our Via on top.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from softphone.server.config import RegistrarConfig
from softphone.server.location import Binding, LocationService, canonical_aor
from softphone.sip.dialog import new_tag
from softphone.sip.digest import parse_credentials
from softphone.sip.digest_server import DigestServer
from softphone.sip.errors import ParseError, SipError
from softphone.sip.headers import MAGIC_COOKIE, NameAddr, parse_option_tags, parse_via
from softphone.sip.message import Headers, Request, Response
from softphone.sip.uri import URI, SipURI

__all__ = [
    "DIALOG_CREATING",
    "Decision",
    "ProxyCore",
    "Reply",
    "Source",
    "ToDomain",
    "ToFlow",
    "Upstream",
    "parse_route_target",
]

#: Methods whose requests create dialogs and so get our Record-Route (§16.6 step 4).
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
#: Proxy-Require option tags this proxy implements (draft §6.6).
PROXY_OPTIONS = frozenset({"sipsec"})
_BRANCH_PREFIX = MAGIC_COOKIE + "sp"
_DEFAULT_MAX_FORWARDS = 70


@dataclass(frozen=True)
class Source:
    """Where a request came from: the connection's id and flow name, its transport (``tls``,
    ``tcp``, ``udp``) and whether it is a configured peer proxy (not a client)."""

    connection_id: int
    flow: str
    transport: str
    peer_proxy: bool = False


@dataclass(frozen=True)
class Reply:
    """Answer the request ourselves with ``response``."""

    response: Response


@dataclass(frozen=True)
class ToFlow:
    """Send ``request`` over the registered flow ``flow`` (RFC 5626 §5.3)."""

    request: Request
    flow: str
    binding: Binding


@dataclass(frozen=True)
class ToDomain:
    """Send ``request`` to the proxy of ``domain`` at ``host``:``port`` over TLS.

    ``route_hop``: the next hop is a Route URI's host that ``routes`` does not name (§16.12);
    ``domain`` is then that host (a name or an IP literal), the identity its certificate must
    carry (RFC 5922 §7.3), and an open connection to ``host``:``port`` may carry the request.
    """

    request: Request
    domain: str
    host: str
    port: int
    route_hop: bool = False


Decision = Reply | ToFlow | ToDomain


@dataclass(frozen=True)
class Upstream:
    """Where a response goes back: the connection id from our branch, the response with our
    Via popped (§16.7 step 9), and our branch (the key of a pending CONNECT)."""

    connection_id: int
    response: Response
    branch: str


def parse_route_target(text: str) -> tuple[str, int]:
    """``host:port`` of a ``routes`` entry (``[::1]:5061`` too); ValueError otherwise."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"route target {text!r} is not host:port")
    return host.strip("[]"), int(port)


class ProxyCore:
    """Routing decisions for one domain (see the module docstring)."""

    def __init__(
        self,
        config: RegistrarConfig,
        location: LocationService,
        *,
        secret: bytes | None = None,
    ) -> None:
        self.config = config
        self.domain = config.domain.lower()
        self.location = location
        self.digest = DigestServer(
            config.effective_realm,
            config.credentials(),
            proxy=True,
            algorithms=config.algorithms,
            nonce_lifetime=config.nonce_lifetime,
        )
        self.routes = {d.lower(): parse_route_target(t) for d, t in config.routes.items()}
        self._users = frozenset(config.users)
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        #: (host, port) of our own listeners: a Route naming one of them is ours (§16.4).
        self.addresses: set[tuple[str, int]] = set()
        #: Port of our TLS listener, carried by a Record-Route with ``record_route_host``.
        self.record_route_port: int | None = None
        self.record_route_host = (config.record_route_host or "").lower().strip("[]") or None
        self._flow_to: Callable[[SipURI], str | None] = lambda uri: None

    # -- requests -----------------------------------------------------------------------------

    def route(
        self,
        request: Request,
        now: float,
        source: Source,
        *,
        usable: Callable[[str], bool] = lambda flow: True,
        flow_to: Callable[[SipURI], str | None] = lambda uri: None,
    ) -> Decision:
        """The decision for ``request`` (never raises for bad input: a 4xx Reply instead).

        ``usable(flow)`` says whether a registered flow may carry a request now (it is
        connected, and not reserved by a pending CONNECT nor turned into a tunnel).
        ``flow_to(contact)`` names an open connection from the contact's address, for
        bindings registered without RFC 5626 outbound (connection reuse, RFC 5923 §2).
        """
        self._flow_to = flow_to
        try:
            return self._route(request, now, source, usable)
        except ParseError as exc:
            return self.reply(request, exc.status_code, exc.reason)

    def _route(
        self, request: Request, now: float, source: Source, usable: Callable[[str], bool]
    ) -> Decision:
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards <= 0:
            return self.reply(request, 483)  # §16.3 step 3
        unsupported = [
            tag
            for tag in parse_option_tags(request.headers.get_all("Proxy-Require"))
            if tag not in PROXY_OPTIONS
        ]
        if unsupported:
            response = self.reply(request, 420)  # §16.3 step 5
            response.response.headers.add("Unsupported", ", ".join(unsupported))
            return response
        if request.method == "CONNECT":
            if source.transport == "udp":
                return self.reply(request, 400, "sipsec needs a connection (TCP or TLS)")
            if "sipsec" not in parse_option_tags(request.headers.get_all("Proxy-Require")):
                return self.reply(request, 400, "CONNECT without Proxy-Require: sipsec")
        if not isinstance(request.uri, SipURI):
            return self.reply(request, 416)
        secure = request.uri.scheme == "sips"
        if secure and source.transport != "tls":
            return self.reply(request, 480, "sips: request arrived without TLS")
        challenge = self._authenticate(request, now, source)
        if challenge is not None:
            return challenge
        routes = request.routes
        while routes and self.is_ours(routes[0].uri):
            routes = routes[1:]  # §16.4: our own Route value is removed
        next_hop = routes[0].uri if routes else request.uri
        if not isinstance(next_hop, SipURI):
            return self.reply(request, 416, "Route is not a SIP URI")
        target = self._target(request, next_hop, now, usable, secure, via_route=bool(routes))
        if isinstance(target, Reply):
            return target
        if isinstance(target, tuple) and isinstance(target[0], Binding):
            binding, flow = target
            forwarded = self._forwarded(request, routes, source, flow, secure)
            if not routes:
                forwarded.uri = binding.uri  # §16.6 step 2: the target replaces the R-URI
            return ToFlow(forwarded, flow, binding)
        if isinstance(target, ToDomain):  # a Route URI's own host and port (§16.12)
            forwarded = self._forwarded(request, routes, source, None, secure)
            return ToDomain(forwarded, target.domain, target.host, target.port, route_hop=True)
        assert isinstance(target[0], str) and isinstance(target[1], tuple)
        forwarded = self._forwarded(request, routes, source, None, secure)
        domain, (host, port) = target
        return ToDomain(forwarded, domain, host, port)

    def _flow_of(self, binding: Binding) -> str | None:
        if binding.flow is not None:
            return binding.flow
        return self._flow_to(binding.uri) if isinstance(binding.uri, SipURI) else None

    def _authenticate(self, request: Request, now: float, source: Source) -> Reply | None:
        """§22.3: 407 for an unauthenticated outgoing request from a client (see docstring)."""
        if not self.config.authenticate_outgoing or source.peer_proxy:
            return None
        if request.method in ("ACK", "CANCEL") or request.to.tag is not None:
            return None  # in-dialog and hop-by-hop requests are not challenged
        uri = request.uri
        assert isinstance(uri, SipURI)
        if uri.host.lower() == self.domain or self._binding_for_contact(uri, now) is not None:
            return None  # for a local user: an inbound call
        verdict = self.digest.verify(
            request.method,
            str(uri),
            request.headers.get_all("Proxy-Authorization"),
            now,
            request.body,
        )
        if verdict.ok:
            return None
        if verdict.status_code != 407:
            return self.reply(request, verdict.status_code or 400, verdict.reason)
        reply = self.reply(request, 407)
        for name, value in self.digest.challenge(now, stale=verdict.stale):
            reply.response.headers.add(name, value)
        return reply

    def _target(
        self,
        request: Request,
        uri: SipURI,
        now: float,
        usable: Callable[[str], bool],
        secure: bool,
        *,
        via_route: bool = False,
    ) -> tuple[Binding, str] | tuple[str, tuple[str, int]] | ToDomain | Reply:
        host = uri.host.lower()
        binding = self._binding_for_contact(uri, now)
        if binding is not None:
            candidates = [binding]
        elif host == self.domain and uri.user:
            aor = canonical_aor(uri)
            candidates = self.location.bindings(aor, now)
            if not candidates:
                if uri.user not in self._users:
                    return self.reply(request, 404, "User Not Found")
                return self.reply(request, 480, "Not Registered")
        elif host in self.routes:
            return host, self.routes[host]
        elif host == self.domain or self.is_ours(uri):
            return self.reply(request, 404, "No user in the Request-URI")
        elif via_route:
            return self._route_hop(request, uri)
        else:
            return self.reply(request, 404, f"No route to {host}")
        flows = [(b, f) for b in candidates if (f := self._flow_of(b)) is not None]
        if not flows:
            # A contact with no connection to reuse would need DNS we do not do here.
            return self.reply(request, 480, "No connection to the contact")
        if secure:
            flows = [(b, f) for b, f in flows if f.startswith("tls:")]
            if not flows:
                return self.reply(request, 480, "sips: target reachable only without TLS")
        live = [(b, f) for b, f in flows if usable(f)]
        if not live:
            return self.reply(request, 480, "Temporarily Unavailable: flow busy or gone")
        return live[-1]  # the most recent registration

    def _route_hop(self, request: Request, uri: SipURI) -> ToDomain | Reply:
        """The next hop named by a Route URI outside ``routes`` (§16.12; module docstring).
        The request in the result is a placeholder: the caller builds the forwarded copy."""
        transport = (uri.transport or "").lower()
        if uri.scheme != "sips" and transport not in ("", "tls"):
            return self.reply(
                request,
                502,
                f"Bad Gateway: next hop {uri.host} needs {transport.upper()}; "
                "this proxy forwards over TLS only",
            )
        host = uri.host.lower().strip("[]")
        return ToDomain(request, host, host, uri.port or 5061, route_hop=True)

    def _binding_for_contact(self, uri: SipURI, now: float) -> Binding | None:
        """The live binding whose contact ``uri`` is, compared as RFC 3261 §19.1.4 says: a
        parameter only one side has does not count, so a contact another proxy decorated
        (Kamailio's ``;alias=127.0.0.1~5061~3``, RFC 3261 §19.1.1 leaves it free to) still
        reaches its binding."""
        if uri.host.lower() == self.domain and not uri.params:
            return None
        for binding in self.location:
            if binding.alive(now) and binding.uri.equivalent(uri):
                return binding
        return None

    def _forwarded(
        self,
        request: Request,
        routes: list[NameAddr],
        source: Source,
        flow: str | None,
        secure: bool,
    ) -> Request:
        """The copy of ``request`` to send on (§16.6 steps 1-8)."""
        headers = Headers()
        realm = self.config.effective_realm
        for name, value in request.headers:
            if name == "Route":
                continue
            if name == "Proxy-Authorization" and _credentials_realm(value) == realm:
                continue  # our realm's credentials stop here (privacy)
            headers.add(name, value)
        for route in routes:
            headers.add("Route", str(route))
        max_forwards = request.max_forwards
        headers.set(
            "Max-Forwards",
            str(_DEFAULT_MAX_FORWARDS if max_forwards is None else max_forwards - 1),
        )
        if (
            self.config.record_route
            and request.method in DIALOG_CREATING
            and request.to.tag is None
        ):
            headers.prepend("Record-Route", f"<{self.record_route_uri(secure)}>")
        transport = "TLS" if flow is None else flow.partition(":")[0].upper()
        branch = self.branch(source.connection_id, request.top_via.branch or "")
        headers.prepend("Via", f"SIP/2.0/{transport} {self.domain};branch={branch}")
        return Request(request.method, request.uri, headers, request.body)

    # -- responses ----------------------------------------------------------------------------

    def branch(self, connection_id: int, incoming_branch: str) -> str:
        """Our Via branch for a request from connection ``connection_id`` (module docstring)."""
        return f"{_BRANCH_PREFIX}{connection_id}.{self._mac(connection_id, incoming_branch)}"

    def response_target(self, response: Response) -> Upstream | None:
        """Where ``response`` goes (None: not ours, drop it, §16.7 step 2)."""
        lines = response.headers.get_all("Via")
        if len(lines) < 2:
            return None
        try:
            ours, below = parse_via(lines[0]), parse_via(lines[1])
        except ParseError:
            return None
        branch = ours.branch or ""
        if not branch.startswith(_BRANCH_PREFIX):
            return None
        ident, _, mac = branch[len(_BRANCH_PREFIX) :].partition(".")
        if not ident.isdigit() or len(ident) > 12:
            return None
        if not hmac.compare_digest(mac, self._mac(int(ident), below.branch or "")):
            return None
        headers = Headers()
        popped = False
        for name, value in response.headers:
            if name == "Via" and not popped:
                popped = True
                rest = lines[1:]
                for line in rest:
                    headers.add("Via", line)
                continue
            if name == "Via":
                continue
            headers.add(name, value)
        relayed = Response(response.status_code, response.reason, headers, response.body)
        return Upstream(int(ident), relayed, branch)

    def _mac(self, connection_id: int, incoming_branch: str) -> str:
        data = f"{connection_id}|{incoming_branch}".encode()
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()[:20]

    # -- helpers ------------------------------------------------------------------------------

    def record_route_uri(self, secure: bool) -> str:
        """Our Record-Route URI (§16.6 step 4): ``sip(s):<domain>;transport=tls;lr``, or with
        ``record_route_host`` that host and our TLS port, so a peer proxy without DNS for our
        domain (Kamailio in the interop tests) can still send the dialog's requests back."""
        scheme = "sips" if secure else "sip"
        rr_host = self.record_route_host
        if rr_host is None:
            return f"{scheme}:{self.domain};transport=tls;lr"
        shown = f"[{rr_host}]" if ":" in rr_host else rr_host
        port = f":{self.record_route_port}" if self.record_route_port else ""
        return f"{scheme}:{shown}{port};transport=tls;lr"

    def is_ours(self, uri: URI) -> bool:
        """Whether ``uri`` names this proxy (a Route it must pop, §16.4)."""
        if not isinstance(uri, SipURI) or uri.user:
            return False
        host = uri.host.lower().strip("[]")
        if host == self.domain:
            return True
        if host == self.record_route_host and uri.port in (self.record_route_port, None):
            return True
        return any(host == h and uri.port in (p, None) for h, p in self.addresses)

    def reply(self, request: Request, code: int, reason: str | None = None) -> Reply:
        try:
            response = Response.for_request(request, code, _safe(reason), to_tag=new_tag())
        except SipError:
            raise ParseError("request lacks the headers to answer it") from None
        return Reply(response)


def _credentials_realm(value: str) -> str | None:
    try:
        return parse_credentials(value).realm
    except SipError:
        return None


def _safe(reason: str | None) -> str | None:
    if reason is None:
        return None
    return "".join(c if c.isprintable() else " " for c in reason)[:120].strip() or None
