"""SIP over UDP for ``sip:`` accounts: the UDP flow, STUN keep-alives, the UserAgent end to end.

Against our own registrar on a UDP listener (and, for loss, through :class:`LossyRelay`, a
relay that drops chosen datagrams). Every wait is bounded (:data:`WAIT`), nothing is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from softphone.server.config import ListenAddress
from softphone.sip.errors import ParseError
from softphone.sip.headers import parse_via
from softphone.sip.message import Headers, Message, Request, Response
from softphone.sip.parser import parse_message
from softphone.sip.transaction_layer import new_branch
from softphone.sip.uri import parse_uri
from softphone.transport.flow import (
    FlowError,
    UDPFlow,
    UDPTooLargeError,
    open_flow,
)
from softphone.transport.locate import Target
from softphone.transport.udp import (
    BINDING_REQUEST,
    BINDING_SUCCESS,
    MAGIC_COOKIE,
    MAX_UDP_REQUEST,
    DatagramEndpoint,
    StunError,
    StunMessage,
    error_response_for_raw,
    is_keepalive,
    is_stun,
    mapped_address,
    open_datagram_endpoint,
    parse_stun,
    response_destination,
    stamp_received,
    stun_binding_request,
    stun_binding_response,
)
from softphone.ua.account import Account, ResolveEntry, Transport
from softphone.ua.registration import RegistrationError, RegistrationState
from softphone.ua.useragent import UserAgent, _resolver_config
from tests.ua import test_registration as shared
from tests.ua.test_registration import DOMAIN, USER, EventLog

WAIT = 20.0

# The shared fixtures (a test CA and certificates; a registrar that records what it saw).
lab = shared.lab
registrar_factory = shared.registrar_factory
ua_factory = shared.ua_factory

UDP_ONLY = (ListenAddress("127.0.0.1", 0, "udp"),)


async def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


# --- helpers: a raw UDP peer and a relay that loses datagrams -------------------------------


class DatagramPeer:
    """A UDP socket on 127.0.0.1 that queues what it receives (for flow-level tests)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.endpoint: DatagramEndpoint | None = None

    async def start(self) -> DatagramPeer:
        self.endpoint = await open_datagram_endpoint(
            lambda data, source: self.inbox.put_nowait((data, source)),
            local_addr=("127.0.0.1", 0),
        )
        return self

    @property
    def port(self) -> int:
        assert self.endpoint is not None
        return self.endpoint.local_address[1]

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        assert self.endpoint is not None
        self.endpoint.sendto(data, to)

    async def receive(self) -> tuple[bytes, tuple[str, int]]:
        async with asyncio.timeout(WAIT):
            return await self.inbox.get()

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()


class LossyRelay:
    """Relays one client's datagrams to ``upstream`` and the answers back, dropping the
    client→server datagrams whose (1-based) numbers are in ``drop_up`` and the server→client
    ones in ``drop_down``."""

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        drop_up: frozenset[int] = frozenset(),
        drop_down: frozenset[int] = frozenset(),
    ) -> None:
        self.upstream = upstream
        self.drop_up = set(drop_up)
        self.drop_down = set(drop_down)
        self.up: list[bytes] = []  # every client datagram, dropped or not
        self.down: list[bytes] = []
        self.dropped: list[bytes] = []
        self._client: tuple[str, int] | None = None
        self._front: DatagramEndpoint | None = None
        self._back: DatagramEndpoint | None = None

    async def start(self) -> LossyRelay:
        self._front = await open_datagram_endpoint(self._from_client, local_addr=("127.0.0.1", 0))
        self._back = await open_datagram_endpoint(self._from_server, remote_addr=self.upstream)
        return self

    @property
    def port(self) -> int:
        assert self._front is not None
        return self._front.local_address[1]

    def _from_client(self, data: bytes, source: tuple[str, int]) -> None:
        self._client = source
        self.up.append(data)
        if len(self.up) in self.drop_up:
            self.dropped.append(data)
            return
        assert self._back is not None
        self._back.sendto(data)

    def _from_server(self, data: bytes, source: tuple[str, int]) -> None:
        self.down.append(data)
        if len(self.down) in self.drop_down or self._client is None:
            self.dropped.append(data)
            return
        assert self._front is not None
        self._front.sendto(data, self._client)

    def close(self) -> None:
        for endpoint in (self._front, self._back):
            if endpoint is not None:
                endpoint.close()


