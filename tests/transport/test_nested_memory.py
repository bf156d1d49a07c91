"""TLS inside TLS over memory: the sipsec shape without sockets (draft-gurbani-sip-sipsec §6.4-6.6).

    alice ──outer TLS──▶ proxy ──outer TLS──▶ bob
      └──────────── inner end-to-end TLS (mutual) ────────────┘

The proxy terminates both outer hops and splices their plaintext, which after the CONNECT 200
is the inner TLS's ciphertext: it must never see the inner plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from softphone.transport.tls import (
    DataReceived,
    Event,
    HandshakeComplete,
    TLSConfig,
    TLSConnection,
)
from tests.transport.certs import issue, make_ca

INVITE = b"INVITE sip:bob@b.example SIP/2.0\r\nSubject: the inner secret 4711\r\n\r\n"
OK = b"SIP/2.0 200 OK\r\nSubject: the answer, also secret 0815\r\n\r\n"


@dataclass
class Endpoint:
    """A user agent: an outer TLS to the proxy and (later) an inner TLS over its plaintext."""

    outer: TLSConnection
    inner: TLSConnection | None = None
    outer_events: list[Event] = field(default_factory=list)
    inner_events: list[Event] = field(default_factory=list)

    def flush(self) -> bytes:
        if self.inner is not None:
            inner_wire = self.inner.data_to_send()
            if inner_wire:
                self.outer.send(inner_wire)  # inner ciphertext is outer application data
        return self.outer.data_to_send()

    def feed(self, wire: bytes) -> None:
        for ev in self.outer.receive_data(wire):
            self.outer_events.append(ev)
            if isinstance(ev, DataReceived) and self.inner is not None:
                self.inner_events.extend(self.inner.receive_data(ev.data))

    def inner_plaintext(self) -> bytes:
        return b"".join(e.data for e in self.inner_events if isinstance(e, DataReceived))


@dataclass
class SplicingProxy:
    """Terminates both outer hops and copies plaintext across, recording all it relays."""

    from_alice: TLSConnection
    to_bob: TLSConnection
    seen: bytearray = field(default_factory=bytearray)

    def from_alice_wire(self, wire: bytes) -> None:
        self._splice(self.from_alice.receive_data(wire), self.to_bob)

    def from_bob_wire(self, wire: bytes) -> None:
        self._splice(self.to_bob.receive_data(wire), self.from_alice)

    def _splice(self, events: list[Event], onward: TLSConnection) -> None:
        for ev in events:
            if isinstance(ev, DataReceived):
                self.seen += ev.data
                onward.send(ev.data)


def run(alice: Endpoint, proxy: SplicingProxy, bob: Endpoint, rounds: int = 10) -> None:
    """Move bytes along alice ↔ proxy ↔ bob until nobody has anything to send."""
    for _ in range(rounds):
        a, b = alice.flush(), bob.flush()
        if a:
            proxy.from_alice_wire(a)
        if b:
            proxy.from_bob_wire(b)
        to_alice, to_bob = proxy.from_alice.data_to_send(), proxy.to_bob.data_to_send()
        if to_alice:
            alice.feed(to_alice)
        if to_bob:
            bob.feed(to_bob)
        if not (a or b or to_alice or to_bob):
            return
    raise AssertionError("the relay did not settle")


def test_tls_in_tls_end_to_end_through_a_splicing_proxy() -> None:
    ca = make_ca("Operator CA")
    proxy_id = issue(ca, "proxy.example.net")
    alice_id = issue(make_ca("Alice's CA"), "alice@a.example")
    bob_id = issue(make_ca("Bob's CA"), "bob@b.example")

    # Outer hops: alice → proxy (TLS, proxy is server), proxy → bob (TLS, bob is server here
    # with the proxy's certificate standing in for bob's hop identity).
    alice = Endpoint(TLSConnection(TLSConfig.client("proxy.example.net", trust_anchors=(ca.cert,))))
    proxy = SplicingProxy(
        from_alice=TLSConnection(TLSConfig.server(proxy_id.chain, proxy_id.key)),
        to_bob=TLSConnection(TLSConfig.client("bob-host.example.net", trust_anchors=(ca.cert,))),
    )
    bob_hop = issue(ca, "bob-host.example.net")
    bob = Endpoint(TLSConnection(TLSConfig.server(bob_hop.chain, bob_hop.key)))

    alice.outer.start_handshake()
    proxy.to_bob.start_handshake()
    # CONNECT and its 200 in the outer plaintext, then both ends go nested.
    alice.outer.send(b"CONNECT sip:bob@b.example SIP/2.0\r\nRequire: sipsec\r\n\r\n")
    run(alice, proxy, bob)
    assert b"CONNECT" in bytes(proxy.seen)
    bob.outer.send(b"SIP/2.0 200 OK\r\nRequire: sipsec\r\n\r\n")
    run(alice, proxy, bob)
    assert b"200 OK" in bytes(proxy.seen)
    relayed_before_nesting = len(proxy.seen)

    # §6.4: the caller is the TLS client with its user certificate; §6.5: the callee is the
    # TLS server and asks for the caller's certificate.
    alice.inner = TLSConnection(
        TLSConfig.client("b.example", certificate_chain=alice_id.chain, private_key=alice_id.key)
    )
    bob.inner = TLSConnection(
        TLSConfig.server(bob_id.chain, bob_id.key, request_client_certificate=True)
    )
    alice.inner.send(INVITE)  # rides with the inner client Finished
    alice.inner.start_handshake()
    run(alice, proxy, bob)
    bob.inner.send(OK)
    run(alice, proxy, bob)

    a_done = [e for e in alice.inner_events if isinstance(e, HandshakeComplete)]
    b_done = [e for e in bob.inner_events if isinstance(e, HandshakeComplete)]
    assert len(a_done) == len(b_done) == 1
    assert a_done[0].version == b_done[0].version == "TLSv1.3"
    # The inner peers are the end-to-end identities, not the proxy's or the hop's.
    assert a_done[0].peer_chain == bob_id.chain
    assert b_done[0].peer_chain == alice_id.chain
    assert alice.outer.peer_chain()[0] == proxy_id.cert  # ...while the outer hop is the proxy's
    assert bob.inner_plaintext() == INVITE
    assert alice.inner_plaintext() == OK

    # The proxy relayed the inner handshake and data, and none of the inner plaintext.
    inner_relayed = bytes(proxy.seen[relayed_before_nesting:])
    assert len(inner_relayed) > 1000  # the inner handshake went through it
    for secret in (INVITE, OK, b"4711", b"0815", b"inner secret", b"INVITE"):
        assert secret not in inner_relayed
    assert inner_relayed[0] == 0x16  # it was TLS: a handshake record (the inner ClientHello)
