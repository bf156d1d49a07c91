"""Flows (softphone.transport.flow) over real TLS/TCP sockets on 127.0.0.1.

The peer is a small scripted TLS server (:class:`Peer`): it records every byte, answers pings
with pongs or stays silent, and can speak a little SIP. Waits are bounded, never timed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509

from softphone.security.certificates import fingerprint_sha256
from softphone.security.trust import TrustDecision, TrustDecisionRequired
from softphone.sip.framing import FramingError, StreamFramer
from softphone.sip.message import Message, Request, Response
from softphone.sip.parser import parse_message
from softphone.transport.flow import (
    PING,
    PONG,
    Flow,
    FlowClosedError,
    FlowError,
    PeerVerdict,
    TrustRefusedError,
    keepalive_delay,
    open_flow,
)
from softphone.transport.locate import Target
from softphone.transport.stream import TLSStream, start_tls_server
from softphone.transport.tls import TLSConfig
from softphone.ua.account import Account, ResolveEntry
from softphone.ua.useragent import UserAgent
from tests.transport import certs

WAIT = 20.0
DOMAIN = "example.test"


@dataclass
class Peer:
    """A scripted TLS server. ``mode``: "pong" answers pings, "silent" never answers,
    "sip" also answers REGISTER with 200 and then sends an OPTIONS and a MESSAGE to the
    client. ``pong`` may be switched off while it runs."""

    mode: str = "pong"
    pong: bool = True
    received: bytearray = field(default_factory=bytearray)
    connections: int = 0
    messages: list[Message] = field(default_factory=list)
    invalid: list[bytes] = field(default_factory=list)
    streams: list[TLSStream] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, stream: TLSStream) -> None:
        self.connections += 1
        self.streams.append(stream)
        self.changed.set()
        framer = StreamFramer()
        while True:
            data = await stream.read()
            if not data:
                return
            self.received += data
            pings = framer.pings
            messages = self._feed(framer, data)
            if self.mode != "silent" and self.pong:
                for _ in range(framer.pings - pings):
                    stream.write(PONG)
            for message in messages:
                self.messages.append(message)
                if self.mode == "sip" and isinstance(message, Request):
                    self._answer(stream, message)
            self.changed.set()

    def _feed(self, framer: StreamFramer, data: bytes) -> list[Message]:
        """``framer.feed``, keeping the raw bytes of framed messages that are not valid SIP
        (a 400 to a request without Call-ID has none either) in ``invalid``."""
        messages: list[Message] = []
        while True:
            try:
                return messages + framer.feed(data)
            except FramingError as exc:
                if not exc.recoverable:
                    raise
                messages += exc.messages
                self.invalid.append(exc.raw)
                data = b""

    def _answer(self, stream: TLSStream, request: Request) -> None:
        if request.method != "REGISTER":
            return
        ok = Response.for_request(request, 200, to_tag="srv")
        ok.headers.add("Contact", (request.headers.get("Contact") or "") + ";expires=600")
        stream.write(bytes(ok))
        for method in ("OPTIONS", "MESSAGE"):
            stream.write(
                f"{method} sips:alice@127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKpeer{method}{request.cseq.seq}\r\n"
                "Max-Forwards: 70\r\nFrom: <sips:example.test>;tag=p1\r\n"
                f"To: <sips:alice@example.test>\r\nCall-ID: {method}-1@peer\r\n"
                f"CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n".encode()
            )

    async def wait(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture(scope="module")
def identity() -> certs.Identity:
    return certs.self_signed(DOMAIN)


@pytest.fixture
async def peer_server(
    identity: certs.Identity,
) -> AsyncIterator[Callable[[str], asyncio.Future[tuple[Peer, Target]]]]:
    servers = []

    async def make(mode: str = "pong") -> tuple[Peer, Target]:
        peer = Peer(mode)
        config = TLSConfig.server(identity.chain, identity.key)
        server = await start_tls_server("127.0.0.1", 0, config, peer.serve)
        servers.append(server)
        return peer, Target("TLS", "127.0.0.1", server.port, DOMAIN)

    yield make  # type: ignore[misc]
    for server in servers:
        server.close()
        await server.wait_closed()


async def accept_all(
    chain: Sequence[x509.Certificate], server_name: str, close_now: Callable[[], None]
) -> PeerVerdict:
    return PeerVerdict(True)


async def opened(target: Target, **kwargs: object) -> Flow:
    kwargs.setdefault("check_peer", accept_all)
    flow = await open_flow(target, secure=True, **kwargs)  # type: ignore[arg-type]
    return flow


# --- never a downgrade ------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["TCP", "UDP"])
async def test_sips_refuses_anything_but_tls(transport: str) -> None:
    # Port 9 on loopback: if a connect were attempted, it would fail differently.
    target = Target(transport, "127.0.0.1", 9, DOMAIN)  # type: ignore[arg-type]
    with pytest.raises(FlowError) as info:
        await open_flow(target, secure=True, check_peer=accept_all)
    assert "TLS" in info.value.reason or "UDP" in info.value.reason
    assert not isinstance(info.value, TrustRefusedError)


async def test_tls_needs_a_certificate_check(peer_server: Callable[..., object]) -> None:
    _, target = await peer_server("pong")  # type: ignore[misc]
    with pytest.raises(FlowError, match="nothing is accepted silently"):
        await open_flow(target, secure=True, check_peer=None)


async def test_refused_certificate_sends_not_one_byte(peer_server: Callable[..., object]) -> None:
    peer, target = await peer_server("pong")  # type: ignore[misc]
    seen: list[tuple[int, str]] = []

    async def refuse(
        chain: Sequence[x509.Certificate], server_name: str, close_now: Callable[[], None]
    ) -> PeerVerdict:
        seen.append((len(chain), server_name))
        return PeerVerdict(False, reason="no thanks")

    with pytest.raises(TrustRefusedError, match="no thanks"):
        await open_flow(target, secure=True, check_peer=refuse)
    assert seen == [(1, DOMAIN)]
    await peer.wait(lambda: peer.connections == 1)
    assert bytes(peer.received) == b""


async def test_reconnect_requires_the_same_certificate(
    peer_server: Callable[..., object], identity: certs.Identity
) -> None:
    peer, target = await peer_server("pong")  # type: ignore[misc]
    right = fingerprint_sha256(identity.cert)

    async def close_then_accept(
        chain: Sequence[x509.Certificate], server_name: str, close_now: Callable[[], None]
    ) -> PeerVerdict:
        close_now()
        return PeerVerdict(True, reconnect_requiring=right)

    flow = await open_flow(target, secure=True, check_peer=close_then_accept)
    assert flow.peer_fingerprint == right
    await peer.wait(lambda: peer.connections == 2)  # the first connection was closed at once
    await flow.aclose()

    async def other(
        chain: Sequence[x509.Certificate], server_name: str, close_now: Callable[[], None]
    ) -> PeerVerdict:
        close_now()
        return PeerVerdict(True, reconnect_requiring=b"\x00" * 32)

    with pytest.raises(TrustRefusedError, match="different certificate"):
        await open_flow(target, secure=True, check_peer=other)


# --- sending and receiving --------------------------------------------------------------------


async def test_send_writes_a_whole_message_in_one_write(
    peer_server: Callable[..., object],
) -> None:
    peer, target = await peer_server("pong")  # type: ignore[misc]
    flow = await opened(target)
    writes: list[bytes] = []
    stream = flow._stream
    original = stream.write

    def counting(data: bytes) -> None:
        writes.append(data)
        original(data)

    stream.write = counting  # type: ignore[method-assign]
    request = parse_message(
        b"OPTIONS sips:example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:1;branch=z9hG4bKa\r\n"
        b"From: <sips:a@example.test>;tag=1\r\nTo: <sips:example.test>\r\nCall-ID: c1\r\n"
        b"CSeq: 1 OPTIONS\r\nContent-Length: 5\r\n\r\nhello"
    )
    flow.send(request)
    assert writes == [bytes(request)]
    await peer.wait(lambda: len(peer.messages) == 1)
    await flow.aclose()
    with pytest.raises(FlowClosedError):
        flow.send(request)


async def test_ping_gets_a_pong(peer_server: Callable[..., object]) -> None:
    peer, target = await peer_server("pong")  # type: ignore[misc]
    flow = await opened(target)
    flow.start(lambda m: None)
    assert await flow.ping()
    assert flow.pongs_received == 1 and not flow.is_closed
    assert bytes(peer.received) == PING
    await flow.aclose()


async def test_missing_pong_declares_the_flow_dead(peer_server: Callable[..., object]) -> None:
    _, target = await peer_server("silent")  # type: ignore[misc]
    flow = await opened(target, pong_timeout=0.2)
    flow.start(lambda m: None)
    flow.start_keepalive(0.05, expect_pong=True)
    async with asyncio.timeout(WAIT):
        reason = await flow.closed
    assert "pong" in reason
    assert flow.pings_sent >= 1 and flow.pongs_received == 0


async def test_peer_that_never_pongs_is_not_judged_when_outbound_was_not_promised(
    peer_server: Callable[..., object],
) -> None:
    peer, target = await peer_server("silent")  # type: ignore[misc]
    flow = await opened(target, pong_timeout=0.05)
    flow.start(lambda m: None)
    flow.start_keepalive(0.02, expect_pong=None)
    await peer.wait(lambda: peer.received.count(PING) >= 4)
    assert not flow.is_closed
    await flow.aclose()


async def test_learned_pong_then_silence_closes(peer_server: Callable[..., object]) -> None:
    peer, target = await peer_server("pong")  # type: ignore[misc]
    flow = await opened(target, pong_timeout=0.2)
    flow.start(lambda m: None)
    flow.start_keepalive(0.02, expect_pong=None)
    await peer.wait(lambda: peer.received.count(PING) >= 2)
    peer.mode = "silent"
    async with asyncio.timeout(WAIT):
        reason = await flow.closed
    assert "pong" in reason


async def test_peer_closing_resolves_closed_with_a_reason(
    peer_server: Callable[..., object],
) -> None:
    peer, target = await peer_server("pong")  # type: ignore[misc]
    flow = await opened(target)
    flow.start(lambda m: None)
    await peer.wait(lambda: peer.connections == 1)
    peer.streams[0].close()
    async with asyncio.timeout(WAIT):
        reason = await flow.closed
    assert "closed the connection" in reason


async def test_incoming_ping_is_answered_and_messages_are_delivered(
    peer_server: Callable[..., object],
) -> None:
    peer, target = await peer_server("pong")  # type: ignore[misc]
    flow = await opened(target)
    got: list[Message] = []
    flow.start(got.append)
    await peer.wait(lambda: peer.connections == 1)
    peer.streams[0].write(
        PING + b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 127.0.0.1:1;branch=z9hG4bKa\r\n"
        b"From: <sips:a@example.test>;tag=1\r\nTo: <sips:example.test>;tag=2\r\nCall-ID: c1\r\n"
        b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    await peer.wait(lambda: bytes(peer.received) == PONG)
    async with asyncio.timeout(WAIT):
        while not got:
            await asyncio.sleep(0.01)
    assert isinstance(got[0], Response) and got[0].status_code == 200
    await flow.aclose()


def _peer_options(seq: int, *, call_id: bool = True) -> bytes:
    return (
        "OPTIONS sips:alice@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKbad{seq}\r\n"
        "Max-Forwards: 70\r\nFrom: <sips:example.test>;tag=p1\r\n"
        "To: <sips:alice@example.test>\r\n"
        + (f"Call-ID: opt-{seq}@peer\r\n" if call_id else "")
        + f"CSeq: {seq} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def test_a_malformed_request_gets_400_and_the_flow_goes_on(
    peer_server: Callable[..., object],
) -> None:
    """A framed but invalid request (no Call-ID) and a valid OPTIONS in one write: the first
    is answered 400 by the flow, the second is delivered, and the flow stays open."""
    peer, target = await peer_server("pong")  # type: ignore[misc]
    flow = await opened(target)
    got: list[Message] = []

    def on_message(message: Message) -> None:
        got.append(message)
        if isinstance(message, Request):
            flow.send(Response.for_request(message, 200))

    flow.start(on_message)
    await peer.wait(lambda: peer.connections == 1)
    peer.streams[0].write(_peer_options(1, call_id=False) + _peer_options(2))
    await peer.wait(lambda: len(peer.invalid) == 1 and len(peer.messages) == 1)
    bad_answer = peer.invalid[0]  # no Call-ID to copy, so not valid SIP itself
    assert bad_answer.startswith(b"SIP/2.0 400 ")
    assert b"Call-ID" in bad_answer.split(b"\r\n", 1)[0]  # the reason names the problem
    assert b"branch=z9hG4bKbad1" in bad_answer and b"CSeq: 1 OPTIONS" in bad_answer
    (answer,) = peer.messages
    assert isinstance(answer, Response)
    assert (answer.status_code, answer.cseq.seq) == (200, 2)
    assert [m.cseq.seq for m in got] == [2]
    assert not flow.is_closed
    assert await flow.ping()  # still a working flow
    await flow.aclose()


def peer_account(target: Target) -> Account:
    return Account(
        aor=f"sips:alice@{DOMAIN}",
        registrar=f"sips:{DOMAIN}:{target.port}",
        resolve=(ResolveEntry(DOMAIN, target.port, "127.0.0.1"),),
    )


async def yes(required: TrustDecisionRequired) -> TrustDecision:
    return TrustDecision.ACCEPT_ONCE


async def test_user_agent_answers_requests_arriving_on_the_flow(
    peer_server: Callable[..., object], tmp_path: Path
) -> None:
    """RFC 5626: the flow carries requests to us; OPTIONS gets 200, others 501 for now."""
    peer, target = await peer_server("sip")  # type: ignore[misc]
    async with UserAgent(
        peer_account(target),
        pin_store_path=tmp_path / "pins.json",
        password="x",
        anchors=(),
        answerer=yes,
    ) as ua:
        binding = await ua.register()
        assert binding.expires == 600 and binding.algorithm is None
        await peer.wait(lambda: sum(isinstance(m, Response) for m in peer.messages) == 2)
        answers = {m.cseq.method: m for m in peer.messages if isinstance(m, Response)}
        assert answers["OPTIONS"].status_code == 200
        assert "OPTIONS" in (answers["OPTIONS"].headers.get("Allow") or "")
        assert answers["MESSAGE"].status_code == 501


async def test_keepalive_failure_is_a_lost_connection_and_the_ua_registers_again(
    peer_server: Callable[..., object], tmp_path: Path
) -> None:
    """RFC 5626 §4.4.1/§4.5: pongs stop → flow failed → ConnectionLost → new flow, REGISTER."""
    peer, target = await peer_server("sip")  # type: ignore[misc]
    events: list[str] = []
    changed = asyncio.Event()

    def on_event(event: object) -> None:
        events.append(getattr(event, "name", "?"))
        changed.set()

    async def until(predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                changed.clear()
                await changed.wait()

    async with UserAgent(
        peer_account(target),
        pin_store_path=tmp_path / "pins.json",
        password="x",
        anchors=(),
        answerer=yes,
        on_event=on_event,
        keepalive_interval=0.05,
        pong_timeout=0.3,
    ) as ua:
        await ua.register()
        first = ua.flow
        assert first is not None
        await peer.wait(lambda: first.pongs_received >= 1)  # the peer pongs: now required
        peer.pong = False
        await until(lambda: events.count("registered") == 2)
        assert "pong" in await first.closed
        assert ua.flow is not first and peer.connections == 2
        assert events[:2] == ["trust_required", "registered"]  # accepted once, not re-asked
        assert events[2:] == ["connection_lost", "connection_restored", "registered"]


def test_keepalive_delay_is_80_to_100_percent() -> None:
    rng = random.Random(7)
    delays = [keepalive_delay(120.0, rng) for _ in range(200)]
    assert all(96.0 <= d <= 120.0 for d in delays)
    assert max(delays) - min(delays) > 10  # actually random, not a constant
