"""The delay relay of the round-trip benchmark (benchmarks/delay_relay.py).

Only lower bounds on elapsed time: a loaded machine may be slower, never faster than the delay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import cast

import pytest

from benchmarks.delay_relay import DelayRelay, DelayUdpRelay

DELAY_MS = 40.0
D = DELAY_MS / 1000.0
SLACK = 0.003  # timer and clock granularity
WAIT = 5.0


class Server:
    """A TCP server that hands each accepted connection to the test."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.server: asyncio.Server | None = None

    async def _on(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.accepted.put((reader, writer))

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def next(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(WAIT):
            return await self.accepted.get()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    srv.server = await asyncio.start_server(srv._on, "127.0.0.1", 0)
    yield srv
    srv.server.close()


async def read_exactly(reader: asyncio.StreamReader, n: int) -> tuple[bytes, float]:
    async with asyncio.timeout(WAIT):
        data = await reader.readexactly(n)
    return data, time.monotonic()


async def test_forwards_both_ways_in_order_each_way_delayed(server: Server) -> None:
    async with DelayRelay("127.0.0.1", server.port, DELAY_MS, handshake=False) as relay:
        c_reader, c_writer = await asyncio.open_connection("127.0.0.1", relay.port)
        s_reader, s_writer = await server.next()

        sent_at = time.monotonic()
        for part in (b"one ", b"two ", b"three"):
            c_writer.write(part)
            await c_writer.drain()
            await asyncio.sleep(0.005)  # separate chunks, each with its own due time
        data, arrived = await read_exactly(s_reader, len(b"one two three"))
        assert data == b"one two three"
        assert arrived - sent_at >= D - SLACK

        sent_at = time.monotonic()
        s_writer.write(b"first|")
        await s_writer.drain()
        s_writer.write(b"second")
        await s_writer.drain()
        data, arrived = await read_exactly(c_reader, len(b"first|second"))
        assert data == b"first|second"
        assert arrived - sent_at >= D - SLACK

        # a request/answer exchange through the relay costs at least one RTT
        sent_at = time.monotonic()
        c_writer.write(b"ping")
        await c_writer.drain()
        assert (await read_exactly(s_reader, 4))[0] == b"ping"
        s_writer.write(b"pong")
        await s_writer.drain()
        _, arrived = await read_exactly(c_reader, 4)
        assert arrived - sent_at >= 2 * D - SLACK

        # chunks may coalesce on the way; the order of directions may not change
        directions = [d for _, d, _ in relay.connections[0].trace]
        runs = [d for i, d in enumerate(directions) if i == 0 or directions[i - 1] != d]
        assert runs == ["c2s", "s2c", "c2s", "s2c"]
        assert relay.connections[0].data == {
            "c2s": bytearray(b"one two threeping"),
            "s2c": bytearray(b"first|secondpong"),
        }
        c_writer.close()
        s_writer.close()


async def test_first_client_byte_waits_for_the_modelled_tcp_handshake(server: Server) -> None:
    async with DelayRelay("127.0.0.1", server.port, DELAY_MS) as relay:
        connect_at = time.monotonic()
        _, c_writer = await asyncio.open_connection("127.0.0.1", relay.port)
        s_reader, s_writer = await server.next()
        c_writer.write(b"hello")
        await c_writer.drain()
        _, arrived = await read_exactly(s_reader, 5)
        assert arrived - connect_at >= 3 * D - SLACK  # SYN, SYN/ACK, then the data one way
        c_writer.close()
        s_writer.close()


async def test_client_close_reaches_the_server_and_both_sides_are_closed(server: Server) -> None:
    async with DelayRelay("127.0.0.1", server.port, DELAY_MS, handshake=False) as relay:
        c_reader, c_writer = await asyncio.open_connection("127.0.0.1", relay.port)
        s_reader, s_writer = await server.next()
        c_writer.write(b"last words")
        closed_at = time.monotonic()
        c_writer.close()
        async with asyncio.timeout(WAIT):
            assert await s_reader.read() == b"last words"  # then EOF
            eof_at = time.monotonic()
        assert eof_at - closed_at >= D - SLACK
        s_writer.close()  # the server answers the close: now both directions have ended
        async with asyncio.timeout(WAIT):
            assert await c_reader.read() == b""
            while relay.connections[0].closed_at is None:
                await asyncio.sleep(0.01)
        directions = [d for _, d, _ in relay.connections[0].trace]
        assert "eof-c2s" in directions and "eof-s2c" in directions


async def test_server_close_reaches_the_client(server: Server) -> None:
    async with DelayRelay("127.0.0.1", server.port, DELAY_MS, handshake=False) as relay:
        c_reader, c_writer = await asyncio.open_connection("127.0.0.1", relay.port)
        _, s_writer = await server.next()
        s_writer.write(b"bye")
        closed_at = time.monotonic()
        s_writer.close()
        async with asyncio.timeout(WAIT):
            assert await c_reader.read() == b"bye"
        assert time.monotonic() - closed_at >= D - SLACK
        c_writer.close()


async def test_closing_the_relay_cuts_its_connections(server: Server) -> None:
    relay = DelayRelay("127.0.0.1", server.port, DELAY_MS, handshake=False)
    await relay.start()
    c_reader, c_writer = await asyncio.open_connection("127.0.0.1", relay.port)
    s_reader, s_writer = await server.next()
    await relay.close()
    async with asyncio.timeout(WAIT):
        assert await c_reader.read() == b""
        assert await s_reader.read() == b""
    c_writer.close()
    s_writer.close()


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"echo " + data, addr)


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.put_nowait((data, time.monotonic()))


async def test_udp_datagrams_are_delayed_each_way_in_order() -> None:
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    port = echo.get_extra_info("sockname")[1]
    try:
        async with DelayUdpRelay("127.0.0.1", port, DELAY_MS) as relay:
            collect = Collect()
            client, _ = await loop.create_datagram_endpoint(
                lambda: collect, remote_addr=("127.0.0.1", relay.port)
            )
            sent_at = time.monotonic()
            for i in range(5):
                client.sendto(b"%d" % i)
            got = []
            async with asyncio.timeout(WAIT):
                for _ in range(5):
                    got.append(await collect.got.get())
            assert [d for d, _ in got] == [b"echo %d" % i for i in range(5)]
            assert min(t for _, t in got) - sent_at >= 2 * D - SLACK
            assert [d for _, d, _, _ in relay.trace] == ["c2s"] * 5 + ["s2c"] * 5
            client.close()
    finally:
        echo.close()
