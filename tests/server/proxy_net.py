"""Two proxies (atlanta.test → biloxi.test, the SIP trapezoid) and raw TLS phones, for the
proxy and sipsec relay tests. Everything is real: TLS sockets on 127.0.0.1, certificates from
one test CA, Digest through the DigestClient."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from softphone.server.config import ListenAddress, RegistrarConfig
from softphone.server.observe import ProxyView
from softphone.server.registrar import Registrar, running_registrar
from softphone.sip.dialog import new_call_id, new_tag
from softphone.sip.digest import DigestClient
from softphone.sip.framing import StreamFramer
from softphone.sip.message import Headers, Message, Request, Response
from softphone.sip.transaction_layer import new_branch
from softphone.sip.uri import parse_uri
from softphone.transport.stream import TCPStream, TLSStream, open_tls_connection
from softphone.transport.tls import TLSConfig
from tests.transport.certs import Identity, issue, make_ca

WAIT = 10.0
USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Pki:
    ca: Identity
    atlanta: Identity
    biloxi: Identity
    alice: Identity
    bob: Identity
    other_ca: Identity = field(default_factory=lambda: make_ca("Other CA"))


def make_pki() -> Pki:
    ca = make_ca("Proxy Test CA")
    return Pki(
        ca,
        issue(ca, "atlanta.test"),
        issue(ca, "biloxi.test"),
        issue(ca, "alice"),
        issue(ca, "bob"),
    )


def proxy_config(
    domain: str, identity: Identity, ca: Identity, **changes: object
) -> RegistrarConfig:
    options: dict[str, object] = {
        "domain": domain,
        "users": USERS,
        "listen": (ListenAddress("127.0.0.1", 0, "tls"),),
        "certificate_chain": identity.chain,
        "private_key": identity.key,
        "peer_anchors": (ca.cert,),
    }
    options.update(changes)
    return RegistrarConfig(**options)  # type: ignore[arg-type]


@dataclass
class Network:
    atlanta: Registrar
    biloxi: Registrar
    atlanta_view: ProxyView
    biloxi_view: ProxyView
    pki: Pki


@contextlib.asynccontextmanager
async def trapezoid(
    pki: Pki,
    *,
    biloxi_identity: Identity | None = None,
    **changes: object,
) -> AsyncIterator[Network]:
    """atlanta.test and biloxi.test, each routing to the other."""
    atlanta_port, biloxi_port = free_port(), free_port()
    views = ProxyView("atlanta.test"), ProxyView("biloxi.test")
    atlanta_config = proxy_config(
        "atlanta.test",
        pki.atlanta,
        pki.ca,
        listen=(ListenAddress("127.0.0.1", atlanta_port, "tls"),),
        routes={"biloxi.test": f"127.0.0.1:{biloxi_port}"},
        **changes,
    )
    biloxi_config = proxy_config(
        "biloxi.test",
        biloxi_identity or pki.biloxi,
        pki.ca,
        listen=(ListenAddress("127.0.0.1", biloxi_port, "tls"),),
        routes={"atlanta.test": f"127.0.0.1:{atlanta_port}"},
        **changes,
    )
    async with (
        running_registrar(atlanta_config, observer=views[0].observe) as atlanta,
        running_registrar(biloxi_config, observer=views[1].observe) as biloxi,
    ):
        atlanta.relay.on_relayed = views[0].add_relayed
        biloxi.relay.on_relayed = views[1].add_relayed
        yield Network(atlanta, biloxi, views[0], views[1], pki)


class Phone:
    """A raw SIP user agent over one TLS connection to its proxy (RFC 5626 outbound)."""

    def __init__(self, stream: TLSStream, user: str, domain: str, password: str) -> None:
        self.stream = stream
        self.user = user
        self.domain = domain
        self.aor = f"sip:{user}@{domain}"
        self.contact_uri = f"sip:{user}@{user}.invalid;transport=tls;ob"
        self.password = password
        self.digest = DigestClient(user, password)
        self.framer = StreamFramer()
        self.inbox: list[Message] = []
        self.cseq = 0

    @classmethod
    async def connect(cls, registrar: Registrar, user: str, password: str | None = None) -> Phone:
        stream = await open_tls_connection(
            "127.0.0.1",
            registrar.tls_port,
            TLSConfig.client(server_name=registrar.config.domain),
            timeout=WAIT,
        )
        return cls(stream, user, registrar.config.domain, password or USERS[user])

    def close(self) -> None:
        self.stream.close()

    def send(self, message: Message) -> None:
        self.stream.write(bytes(message))

    async def receive(self) -> Message:
        while not self.inbox:
            data = await asyncio.wait_for(self.stream.read(), WAIT)
            if not data:
                raise ConnectionResetError("the proxy closed the connection")
            self.inbox += self.framer.feed(data)
        return self.inbox.pop(0)

    async def request_in(self) -> Request:
        message = await self.receive()
        assert isinstance(message, Request), message
        return message

    async def response(self) -> Response:
        message = await self.receive()
        assert isinstance(message, Response), message
        return message

    async def final(self) -> Response:
        while True:
            response = await self.response()
            if response.status_code >= 200:
                return response

    def new_request(
        self,
        method: str,
        uri: str,
        *,
        to: str | None = None,
        call_id: str | None = None,
        from_tag: str | None = None,
        cseq: int | None = None,
        extra: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        branch: str | None = None,
    ) -> Request:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        headers = Headers()
        headers.add("Via", f"SIP/2.0/TLS {self.user}.invalid;branch={branch or new_branch()}")
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{self.aor}>;tag={from_tag or new_tag()}")
        headers.add("To", to or f"<{uri}>")
        headers.add("Call-ID", call_id or new_call_id("test.invalid"))
        headers.add("CSeq", f"{cseq} {method}")
        headers.add("Contact", f"<{self.contact_uri}>")
        for name, value in extra:
            headers.add(name, value)
        return Request(method, parse_uri(uri), headers, body)

    async def register(self, *, outbound: bool = True) -> Response:
        """REGISTER (401 answered); without ``outbound`` the contact is the connection's own
        address and has no reg-id (the proxy then reuses the connection, RFC 5923 style)."""
        instance = f'"<urn:uuid:00000000-0000-1000-8000-{abs(hash(self.aor)) % 10**12:012d}>"'
        contact = f"<{self.contact_uri}>;+sip.instance={instance};reg-id=1"
        if not outbound:
            lower = self.stream.lower
            assert isinstance(lower, TCPStream)
            sockname = lower.get_extra_info("sockname")
            assert isinstance(sockname, tuple)
            host, port = sockname[0], sockname[1]
            self.contact_uri = f"sip:{self.user}@{host}:{port};transport=tls"
            contact = f"<{self.contact_uri}>"
        call_id = new_call_id("reg.invalid")
        tag = new_tag()
        uri = f"sip:{self.domain}"
        authorization: list[tuple[str, str]] = []
        for _ in range(2):
            request = self.new_request(
                "REGISTER", uri, to=f"<{self.aor}>", call_id=call_id, from_tag=tag
            )
            request.headers.set("Contact", contact)
            request.headers.add("Supported", "outbound")
            for name, value in authorization:
                request.headers.add(name, value)
            self.send(request)
            response = await self.response()
            if response.status_code != 401:
                return response
            headers = self.digest.handle_challenge(
                401, response.headers.get_all("WWW-Authenticate"), "REGISTER", uri
            )
            authorization = [(h.name, h.value) for h in headers]
        return response

    async def authenticated(self, request: Request) -> tuple[Request, Response]:
        """Send ``request``; answer one 407 (ACK it, resend with credentials)."""
        self.send(request)
        response = await self.final()
        if response.status_code != 407:
            return request, response
        self.send(ack_for(request, response))
        headers = DigestClient(self.user, self.password).handle_challenge(
            407, response.headers.get_all("Proxy-Authenticate"), request.method, str(request.uri)
        )
        again = Request(request.method, request.uri, request.headers.copy(), request.body)
        self.cseq += 1
        again.headers.set("CSeq", f"{self.cseq} {request.method}")
        again.headers.set("Via", f"SIP/2.0/TLS {self.user}.invalid;branch={new_branch()}")
        for header in headers:
            again.headers.add(header.name, header.value)
        self.send(again)
        return again, await self.final()


def ack_for(request: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same branch as the INVITE."""
    headers = Headers()
    headers.add("Via", request.headers.get_all("Via")[0])
    headers.add("Max-Forwards", "70")
    for name in ("From", "Call-ID"):
        headers.add(name, request.headers.get(name) or "")
    headers.add("To", response.headers.get("To") or "")
    headers.add("CSeq", f"{request.cseq.seq} ACK")
    return Request("ACK", request.uri, headers)


def answer(request: Request, code: int, *, tag: str, contact: str | None = None) -> Response:
    response = Response.for_request(request, code, to_tag=tag)
    for value in request.headers.get_all("Record-Route"):
        response.headers.add("Record-Route", value)
    if contact is not None:
        response.headers.add("Contact", f"<{contact}>")
    return response
