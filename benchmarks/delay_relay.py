"""A delaying relay on 127.0.0.1: a one-way delay of ``delay_ms`` in each direction (RTT = 2x).

This kernel has no ``sch_netem``, so benchmarks that count round trips put this relay between
the client and the server instead (``../shared/peers/tools/delayline.py`` does the same for IP
packets between TUN devices, which needs root and network namespaces; this needs neither)::

    async with DelayRelay("127.0.0.1", server_port, delay_ms=25) as relay:
        ...  # the client connects to 127.0.0.1:relay.port instead of the server
        relay.connections[0].trace   # [(t, "c2s" | "s2c" | "eof-c2s" | ..., nbytes), ...]

TCP: every chunk read from one side is written to the other ``delay_ms`` later, order kept,
EOF forwarded (also delayed), the other side closed once both directions ended or one side
failed. UDP (:class:`DelayUdpRelay`): every datagram is forwarded ``delay_ms`` later, one
upstream socket per client address.

What a user-space TCP relay cannot reproduce, and how it is modelled instead:

* The TCP handshake. The kernel completes the client's connect() with the relay on loopback
  at once, so the relay models the missing round trip: no client byte reaches the server
  before ``accept + 2 * delay + delay`` (SYN, SYN/ACK, then the first data one way), which is
  when it would arrive over a real link of that RTT (``handshake=False`` turns this off).
* ACK clocking. The relay's kernel ACKs at once, so Nagle's wait for an ACK and delayed ACKs
  do not show up as stalls here: they do over a real link (``delayline.py`` shows them).

Run standalone (for driving other programs by hand)::

    python benchmarks/delay_relay.py --target 127.0.0.1:5061 --delay-ms 25 [--listen 127.0.0.1:0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["DelayRelay", "DelayUdpRelay", "RelayedConnection"]

HOST = "127.0.0.1"
_READ = 65536
Clock = Callable[[], float]


@dataclass
class RelayedConnection:
    """One client connection through the relay: when it arrived and what crossed it.

    ``trace`` holds ``(monotonic time, direction, nbytes)`` for every chunk as it is *written*
    to the far side (after the delay); direction is ``c2s``/``s2c``, or ``eof-c2s``/``eof-s2c``
    for a forwarded end of stream."""

    peer: tuple[str, int]
    accepted_at: float
    trace: list[tuple[float, str, int]] = field(default_factory=list)
    closed_at: float | None = None
    #: the first ``keep_bytes`` of each direction (TLS record headers and handshakes are
    #: readable there: which version was negotiated, how the client wrote its flights)
    data: dict[str, bytearray] = field(
        default_factory=lambda: {"c2s": bytearray(), "s2c": bytearray()}
    )

    def chunks(self, direction: str) -> list[tuple[float, int]]:
        return [(t, n) for t, d, n in self.trace if d == direction]


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class DelayRelay:
    """TCP relay ``host:port`` → ``target_host:target_port`` with ``delay_ms`` each way."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        delay_ms: float,
        *,
        host: str = HOST,
        port: int = 0,
        handshake: bool = True,
        keep_bytes: int = 65536,
        clock: Clock = time.monotonic,
    ) -> None:
        self.target = (target_host, target_port)
        self.delay = delay_ms / 1000.0
        self.host = host
        self.handshake = handshake
        self.keep_bytes = keep_bytes
        self.clock = clock
        self._port = port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pumps: set[asyncio.Future[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections: list[RelayedConnection] = []

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the relay is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def rtt_ms(self) -> float:
        return 2000.0 * self.delay

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self._port)

    async def close(self) -> None:
        """Stop listening and cut every relayed connection now (no delayed bytes are kept)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        # cancel the pumps, not the connection handlers: those then finish normally (asyncio's
        # start_server logs a handler task that ends cancelled as an error)
        for pump in list(self._pumps):
            pump.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> DelayRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._relay(c_reader, c_writer)
        finally:
            self._tasks.discard(task)

    async def _relay(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        now = self.clock()
        conn = RelayedConnection(peer=c_writer.get_extra_info("peername")[:2], accepted_at=now)
        self.connections.append(conn)
        self._writers.add(c_writer)
        _nodelay(c_writer)
        s_writer: asyncio.StreamWriter | None = None
        try:
            try:
                s_reader, s_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return  # nothing listens behind us: the client sees its connection closed
            self._writers.add(s_writer)
            _nodelay(s_writer)
            # The first client byte cannot reach the server before SYN + SYN/ACK (one RTT).
            c2s_floor = now + 2 * self.delay if self.handshake else now
            pumps = [
                asyncio.ensure_future(self._pump(c_reader, s_writer, conn, "c2s", c2s_floor)),
                asyncio.ensure_future(self._pump(s_reader, c_writer, conn, "s2c", now)),
            ]
            self._pumps.update(pumps)
            try:
                done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
                if any(t.exception() is not None for t in done if not t.cancelled()):
                    for t in pending:
                        t.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                for t in pumps:
                    t.cancel()
                    self._pumps.discard(t)
        finally:
            conn.closed_at = self.clock()
            for writer in (c_writer, s_writer):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: RelayedConnection,
        direction: str,
        floor: float,
    ) -> None:
        """Read chunks as they come; a second task writes each one ``delay`` later, in order."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def writer_loop() -> None:
            while True:
                due, data = await queue.get()
                wait = due - self.clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    conn.trace.append((self.clock(), "eof-" + direction, 0))
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                conn.trace.append((self.clock(), direction, len(data)))
                kept = conn.data[direction]
                if len(kept) < self.keep_bytes:
                    kept += data[: self.keep_bytes - len(kept)]
                await writer.drain()

        sender = asyncio.ensure_future(writer_loop())
        try:
            while True:
                data = await reader.read(_READ)
                queue.put_nowait((max(self.clock(), floor) + self.delay, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender


class _UdpUpstream(asyncio.DatagramProtocol):
    def __init__(self, relay: DelayUdpRelay, client: tuple[str, int]) -> None:
        self.relay, self.client = relay, client

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay._schedule("s2c", data, self.client)


class _UdpListener(asyncio.DatagramProtocol):
    def __init__(self, relay: DelayUdpRelay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay._from_client(data, addr)


class DelayUdpRelay:
    """UDP relay ``host:port`` → target with ``delay_ms`` each way; one upstream socket per
    client address, so the server's answers find their way back to the right client."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        delay_ms: float,
        *,
        host: str = HOST,
        port: int = 0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.target = (target_host, target_port)
        self.delay = delay_ms / 1000.0
        self.host, self._port, self.clock = host, port, clock
        self._listener: asyncio.DatagramTransport | None = None
        self._upstreams: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        self._opening: dict[tuple[str, int], list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: set[asyncio.TimerHandle] = set()
        self._last_due: dict[tuple[str, tuple[str, int]], float] = {}
        #: (time written, "c2s" | "s2c", client address, nbytes)
        self.trace: list[tuple[float, str, tuple[str, int], int]] = []

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the relay is not started")
        return int(self._listener.get_extra_info("sockname")[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._listener, _ = await loop.create_datagram_endpoint(
            lambda: _UdpListener(self), local_addr=(self.host, self._port)
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        for transport in self._upstreams.values():
            transport.close()
        self._upstreams.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        await asyncio.sleep(0)  # let the transports finish closing

    async def __aenter__(self) -> DelayUdpRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _schedule(self, direction: str, data: bytes, client: tuple[str, int]) -> None:
        """Send ``data`` on in ``delay``. Due times strictly increase per (direction, client):
        the loop's timer heap does not order equal deadlines, and a delay line keeps order."""
        key = (direction, client)
        due = max(self.clock() + self.delay, self._last_due.get(key, 0.0) + 1e-6)
        self._last_due[key] = due
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._pending.discard(handle)
            self._send(direction, data, client)

        handle = loop.call_at(loop.time() + (due - self.clock()), fire)
        self._pending.add(handle)

    def _from_client(self, data: bytes, client: tuple[str, int]) -> None:
        if client in self._upstreams:
            self._schedule("c2s", data, client)
        elif client in self._opening:
            self._opening[client].append(data)
        else:
            self._opening[client] = [data]
            task = asyncio.ensure_future(self._open_upstream(client, self.clock()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _open_upstream(self, client: tuple[str, int], first_at: float) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpUpstream(self, client), remote_addr=self.target
        )
        self._upstreams[client] = transport
        # what arrived while the socket was being opened keeps its place and its due time
        self._last_due[("c2s", client)] = first_at + self.delay - 1e-6
        for data in self._opening.pop(client, []):
            self._schedule("c2s", data, client)

    def _send(self, direction: str, data: bytes, client: tuple[str, int]) -> None:
        if direction == "c2s":
            transport = self._upstreams.get(client)
            if transport is not None and not transport.is_closing():
                transport.sendto(data)
                self.trace.append((self.clock(), direction, client, len(data)))
        elif self._listener is not None and not self._listener.is_closing():
            self._listener.sendto(data, client)
            self.trace.append((self.clock(), direction, client, len(data)))


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or HOST, int(port)


async def _serve(args: argparse.Namespace) -> None:
    host, port = _hostport(args.listen)
    target = _hostport(args.target)
    tcp = DelayRelay(*target, args.delay_ms, host=host, port=port)
    await tcp.start()
    udp = DelayUdpRelay(*target, args.delay_ms, host=host, port=tcp.port) if args.udp else None
    if udp is not None:
        await udp.start()
    print(
        f"relaying {host}:{tcp.port} -> {target[0]}:{target[1]}, {args.delay_ms} ms each way"
        + (" (tcp+udp)" if udp else " (tcp)"),
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await tcp.close()
        if udp is not None:
            await udp.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--target", required=True, help="host:port of the server")
    ap.add_argument("--listen", default=f"{HOST}:0", help="host:port to listen on")
    ap.add_argument("--delay-ms", type=float, default=25.0, help="one-way delay")
    ap.add_argument("--udp", action="store_true", help="relay UDP on the same port too")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(ap.parse_args()))


if __name__ == "__main__":
    main()
