"""Flow.detach / pause_reading / stop_keepalive: the registration flow becoming a sipsec
tunnel (draft-gurbani-sip-sipsec-01 §6.6), over real TLS on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from softphone.sip.message import Message, Response
from softphone.transport.flow import Flow, FlowClosedError
from softphone.transport.locate import Target
from softphone.transport.stream import TLSServer, TLSStream, open_tls_connection, start_tls_server
from softphone.transport.tls import TLSConfig, TLSRole
from tests.transport import certs

WAIT = 10.0
OK = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS h;branch=z9hG4bKx\r\nCall-ID: c\r\nCSeq: 1 CONNECT\r\n"
OK += b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nContent-Length: 0\r\n\r\n"


@pytest.fixture
async def server() -> AsyncIterator[tuple[TLSServer, asyncio.Queue[TLSStream]]]:
    identity = certs.self_signed("proxy.test")
    accepted: asyncio.Queue[TLSStream] = asyncio.Queue()
    done = asyncio.Event()

    async def serve(stream: TLSStream) -> None:
        await accepted.put(stream)
        await done.wait()

    config = TLSConfig.server(identity.chain, identity.key)
    srv = await start_tls_server("127.0.0.1", 0, config, serve)
    yield srv, accepted
    done.set()
    srv.close()
    await srv.wait_closed()


async def open_flow_to(srv: TLSServer) -> Flow:
    stream = await open_tls_connection("127.0.0.1", srv.port, TLSConfig.client("proxy.test"))
    return Flow(
        stream,
        Target("TLS", "127.0.0.1", srv.port, "proxy.test"),
        transport="TLS",
        connect_round_trips=2,
    )


async def test_detach_hands_over_the_stream_and_the_unframed_bytes(
    server: tuple[TLSServer, asyncio.Queue[TLSStream]],
) -> None:
    srv, accepted = server
    flow = await open_flow_to(srv)
    got: list[Message] = []
    seen = asyncio.Event()

    def on_message(message: Message) -> None:
        got.append(message)
        seen.set()

    flow.start(on_message)
    flow.start_keepalive(3600)
    peer = await asyncio.wait_for(accepted.get(), WAIT)
    # The 2xx and, in the same record, the first bytes of what follows (not SIP).
    peer.write(OK + b"\x16\x03\x01partial")
    await asyncio.wait_for(seen.wait(), WAIT)
    assert isinstance(got[0], Response) and got[0].status_code == 200
    stream, leftover = await flow.detach()
    assert leftover == b"\x16\x03\x01partial"
    assert flow.detached and flow.is_closed
    assert flow.closed.result() == "handed over to an end-to-end (sipsec) tunnel"
    with pytest.raises(FlowClosedError):
        flow.send(got[0])
    flow.close("again")  # must not close the stream: its new owner has it
    # Bytes written by the peer now are read by the new owner, not by the flow.
    peer.write(b"after the 200")
    async with asyncio.timeout(WAIT):
        assert await stream.read() == b"after the 200"
    assert len(got) == 1
    stream.close()


async def test_a_nested_flow_knows_its_local_address(
    server: tuple[TLSServer, asyncio.Queue[TLSStream]],
) -> None:
    srv, accepted = server
    flow = await open_flow_to(srv)
    outer = await asyncio.wait_for(accepted.get(), WAIT)
    stream, _ = await flow.detach()
    inner_id = certs.self_signed("bob")
    assert isinstance(stream, TLSStream)
    client = stream.upgrade(TLSConfig.client())
    server_side = outer.upgrade(TLSConfig.server(inner_id.chain, inner_id.key))
    await asyncio.wait_for(asyncio.gather(client.handshake(), server_side.handshake()), WAIT)
    nested = Flow(client, flow.target, transport="TLS", connect_round_trips=1)
    assert nested.local_address == flow.local_address
    assert nested.local_address[0] == "127.0.0.1" and nested.local_address[1] > 0
    assert nested.tls_version == "TLSv1.3" and client.tls.config.role is TLSRole.CLIENT
    nested.close()


async def test_pause_reading_keeps_sending_and_stops_reading(
    server: tuple[TLSServer, asyncio.Queue[TLSStream]],
) -> None:
    srv, accepted = server
    flow = await open_flow_to(srv)
    got: list[Message] = []
    flow.start(got.append)
    peer = await asyncio.wait_for(accepted.get(), WAIT)
    await flow.pause_reading()
    peer.write(OK)
    await asyncio.sleep(0.2)  # give a (wrongly) running read loop the chance to take it
    assert got == []
    flow._write_raw(b"still sending")
    async with asyncio.timeout(WAIT):
        assert await peer.read() == b"still sending"
    flow.close()