@pytest.fixture
async def peer() -> AsyncIterator[DatagramPeer]:
    p = await DatagramPeer().start()
    yield p
    p.close()


def udp_account(port: int, **extra: Any) -> Account:
    return Account(
        aor=f"sip:{USER}@{DOMAIN}",
        registrar=f"sip:{DOMAIN}:{port};transport=udp",
        resolve=(ResolveEntry(DOMAIN, port, "127.0.0.1"),),
        **extra,
    )


def options_request(port: int, *, via_port: int | None = None, rport: bool = True) -> Request:
    headers = Headers()
    params = f";branch={new_branch()}" + (";rport" if rport else "")
    headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:{via_port or port}{params}")
    headers.add("Max-Forwards", "70")
    headers.add("From", f"<sip:peer@{DOMAIN}>;tag=1")
    headers.add("To", f"<sip:{USER}@{DOMAIN}>")
    headers.add("Call-ID", "c1@peer")
    headers.add("CSeq", "1 OPTIONS")
    return Request("OPTIONS", parse_uri(f"sip:{USER}@{DOMAIN}"), headers)


# --- STUN (RFC 5389), sans-I/O ----------------------------------------------------------------

# RFC 5769 §2.2: a Binding success response, XOR-MAPPED-ADDRESS 192.0.2.1:32853 (with
# SOFTWARE, MESSAGE-INTEGRITY and FINGERPRINT, which a keep-alive needs not check).
RFC5769_IPV4_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)


def test_binding_request_is_the_bare_20_byte_header() -> None:
    data, tid = stun_binding_request()
    assert len(data) == 20 and len(tid) == 12
    assert data[:2] == b"\x00\x01" and data[2:4] == b"\x00\x00"
    assert int.from_bytes(data[4:8], "big") == MAGIC_COOKIE
    assert data[8:] == tid
    assert is_stun(data)
    parsed = parse_stun(data)
    assert parsed.type == BINDING_REQUEST and parsed.transaction_id == tid
    assert stun_binding_request()[1] != tid  # a fresh random transaction id each time


def test_rfc5769_response_vector_gives_the_xor_mapped_address() -> None:
    message = parse_stun(RFC5769_IPV4_RESPONSE)
    assert message.type == BINDING_SUCCESS
    assert message.transaction_id == bytes.fromhex("b7e7a701bc34d686fa87dfae")
    assert mapped_address(message) == ("192.0.2.1", 32853)


@pytest.mark.parametrize("source", [("127.0.0.1", 40000), ("2001:db8::1", 5060)])
def test_our_binding_response_round_trips(source: tuple[str, int]) -> None:
    request = parse_stun(stun_binding_request()[0])
    answer = parse_stun(stun_binding_response(request, source))
    assert answer.type == BINDING_SUCCESS
    assert answer.transaction_id == request.transaction_id
    assert mapped_address(answer) == source


def test_plain_mapped_address_is_accepted_from_old_servers() -> None:
    value = bytes([0, 1]) + (5060).to_bytes(2, "big") + bytes([192, 0, 2, 7])
    message = StunMessage(BINDING_SUCCESS, b"\x00" * 12, ((0x0001, value),))
    assert mapped_address(message) == ("192.0.2.7", 5060)


@pytest.mark.parametrize(
    "data",
    [
        b"REGISTER sip:example.test SIP/2.0\r\n\r\n",  # SIP is never STUN
        b"\r\n\r\n",
        RFC5769_IPV4_RESPONSE[:-4],  # length field no longer matches
        b"\x00\x01\x00\x00" + b"\x00" * 16,  # no magic cookie
    ],
)
def test_what_is_not_stun(data: bytes) -> None:
    assert not is_stun(data)
    with pytest.raises(StunError):
        parse_stun(data)


def test_truncated_attribute_is_an_error() -> None:
    header = bytes.fromhex("010100082112a442") + b"\x01" * 12
    with pytest.raises(StunError):
        parse_stun(header + bytes.fromhex("0020000c00010000"))


# --- datagram rules, sans-I/O ----------------------------------------------------------------


def test_keepalive_datagrams() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n") and is_keepalive(b"")
    assert not is_keepalive(b"OPTIONS")


