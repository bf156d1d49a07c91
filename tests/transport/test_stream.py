"""The asyncio adapter over real loopback sockets (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from softphone.transport.stream import (
    TCPStream,
    TLSHandshakeError,
    TLSServer,
    TLSStream,
    TLSStreamError,
    open_tcp_connection,
    open_tls_connection,
    start_tls_server,
)
from softphone.transport.tls import (
    NO_PEER_CERTIFICATE,
    Event,
    TLSConfig,
    TLSConnection,
    TLSRole,
    TLSState,
    TLSVersion,
)
from tests.transport.certs import Identity, issue, make_ca, self_signed

HOST = "127.0.0.1"
SERVER = "registrar.example.com"


@pytest.fixture(scope="module")
def ca() -> Identity:
    return make_ca()


@pytest.fixture(scope="module")
def server_id(ca: Identity) -> Identity:
    return issue(ca, SERVER)


@pytest.fixture(scope="module")
def alice(ca: Identity) -> Identity:
    return issue(ca, "alice.example.com")


Handler = Callable[[TLSStream], Awaitable[None]]


async def echo(stream: TLSStream) -> None:
    while data := await stream.read():
        stream.write(data)
        await stream.drain()


@pytest.fixture
async def serve(
    ca: Identity, server_id: Identity
) -> AsyncIterator[Callable[..., Awaitable[TLSServer]]]:
    servers: list[TLSServer] = []

    async def start(handler: Handler = echo, **kw: object) -> TLSServer:
        on_error = kw.pop("on_error", None)
        cfg = TLSConfig.server(server_id.chain, server_id.key, trust_anchors=(ca.cert,), **kw)
        server = await start_tls_server(HOST, 0, cfg, handler, on_error=on_error)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_loopback_handshake_echo_and_nodelay(
    serve: Callable[..., Awaitable[TLSServer]], ca: Identity, alice: Identity
) -> None:
    seen: list[TLSStream] = []

    async def handler(stream: TLSStream) -> None:
        seen.append(stream)
        await echo(stream)

    server = await serve(handler, request_client_certificate=True)
    cfg = TLSConfig.client(
        SERVER, trust_anchors=(ca.cert,), certificate_chain=alice.chain, private_key=alice.key
    )
    started = time.perf_counter()
    stream = await open_tls_connection(HOST, server.port, cfg, timeout=5)
    elapsed_ms = (time.perf_counter() - started) * 1000
    result = await stream.handshake()  # already done: returns the same result
    assert result is stream.handshake_result
    assert result.version == "TLSv1.3"
    assert stream.handshake_waits == 1  # one flight from the server, then we may send
    assert stream.verify_errors == ()
    assert stream.peer_chain()[0].subject == stream.handshake_result.peer_chain[0].subject
    assert isinstance(stream.lower, TCPStream)
    assert stream.lower.tcp_nodelay
    assert stream.lower.transport.get_extra_info("socket").getsockopt(
        socket.IPPROTO_TCP, socket.TCP_NODELAY
    )

    message = b"REGISTER sip:registrar.example.com SIP/2.0\r\n" + b"x" * 12000 + b"\r\n\r\n"
    stream.write(message)
    await stream.drain()
    echoed = bytearray()
    while len(echoed) < len(message):
        echoed += await asyncio.wait_for(stream.read(), 5)
    assert bytes(echoed) == message

    (server_side,) = seen
    assert isinstance(server_side.lower, TCPStream) and server_side.lower.tcp_nodelay
    assert server_side.peer_chain() == list(alice.chain)
    assert server_side.handshake_waits == 2  # ClientHello, then the client's Finished flight
    stream.close()
    await stream.wait_closed()
    print(f"\nloopback TLS 1.3 mutual handshake incl. TCP connect: {elapsed_ms:.1f} ms")


async def test_untrusted_server_completes_and_records(
    ca: Identity,
) -> None:
    rogue = self_signed(SERVER)
    cfg = TLSConfig.server(rogue.chain, rogue.key)
    server = await start_tls_server(HOST, 0, cfg, echo)
    async with server:
        stream = await open_tls_connection(
            HOST, server.port, TLSConfig.client(trust_anchors=(ca.cert,)), timeout=5
        )
        assert [(r.depth, r.errno) for r in stream.verify_errors] == [(0, 18)]
        assert stream.handshake_result is not None
        assert stream.handshake_result.server_name == HOST  # the dialled name, for the evaluator
        assert stream.peer_chain() == list(rogue.chain)
        stream.write(b"ping")
        assert await asyncio.wait_for(stream.read(), 5) == b"ping"
        stream.close()


async def test_client_without_certificate_is_recorded_by_the_server(
    serve: Callable[..., Awaitable[TLSServer]], ca: Identity
) -> None:
    got: asyncio.Future[TLSStream] = asyncio.get_running_loop().create_future()

    async def handler(stream: TLSStream) -> None:
        got.set_result(stream)
        await echo(stream)

    server = await serve(handler, request_client_certificate=True)
    stream = await open_tls_connection(
        HOST, server.port, TLSConfig.client(SERVER, trust_anchors=(ca.cert,)), timeout=5
    )
    server_side = await asyncio.wait_for(got, 5)
    assert server_side.peer_chain() == []
    assert [r.errno for r in server_side.verify_errors] == [NO_PEER_CERTIFICATE]
    stream.close()


async def test_server_close_is_eof_for_the_client(
    serve: Callable[..., Awaitable[TLSServer]], ca: Identity
) -> None:
    async def say_bye(stream: TLSStream) -> None:
        stream.write(b"BYE")
        # returning closes the stream: close_notify, then TCP close

    server = await serve(say_bye)
    stream = await open_tls_connection(
        HOST, server.port, TLSConfig.client(SERVER, trust_anchors=(ca.cert,)), timeout=5
    )
    data = bytearray()
    while chunk := await asyncio.wait_for(stream.read(), 5):
        data += chunk
    assert bytes(data) == b"BYE"
    assert stream.clean_close
    assert await stream.read() == b""  # EOF stays EOF
    with pytest.raises(TLSStreamError, match="closed"):
        stream.write(b"too late")
    stream.close()


async def test_client_close_is_eof_for_the_server(
    serve: Callable[..., Awaitable[TLSServer]], ca: Identity
) -> None:
    done: asyncio.Future[tuple[bytes, bool]] = asyncio.get_running_loop().create_future()

    async def collect(stream: TLSStream) -> None:
        data = bytearray()
        while chunk := await stream.read():
            data += chunk
        done.set_result((bytes(data), stream.clean_close))

    server = await serve(collect)
    stream = await open_tls_connection(
        HOST, server.port, TLSConfig.client(SERVER, trust_anchors=(ca.cert,)), timeout=5
    )
    stream.write(b"one")
    stream.write(b"two")
    stream.close()
    assert await asyncio.wait_for(done, 5) == (b"onetwo", True)


@contextlib.asynccontextmanager
async def plain_server(reply: bytes) -> AsyncIterator[int]:
    """A non-TLS TCP server that answers the first bytes with ``reply`` (or stays silent)."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read(65536)
        if reply:
            writer.write(reply)
            await writer.drain()
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await server.wait_closed()


