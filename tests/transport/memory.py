"""In-memory drivers for sans-I/O TLS tests (aioquic / trio test-kit style)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from softphone.transport.tls import (
    Event,
    HandshakeComplete,
    TLSConfig,
    TLSConnection,
)


@dataclass
class Side:
    conn: TLSConnection
    events: list[Event] = field(default_factory=list)

    def feed(self, data: bytes) -> list[Event]:
        new = self.conn.receive_data(data)
        self.events.extend(new)
        return new

    @property
    def complete(self) -> HandshakeComplete | None:
        for ev in self.events:
            if isinstance(ev, HandshakeComplete):
                return ev
        return None


def pump(a: Side, b: Side, *, max_rounds: int = 20) -> int:
    """Move bytes both ways until neither side has anything to send; returns rounds used."""
    for rounds in range(max_rounds):
        out_a = a.conn.data_to_send()
        if out_a:
            b.feed(out_a)
        out_b = b.conn.data_to_send()
        if out_b:
            a.feed(out_b)
        if not out_a and not out_b:
            return rounds
    raise AssertionError("pump did not settle")


def handshake(client_cfg: TLSConfig, server_cfg: TLSConfig) -> tuple[Side, Side, int]:
    """Run a full handshake; returns (client, server, client round trips).

    A round trip is one time the client sent a flight and had to wait for the server's bytes
    before it could go on; it is counted until the client's HandshakeComplete.
    """
    client = Side(TLSConnection(client_cfg))
    server = Side(TLSConnection(server_cfg))
    client.conn.start_handshake()
    round_trips = 0
    for _ in range(10):
        flight = client.conn.data_to_send()
        server.feed(flight)
        reply = server.conn.data_to_send()
        if client.complete is None:
            round_trips += 1
        client.feed(reply)
        if client.complete is not None and server.complete is not None:
            break
    pump(client, server)
    return client, server, round_trips


def records(data: bytes) -> list[tuple[int, int]]:
    """Split TLS ciphertext into (content_type, length) per record; asserts it parses exactly."""
    out: list[tuple[int, int]] = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 5, "truncated record header"
        ctype, _version, length = struct.unpack("!BHH", data[pos : pos + 5])
        assert len(data) - pos - 5 >= length, "truncated record body"
        out.append((ctype, length))
        pos += 5 + length
    return out