def test_received_and_rport_are_stamped_and_the_response_goes_to_the_source() -> None:
    request = options_request(5060)
    request.headers.set("Via", "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa;rport, SIP/2.0/UDP x")
    stamp_received(request, ("192.0.2.9", 40000))
    top = request.top_via
    assert top.received == "192.0.2.9" and top.rport == 40000
    assert len(request.vias) == 2 and request.vias[1].host == "x"
    response = Response.for_request(request, 200)
    assert response_destination(response, ("192.0.2.9", 40000)) == ("192.0.2.9", 40000)


def test_without_rport_the_response_goes_to_the_sent_by_port_of_the_source_address() -> None:
    request = options_request(5060, via_port=5070, rport=False)
    request.headers.set("Via", "SIP/2.0/UDP pc.example.test:5070;branch=z9hG4bKb")
    stamp_received(request, ("192.0.2.9", 40000))
    assert request.top_via.received == "192.0.2.9" and request.top_via.rport is None
    response = Response.for_request(request, 200)
    assert response_destination(response, ("192.0.2.9", 40000)) == ("192.0.2.9", 5070)
    same_host = options_request(5060, via_port=5070, rport=False)
    stamp_received(same_host, ("127.0.0.1", 40000))
    assert same_host.top_via.received is None  # §18.2.1: only when the host differs
    assert response_destination(Response.for_request(same_host, 200), ("127.0.0.1", 1)) == (
        "127.0.0.1",
        5070,
    )


def test_error_response_for_an_unparsable_request() -> None:
    raw = b"REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKc\r\n"
    raw += b"CSeq: banana\r\nCall-ID: x\r\n\r\n"
    response = error_response_for_raw(raw, ParseError("bad CSeq"))
    assert response is not None and response.status_code == 400
    assert error_response_for_raw(b"garbage\r\n\r\n", ParseError("no")) is None
    assert error_response_for_raw(b"SIP/2.0 200 OK\r\n\r\n", ParseError("no")) is None


# --- the UDP flow -----------------------------------------------------------------------------


def udp_target(port: int) -> Target:
    return Target("UDP", "127.0.0.1", port, DOMAIN)


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_sips_is_never_sent_over_udp_or_tcp(transport: str, peer: DatagramPeer) -> None:
    target = Target(transport, "127.0.0.1", peer.port, DOMAIN)  # type: ignore[arg-type]
    with pytest.raises(FlowError) as info:
        await open_flow(target, secure=True)
    assert "sips:" in info.value.reason and "TLS" in info.value.reason
    assert peer.inbox.empty()


async def test_sips_account_with_transport_udp_is_refused_before_sending(
    lab: shared.Lab,
    registrar_factory: shared.RegistrarFactory,
    ua_factory: Callable[..., UserAgent],
) -> None:
    reg, seen = await registrar_factory(lab.good, listen=UDP_ONLY)
    account = Account(
        aor=f"sips:{USER}@{DOMAIN}",
        registrar=f"sips:{DOMAIN}:{reg.udp_port};transport=udp",
        resolve=(ResolveEntry(DOMAIN, reg.udp_port, "127.0.0.1"),),
        ca_file=lab.ca_file,
    )
    events = EventLog()
    ua = ua_factory(account, on_event=events)
    with pytest.raises(RegistrationError) as info:
        await ua.register()
    assert "transport=udp" in info.value.reason and "TLS" in info.value.reason
    assert seen.items == [] and reg.stun_answered == 0
    assert events.names() == ["registration_failed"]
    # and whatever the account's transport list says, a sips: account never looks for UDP
    assert (
        "UDP"
        not in _resolver_config(
            Account(aor=f"sips:{USER}@{DOMAIN}", transport=(Transport.TLS,))
        ).transports
    )


async def test_udp_is_not_chosen_unless_asked_for() -> None:
    plain = Account(aor=f"sip:{USER}@{DOMAIN}")
    assert _resolver_config(plain).transports == ("TLS", "TCP")
    assert "UDP" in _resolver_config(udp_account(5060)).transports
    listed = Account(aor=f"sip:{USER}@{DOMAIN}", transport=(Transport.UDP, Transport.TCP))
    assert _resolver_config(listed).transports == ("UDP", "TCP")