async def test_garbage_from_a_non_tls_server_raises_handshake_error(ca: Identity) -> None:
    async with plain_server(b"SIP/2.0 400 Bad Request\r\n\r\n") as port:
        with pytest.raises(TLSHandshakeError, match="handshake: ") as info:
            await open_tls_connection(HOST, port, TLSConfig.client(SERVER), timeout=5)
        assert info.value.reason


async def test_silent_server_times_out(ca: Identity) -> None:
    async with plain_server(b"") as port:
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            await open_tls_connection(HOST, port, TLSConfig.client(SERVER), timeout=0.3)
        assert time.perf_counter() - started < 2


async def test_plaintext_client_reaches_on_error(
    serve: Callable[..., Awaitable[TLSServer]],
) -> None:
    errors: list[BaseException] = []
    server = await serve(echo, on_error=errors.append)
    reader, writer = await asyncio.open_connection(HOST, server.port)
    writer.write(b"OPTIONS sip:x SIP/2.0\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the server hung up
    writer.close()
    for _ in range(50):
        if errors:
            break
        await asyncio.sleep(0.01)
    (err,) = errors
    assert isinstance(err, TLSHandshakeError)


async def test_read_after_failure_raises(ca: Identity) -> None:
    async with plain_server(b"\x15\x03\x03\x00\x02\x02\x28") as port:  # a fatal alert
        stream = await open_tls_connection(HOST, port, TLSConfig.client(SERVER), handshake=False)
        with pytest.raises(TLSHandshakeError):
            await stream.read()
        with pytest.raises(TLSStreamError):
            stream.write(b"x")
        stream.close()


async def test_plain_tcp_stream_upgrade(
    serve: Callable[..., Awaitable[TLSServer]], ca: Identity
) -> None:
    server = await serve()
    tcp = await open_tcp_connection(HOST, server.port)
    assert tcp.tcp_nodelay
    stream = tcp.upgrade(TLSConfig.client(SERVER, trust_anchors=(ca.cert,)))
    stream.write(b"early")  # queued until the handshake, then sent with the Finished
    assert await asyncio.wait_for(stream.read(), 5) == b"early"
    stream.close()


async def test_forced_tls12_over_loopback_waits_twice(
    serve: Callable[..., Awaitable[TLSServer]], ca: Identity
) -> None:
    server = await serve()
    cfg = TLSConfig.client(SERVER, trust_anchors=(ca.cert,), max_version=TLSVersion.TLSv1_2)
    stream = await open_tls_connection(HOST, server.port, cfg, timeout=5)
    assert stream.handshake_result is not None
    assert stream.handshake_result.version == "TLSv1.2"
    assert stream.handshake_waits == 2  # the RTT a TLS 1.2 fallback costs
    stream.write(b"ping")
    assert await asyncio.wait_for(stream.read(), 5) == b"ping"
    stream.close()


class AsyncioByteStream:
    """asyncio StreamReader/StreamWriter as a ByteStream: TLSStream runs over any of them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    async def read(self) -> bytes:
        return await self.reader.read(65536)

    def close(self) -> None:
        self.writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def test_upgrade_keeps_bytes_read_past_the_sip_message(
    ca: Identity, server_id: Identity
) -> None:
    """A pipelining peer's ClientHello arrives in the same read as its CONNECT: it must reach
    the nested TLS through ``initial_data`` instead of being lost with the SIP parser's buffer."""
    connect = b"CONNECT sip:bob@b.example SIP/2.0\r\nRequire: sipsec\r\n\r\n"
    leftover: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.1)  # let CONNECT and the ClientHello both arrive
        first = await reader.read(65536)
        head, _, rest = first.partition(b"\r\n\r\n")
        assert head + b"\r\n\r\n" == connect
        leftover.set_result(rest)
        cfg = TLSConfig.server(server_id.chain, server_id.key)
        stream = TLSStream(AsyncioByteStream(reader, writer), cfg, initial_data=rest)
        await echo(stream)
        stream.close()
        await stream.wait_closed()

    server = await asyncio.start_server(handle, HOST, 0)
    async with server:
        tcp = await open_tcp_connection(HOST, server.sockets[0].getsockname()[1])
        tcp.write(connect)
        stream = tcp.upgrade(TLSConfig.client(SERVER, trust_anchors=(ca.cert,)))
        stream.write(b"pipelined")
        assert await asyncio.wait_for(stream.read(), 5) == b"pipelined"
        assert (await leftover)[:1] == b"\x16"  # the ClientHello really was in that read
        stream.close()
        await stream.wait_closed()


