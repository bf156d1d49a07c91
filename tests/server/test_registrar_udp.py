"""The registrar's UDP listener: one message per datagram, RFC 3261 §18.2 and RFC 3581, STUN.

A raw client (:class:`UDPClient`) sends hand-built datagrams; every wait is bounded
(:data:`WAIT`); "nothing came back" is shown by a later request being answered first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from softphone.server.config import ConfigError, ListenAddress
from softphone.server.registrar import Registrar, running_registrar
from softphone.sip.digest import DigestClient
from softphone.sip.message import Headers, Request, Response
from softphone.sip.parser import parse_message
from softphone.sip.transaction_layer import new_branch
from softphone.sip.uri import parse_uri
from softphone.transport.udp import (
    BINDING_REQUEST,
    BINDING_SUCCESS,
    DatagramEndpoint,
    StunMessage,
    mapped_address,
    open_datagram_endpoint,
    parse_stun,
    stun_binding_request,
    stun_binding_response,
)
from tests.server.conftest import USERS, make_config
from tests.transport.certs import Identity

WAIT = 10.0
DOMAIN = "example.test"


class UDPClient:
    """A UDP socket on 127.0.0.1 that queues every datagram it receives."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.endpoint: DatagramEndpoint | None = None
        self.cseq = 0
        self.digest = DigestClient("alice", USERS["alice"])

    async def start(self) -> UDPClient:
        self.endpoint = await open_datagram_endpoint(
            lambda data, source: self.inbox.put_nowait((data, source)),
            local_addr=("127.0.0.1", 0),
        )
        return self

    @property
    def port(self) -> int:
        assert self.endpoint is not None
        return self.endpoint.local_address[1]

    def send(self, data: bytes | Request, port: int) -> None:
        assert self.endpoint is not None
        self.endpoint.sendto(bytes(data), ("127.0.0.1", port))

    async def datagram(self) -> bytes:
        async with asyncio.timeout(WAIT):
            data, _ = await self.inbox.get()
        return data

    async def response(self) -> Response:
        message = parse_message(await self.datagram())
        assert isinstance(message, Response)
        return message

    def request(
        self,
        method: str = "REGISTER",
        *,
        via: str | None = None,
        expires: int | None = 600,
        call_id: str = "udp-call@client",
    ) -> Request:
        self.cseq += 1
        headers = Headers()
        headers.add("Via", via or f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={new_branch()};rport")
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<sip:alice@{DOMAIN}>;tag=abc")
        headers.add("To", f"<sip:alice@{DOMAIN}>")
        headers.add("Call-ID", call_id)
        headers.add("CSeq", f"{self.cseq} {method}")
        if method == "REGISTER":
            headers.add("Contact", f"<sip:alice@127.0.0.1:{self.port};transport=udp>")
            if expires is not None:
                headers.add("Expires", str(expires))
        return Request(method, parse_uri(f"sip:{DOMAIN}"), headers)

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()


@pytest.fixture
async def udp_registrar(identity: Identity) -> AsyncIterator[Registrar]:
    config = make_config(identity, listen=(ListenAddress("127.0.0.1", 0, "udp"),))
    async with running_registrar(config) as reg:
        yield reg


@pytest.fixture
async def client() -> AsyncIterator[UDPClient]:
    c = await UDPClient().start()
    yield c
    c.close()


# --- configuration ----------------------------------------------------------------------------


def test_udp_prefix_in_listen_addresses() -> None:
    assert ListenAddress.parse("udp:127.0.0.1:5060") == ListenAddress("127.0.0.1", 5060, "udp")
    assert ListenAddress.parse("udp:[::1]:5060") == ListenAddress("::1", 5060, "udp")
    assert ListenAddress.parse("127.0.0.1:5060", "udp").transport == "udp"
    with pytest.raises(ConfigError):
        ListenAddress("127.0.0.1", 5060, "sctp")


async def test_udp_listener_is_listed_next_to_tls_and_tcp(identity: Identity) -> None:
    listen = (
        ListenAddress("127.0.0.1", 0, "tls"),
        ListenAddress("127.0.0.1", 0, "tcp"),
        ListenAddress("127.0.0.1", 0, "udp"),
    )
    async with running_registrar(make_config(identity, listen=listen)) as reg:
        kinds = [t for t, _, _ in reg.listening]
        assert kinds == ["tls", "tcp", "udp"]
        assert ("udp", "127.0.0.1", reg.udp_port) in reg.listening


async def test_only_udp_needs_no_certificate() -> None:
    from softphone.server.config import RegistrarConfig

    config = RegistrarConfig(
        domain=DOMAIN, users=USERS, listen=(ListenAddress("127.0.0.1", 0, "udp"),)
    )
    async with running_registrar(config) as reg:
        assert reg.udp_port > 0 and reg.fingerprint is None


# --- REGISTER over UDP ------------------------------------------------------------------------


async def test_register_with_digest_over_udp(udp_registrar: Registrar, client: UDPClient) -> None:
    first = client.request()
    client.send(first, udp_registrar.udp_port)
    challenge = await client.response()
    assert challenge.status_code == 401
    # RFC 3581 §4: rport filled in with the source port, received with the source address.
    via = challenge.top_via
    assert via.rport == client.port and via.received == "127.0.0.1"
    auth = client.digest.handle_challenge(
        401, challenge.headers.get_all("WWW-Authenticate"), "REGISTER", str(first.uri)
    )
    second = client.request()
    for header in auth:
        second.headers.add(header.name, header.value)
    client.send(second, udp_registrar.udp_port)
    ok = await client.response()
    assert ok.status_code == 200
    bindings = udp_registrar.bindings(f"sip:alice@{DOMAIN}")
    assert len(bindings) == 1 and "transport=udp" in str(bindings[0].uri)

    remove = client.request(expires=0)
    for header in client.digest.authorize("REGISTER", str(remove.uri)):
        remove.headers.add(header.name, header.value)
    client.send(remove, udp_registrar.udp_port)
    assert (await client.response()).status_code == 200
    assert udp_registrar.bindings(f"sip:alice@{DOMAIN}") == []


async def test_rport_sends_the_answer_to_the_source_whatever_the_via_says(
    udp_registrar: Registrar, client: UDPClient
) -> None:
    # sent-by names a port nobody listens on: with rport the source port wins.
    request = client.request("OPTIONS", via=f"SIP/2.0/UDP 192.0.2.1:9;branch={new_branch()};rport")
    client.send(request, udp_registrar.udp_port)
    response = await client.response()
    assert response.status_code == 200
    assert response.top_via.received == "127.0.0.1" and response.top_via.rport == client.port


async def test_without_rport_the_answer_goes_to_the_sent_by_port(
    udp_registrar: Registrar, client: UDPClient
) -> None:
    other = await UDPClient().start()
    try:
        # §18.2.2: no rport, so the response goes to received (the source IP) at the sent-by
        # port: here another socket of ours.
        request = client.request(
            "OPTIONS", via=f"SIP/2.0/UDP localhost:{other.port};branch={new_branch()}"
        )
        client.send(request, udp_registrar.udp_port)
        response = await other.response()
        assert response.status_code == 200
        assert response.top_via.received == "127.0.0.1" and response.top_via.rport is None
        assert client.inbox.empty()
    finally:
        other.close()


async def test_retransmitted_request_is_answered_by_the_server_transaction(
    udp_registrar: Registrar, client: UDPClient
) -> None:
    handled: list[Request] = []
    handle = udp_registrar.core.handle_request

    def recording(request: Request, now: float, **kwargs: object) -> Response | None:
        handled.append(request)
        return handle(request, now, **kwargs)  # type: ignore[arg-type]

    udp_registrar.core.handle_request = recording  # type: ignore[method-assign]
    request = client.request()
    client.send(request, udp_registrar.udp_port)
    client.send(request, udp_registrar.udp_port)  # as Timer E would
    first = await client.datagram()
    second = await client.datagram()
    assert first == second and first.startswith(b"SIP/2.0 401")
    assert len(handled) == 1  # the core decided once; the transaction repeated its answer


# --- what is not SIP, or not good SIP ---------------------------------------------------------


async def test_unparsable_datagrams_are_answered_or_dropped_and_the_listener_goes_on(
    udp_registrar: Registrar, client: UDPClient
) -> None:
    port = udp_registrar.udp_port
    # A request that does not parse whose Via survives: 400 to the source.
    client.send(
        b"REGISTER sip:example.test SIP/2.0\r\n"
        + f"Via: SIP/2.0/UDP 127.0.0.1:{client.port};branch=z9hG4bKbroken\r\n".encode()
        + b"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\n"
        b"Call-ID: broken@client\r\nCSeq: 1 REGISTER\r\nMax-Forwards: lots\r\n"
        b"Content-Length: 0\r\n\r\n",
        port,
    )
    answer = await client.response()
    assert answer.status_code == 400 and answer.top_via.branch == "z9hG4bKbroken"
    # No Via; noise; a response nobody asked for: dropped and counted, nothing sent back.
    client.send(b"REGISTER sip:example.test SIP/2.0\r\nCSeq: 1 REGISTER\r\n\r\n", port)
    client.send(b"\x16\x03\x01 not sip at all", port)
    client.send(bytes(Response.for_request(client.request("OPTIONS"), 200)), port)
    async with asyncio.timeout(WAIT):
        while udp_registrar.udp_dropped < 3:
            await asyncio.sleep(0.01)
    # A CRLF keep-alive is ignored too (and not a drop).
    client.send(b"\r\n\r\n", port)
    # The listener still works: the next thing that arrives is this OPTIONS' answer.
    client.send(client.request("OPTIONS"), port)
    response = await client.response()
    assert response.status_code == 200 and response.cseq.method == "OPTIONS"
    assert udp_registrar.udp_dropped == 3


async def test_stun_binding_request_is_answered_with_the_source_address(
    udp_registrar: Registrar, client: UDPClient
) -> None:
    request, tid = stun_binding_request()
    client.send(request, udp_registrar.udp_port)
    answer = parse_stun(await client.datagram())
    assert answer.type == BINDING_SUCCESS and answer.transaction_id == tid
    assert mapped_address(answer) == ("127.0.0.1", client.port)
    assert udp_registrar.stun_answered == 1
    # Other STUN (a response sent to us) is dropped, not answered.
    stray = stun_binding_response(StunMessage(BINDING_REQUEST, tid), ("127.0.0.1", 1))
    client.send(stray, udp_registrar.udp_port)
    client.send(client.request("OPTIONS"), udp_registrar.udp_port)
    assert (await client.response()).status_code == 200
    assert udp_registrar.stun_answered == 1 and udp_registrar.udp_dropped == 1