async def test_flow_sends_one_datagram_per_message_and_delivers_each(peer: DatagramPeer) -> None:
    flow = await open_flow(udp_target(peer.port), secure=False)
    assert isinstance(flow, UDPFlow) and flow.transport == "UDP"
    assert flow.connect_round_trips == 0 and flow.peer_fingerprint is None
    received: list[Message] = []
    flow.start(received.append)
    try:
        request = options_request(flow.local_address[1])
        flow.send(request)
        data, source = await peer.receive()
        assert data == bytes(request) and source == flow.local_address
        response = Response.for_request(request, 200)
        peer.send(bytes(response), source)
        await until(lambda: len(received) == 1)
        assert isinstance(received[0], Response) and received[0].status_code == 200
    finally:
        await flow.aclose()


async def test_unparsable_datagrams_are_answered_or_dropped_and_the_flow_goes_on(
    peer: DatagramPeer,
) -> None:
    flow = await open_flow(udp_target(peer.port), secure=False)
    assert isinstance(flow, UDPFlow)
    received: list[Message] = []
    flow.start(received.append)
    to = flow.local_address
    try:
        # A request that does not parse, whose Via survives: 400 back to the source.
        peer.send(
            b"OPTIONS sip:alice@example.test SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad\r\n"
            b"From: <sip:peer@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\n"
            b"CSeq: 1 OPTIONS\r\nCall-ID: bad@peer\r\nMax-Forwards: many\r\n"
            b"Content-Length: 0\r\n\r\n",
            to,
        )
        data, _ = await peer.receive()
        answer = parse_message(data)
        assert isinstance(answer, Response) and answer.status_code == 400
        assert answer.top_via.branch == "z9hG4bKbad"
        # No Via, then plain noise: nothing can be answered; dropped and counted.
        peer.send(b"OPTIONS sip:alice@example.test SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n", to)
        peer.send(b"\xff\xfe garbage", to)
        await until(lambda: flow.datagrams_dropped == 2)
        # CRLF keep-alives are ignored without being counted as drops.
        peer.send(b"\r\n\r\n", to)
        await until(lambda: flow.keepalives_received == 1)
        # ... and the flow still works.
        good = options_request(peer.port)
        peer.send(bytes(good), to)
        await until(lambda: len(received) == 1)
        assert isinstance(received[0], Request) and received[0].method == "OPTIONS"
        assert not flow.is_closed and flow.datagrams_dropped == 2
    finally:
        await flow.aclose()


async def test_request_over_1300_bytes_is_refused_over_udp(peer: DatagramPeer) -> None:
    flow = await open_flow(udp_target(peer.port), secure=False)
    flow.start(lambda _: None)
    try:
        big = options_request(flow.local_address[1])
        big.body = b"x" * MAX_UDP_REQUEST
        with pytest.raises(UDPTooLargeError) as info:
            flow.send(big)
        assert info.value.limit == 1300 and info.value.size > 1300
        assert "18.1.1" in info.value.reason and "TCP" in info.value.reason
        assert not flow.is_closed and flow.messages_sent == 0
        # A response is not limited (§18.2.2), and small requests still go.
        flow.send(Response.for_request(big, 200))
        flow.send(options_request(flow.local_address[1]))
        first, _ = await peer.receive()
        second, _ = await peer.receive()
        assert first.startswith(b"SIP/2.0 200") and second.startswith(b"OPTIONS")
    finally:
        await flow.aclose()


class StunPeer(DatagramPeer):
    """Answers STUN Binding requests; ``ports`` gives the mapped port of each answer (a NAT
    that rebinds); ``answer=False`` stays silent."""

    def __init__(self, *, answer: bool = True, ports: list[int] | None = None) -> None:
        super().__init__()
        self.answer = answer
        self.ports = ports
        self.requests = 0

    async def start(self) -> StunPeer:
        self.endpoint = await open_datagram_endpoint(self._on, local_addr=("127.0.0.1", 0))
        return self

    def _on(self, data: bytes, source: tuple[str, int]) -> None:
        if not is_stun(data):
            self.inbox.put_nowait((data, source))
            return
        self.requests += 1
        if not self.answer:
            return
        mapped = source if not self.ports else (source[0], self.ports.pop(0))
        self.send(stun_binding_response(parse_stun(data), mapped), source)