async def test_handshake_in_thread_runs_openssl_off_the_loop(
    serve: Callable[..., Awaitable[TLSServer]],
    ca: Identity,
    alice: Identity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 7: a sipsec handshake signs with an RSA-3072 key (5-7 ms a flight here); with
    ``handshake_in_thread`` each flight from the peer is worked on in a worker thread and the
    loop is free meanwhile. Once the handshake is done, records are read on the loop again."""
    loop_thread = threading.get_ident()
    calls: list[tuple[TLSState, int]] = []  # the client's: (state before the call, thread)
    receive = TLSConnection.receive_data

    def spy(self: TLSConnection, data: bytes) -> list[Event]:
        if self.config.role is TLSRole.CLIENT:
            calls.append((self.state, threading.get_ident()))
        return receive(self, data)

    monkeypatch.setattr(TLSConnection, "receive_data", spy)
    server = await serve(request_client_certificate=True)
    cfg = TLSConfig.client(
        SERVER, trust_anchors=(ca.cert,), certificate_chain=alice.chain, private_key=alice.key
    )
    stream = TLSStream(await open_tcp_connection(HOST, server.port), cfg, handshake_in_thread=True)
    result = await stream.handshake(timeout=5)
    assert result.version == "TLSv1.3" and stream.peer_chain()
    assert calls and all(
        state is TLSState.HANDSHAKING and thread != loop_thread for state, thread in calls
    )
    calls.clear()
    stream.write(b"ping")
    assert await asyncio.wait_for(stream.read(), 5) == b"ping"
    assert calls and all(thread == loop_thread for _, thread in calls)  # after it: the loop's
    stream.close()
    await stream.wait_closed()


async def test_a_handshake_in_thread_that_times_out_waits_for_openssl_to_leave(
    serve: Callable[..., Awaitable[TLSServer]], ca: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timeout cancels the handshake while the worker thread is inside OpenSSL; the
    connection must not be closed under it (a crash in C), so the cancellation waits for the
    thread before it goes on."""
    receive = TLSConnection.receive_data
    left: list[float] = []

    def slow(self: TLSConnection, data: bytes) -> list[Event]:
        if self.config.role is TLSRole.SERVER:
            return receive(self, data)
        time.sleep(0.4)  # OpenSSL busy longer than the timeout
        try:
            return receive(self, data)
        finally:
            left.append(time.monotonic())

    monkeypatch.setattr(TLSConnection, "receive_data", slow)
    server = await serve()
    cfg = TLSConfig.client(SERVER, trust_anchors=(ca.cert,))
    stream = TLSStream(await open_tcp_connection(HOST, server.port), cfg, handshake_in_thread=True)
    with pytest.raises(TimeoutError):
        await stream.handshake(timeout=0.1)
    raised = time.monotonic()
    assert left and left[0] <= raised  # the thread was out before the caller could close
    stream.close()
    await stream.wait_closed()