@contextlib.asynccontextmanager
async def stun_peer(**kwargs: Any) -> AsyncIterator[StunPeer]:
    p = await StunPeer(**kwargs).start()
    try:
        yield p
    finally:
        p.close()


async def test_stun_keepalive_learns_the_mapped_address() -> None:
    async with stun_peer() as server:
        flow = await open_flow(udp_target(server.port), secure=False)
        assert isinstance(flow, UDPFlow)
        flow.start(lambda _: None)
        try:
            assert await flow.ping()
            assert flow.mapped_address == flow.local_address
            flow.start_keepalive(0.02, expect_pong=True)
            await until(lambda: flow.pongs_received >= 3)
            assert flow.stun_supported is True and not flow.is_closed
        finally:
            await flow.aclose()


async def test_a_changed_mapped_address_is_a_flow_failure() -> None:
    async with stun_peer(ports=[40000, 40001]) as server:
        flow = await open_flow(udp_target(server.port), secure=False)
        flow.start(lambda _: None)
        flow.start_keepalive(0.02, expect_pong=True)
        async with asyncio.timeout(WAIT):
            reason = await flow.closed
        assert "40000" in reason and "40001" in reason and "NAT" in reason


async def test_no_stun_answer_after_outbound_was_promised_closes_the_flow() -> None:
    async with stun_peer(answer=False) as server:
        flow = await open_flow(udp_target(server.port), secure=False, pong_timeout=0.6)
        flow.start(lambda _: None)
        flow.start_keepalive(0.02, expect_pong=True)
        async with asyncio.timeout(WAIT):
            reason = await flow.closed
        assert "STUN" in reason
        assert server.requests >= 2  # retransmitted (RFC 5389 §7.2.1) before giving up


async def test_a_peer_that_never_answers_stun_falls_back_to_refresh_only() -> None:
    async with stun_peer(answer=False) as server:
        flow = await open_flow(udp_target(server.port), secure=False, pong_timeout=0.6)
        assert isinstance(flow, UDPFlow)
        flow.start(lambda _: None)
        try:
            flow.start_keepalive(0.02, expect_pong=None)
            await until(lambda: flow.stun_supported is False)
            sent = flow.pings_sent
            for _ in range(20):
                await asyncio.sleep(0.01)
            assert not flow.is_closed and flow.pings_sent == sent  # no more pings
        finally:
            await flow.aclose()


async def test_icmp_port_unreachable_closes_the_flow(peer: DatagramPeer) -> None:
    port = peer.port
    peer.close()  # nobody listens there any more
    flow = await open_flow(udp_target(port), secure=False)
    flow.start(lambda _: None)
    flow.send(options_request(flow.local_address[1]))
    async with asyncio.timeout(WAIT):
        reason = await flow.closed
    assert "not reachable over UDP" in reason


# --- the UserAgent over UDP against our registrar ------------------------------------------


async def test_register_refresh_unregister_over_udp(
    lab: shared.Lab,
    registrar_factory: shared.RegistrarFactory,
    ua_factory: Callable[..., UserAgent],
) -> None:
    reg, seen = await registrar_factory(lab.good, listen=UDP_ONLY)
    events = EventLog()
    ua = ua_factory(udp_account(reg.udp_port), on_event=events, keepalive_interval=0.05)
    binding = await ua.register()
    assert binding.round_trips == 2  # no connection: REGISTER/401 + REGISTER/200
    flow = ua.flow
    assert isinstance(flow, UDPFlow)
    registered = (await events.wait_for("registered")).to_json()
    assert registered["transport"] == "udp" and registered["registrar_fingerprint"] is None
    request = seen.registers[-1]
    via = request.top_via
    assert via.transport == "UDP" and via.port == flow.local_address[1]
    # RFC 3581: we asked for rport; the registrar filled it in (and received, §18.2.1).
    assert via.params.get("rport") == str(flow.local_address[1])
    assert via.received == "127.0.0.1"
    assert "transport=udp" in (request.headers.get("Contact") or "")
    assert len(reg.bindings(f"sip:{USER}@{DOMAIN}")) == 1
    # RFC 5626 §4.4.2: STUN keep-alives on the SIP port, answered by the registrar.
    await until(lambda: reg.stun_answered >= 2)
    assert flow.stun_supported is True and flow.mapped_address == flow.local_address

    refreshed = await ua.refresh()
    assert refreshed.round_trips == 1 and ua.flow is flow  # same socket, cached nonce
    assert seen.registers[-1].top_via.port == via.port
    assert seen.challenges == 1

    await ua.unregister()
    assert reg.bindings(f"sip:{USER}@{DOMAIN}") == []
    assert seen.registers[-1].headers.get("Expires") == "0"
    assert ua.state is RegistrationState.UNREGISTERED


async def test_lost_register_is_retransmitted_by_timer_e(
    lab: shared.Lab,
    registrar_factory: shared.RegistrarFactory,
    ua_factory: Callable[..., UserAgent],
) -> None:
    reg, seen = await registrar_factory(lab.good, listen=UDP_ONLY)
    relay = await LossyRelay(("127.0.0.1", reg.udp_port), drop_up=frozenset({1})).start()
    try:
        ua = ua_factory(udp_account(relay.port, outbound=False))
        await ua.register()
        assert ua.state is RegistrationState.REGISTERED
        assert len(relay.dropped) == 1
        # The retransmission is the very same request (same branch, same CSeq, §17.1.2.2).
        assert relay.up[1] == relay.dropped[0]
        assert len(seen.registers) == 2  # the registrar saw the retransmission, then the answer
        assert len(reg.bindings(f"sip:{USER}@{DOMAIN}")) == 1
    finally:
        relay.close()


async def test_lost_response_is_answered_again_by_the_server_transaction(
    lab: shared.Lab,
    registrar_factory: shared.RegistrarFactory,
    ua_factory: Callable[..., UserAgent],
) -> None:
    reg, seen = await registrar_factory(lab.good, listen=UDP_ONLY)
    relay = await LossyRelay(("127.0.0.1", reg.udp_port), drop_down=frozenset({1})).start()
    try:
        ua = ua_factory(udp_account(relay.port, outbound=False))
        await ua.register()
        assert relay.up[0] == relay.up[1]  # Timer E resent the first REGISTER
        assert relay.down[0] == relay.down[1]  # the same 401, from the server transaction
        assert len(seen.registers) == 2  # the core handled the first REGISTER once
    finally:
        relay.close()


async def test_too_large_register_is_refused_clearly_and_not_retried(
    lab: shared.Lab,
    registrar_factory: shared.RegistrarFactory,
    ua_factory: Callable[..., UserAgent],
) -> None:
    reg, seen = await registrar_factory(lab.good, listen=UDP_ONLY)
    events = EventLog()
    # An AOR this long makes a REGISTER well over 1300 bytes (From, To and Contact carry it).
    account = Account(
        aor=f"sip:{'a' * 500}@{DOMAIN}",
        username=USER,
        registrar=f"sip:{DOMAIN}:{reg.udp_port};transport=udp",
        resolve=(ResolveEntry(DOMAIN, reg.udp_port, "127.0.0.1"),),
    )
    ua = ua_factory(account, on_event=events)
    with pytest.raises(RegistrationError) as info:
        await ua.register()
    assert not info.value.retryable
    assert "1300" in info.value.reason and "TCP" in info.value.reason
    assert seen.items == []
    failed = (await events.wait_for("registration_failed")).to_json()
    assert failed["retrying"] is False


async def test_requests_on_the_udp_flow_are_answered(
    lab: shared.Lab,
    registrar_factory: shared.RegistrarFactory,
    ua_factory: Callable[..., UserAgent],
) -> None:
    reg, _ = await registrar_factory(lab.good, listen=UDP_ONLY)
    ua = ua_factory(udp_account(reg.udp_port, outbound=False))
    await ua.register()
    flow = ua.flow
    assert flow is not None
    # The UA's socket is connected to the registrar: send from the registrar's own socket.
    answers: list[bytes] = []
    endpoint = reg._udp_endpoints[0]
    handler = endpoint.on_datagram
    endpoint.on_datagram = lambda data, source: answers.append(data)
    try:
        request = options_request(reg.udp_port)
        endpoint.sendto(bytes(request), flow.local_address)
        await until(lambda: bool(answers))
    finally:
        endpoint.on_datagram = handler
    response = parse_message(answers[0])
    assert isinstance(response, Response) and response.status_code == 200
    assert parse_via(response.headers.get_all("Via")[0]).branch == request.top_via.branch
