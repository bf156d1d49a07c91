"""Sans-I/O TLS over memory BIOs: handshakes, recorded (not enforced) trust, records, close."""

from __future__ import annotations

import random

import pytest
from OpenSSL import SSL

from softphone.transport.tls import (
    MAX_RECORD_PLAINTEXT,
    NO_PEER_CERTIFICATE,
    CloseNotify,
    DataReceived,
    HandshakeComplete,
    TLSConfig,
    TLSConnection,
    TLSError,
    TLSRole,
    TLSState,
    TLSStateError,
    TLSVersion,
    verify_error_name,
)
from tests.transport.certs import Identity, issue, make_ca, self_signed
from tests.transport.memory import Side, handshake, pump, records

APPLICATION_DATA = 23
SERVER = "proxy.example.com"


@pytest.fixture(scope="module")
def ca() -> Identity:
    return make_ca()


@pytest.fixture(scope="module")
def server_id(ca: Identity) -> Identity:
    return issue(ca, SERVER)


@pytest.fixture(scope="module")
def alice(ca: Identity) -> Identity:
    return issue(ca, "alice.example.com")


def client_cfg(ca: Identity, ident: Identity | None = None, **kw: object) -> TLSConfig:
    if ident is not None:
        kw.update(certificate_chain=ident.chain, private_key=ident.key)
    return TLSConfig.client(SERVER, trust_anchors=(ca.cert,), **kw)


def server_cfg(ca: Identity, ident: Identity, **kw: object) -> TLSConfig:
    return TLSConfig.server(ident.chain, ident.key, trust_anchors=(ca.cert,), **kw)


def errnos(conn: TLSConnection) -> set[tuple[int, int]]:
    return {(r.depth, r.errno) for r in conn.verify_errors}


# -- handshakes --------------------------------------------------------------------------------


def test_tls13_mutual_handshake_in_one_round_trip(
    ca: Identity, server_id: Identity, alice: Identity
) -> None:
    client, server, round_trips = handshake(
        client_cfg(ca, alice), server_cfg(ca, server_id, request_client_certificate=True)
    )
    c, s = client.complete, server.complete
    assert c is not None and s is not None
    assert c.version == s.version == "TLSv1.3"
    assert c.cipher.startswith("TLS_")
    assert round_trips == 1  # the ARCHITECTURE floor: TLS 1.3 costs one RTT
    assert c.peer_chain == server_id.chain
    assert s.peer_chain == alice.chain  # the server sees the client's leaf, not only the CA
    assert c.verify_errors == () and s.verify_errors == ()
    assert s.server_name == SERVER  # SNI arrived
    assert client.conn.state is server.conn.state is TLSState.ESTABLISHED
    assert client.conn.verified_chain()[-1] == ca.cert


def test_forced_tls12_costs_two_round_trips(ca: Identity, server_id: Identity) -> None:
    client, server, round_trips = handshake(
        client_cfg(ca, max_version=TLSVersion.TLSv1_2), server_cfg(ca, server_id)
    )
    assert client.complete is not None and server.complete is not None
    assert client.complete.version == "TLSv1.2"
    assert client.complete.cipher.startswith("ECDHE-")
    assert round_trips == 2
    client.conn.send(b"OPTIONS sip:x SIP/2.0\r\n\r\n")
    pump(client, server)
    assert DataReceived(b"OPTIONS sip:x SIP/2.0\r\n\r\n") in server.events


def test_version_mismatch_is_a_readable_error_on_both_sides(
    ca: Identity, server_id: Identity
) -> None:
    client = Side(TLSConnection(client_cfg(ca, max_version=TLSVersion.TLSv1_2)))
    server = Side(TLSConnection(server_cfg(ca, server_id, min_version=TLSVersion.TLSv1_3)))
    client.conn.start_handshake()
    pump(client, server)
    (s_err,) = [e for e in server.events if isinstance(e, TLSError)]
    (c_err,) = [e for e in client.events if isinstance(e, TLSError)]
    assert "protocol" in s_err.reason.lower()  # "unsupported protocol"
    assert c_err.reason.startswith("handshake:")  # the client got the server's alert
    assert client.conn.state is server.conn.state is TLSState.FAILED


def test_data_sent_before_the_handshake_rides_with_the_client_finished(
    ca: Identity, server_id: Identity
) -> None:
    client = Side(TLSConnection(client_cfg(ca)))
    server = Side(TLSConnection(server_cfg(ca, server_id)))
    invite = b"INVITE sip:bob@example.com SIP/2.0\r\nContent-Length: 0\r\n\r\n"
    client.conn.send(invite)
    client.conn.start_handshake()
    server.feed(client.conn.data_to_send())
    client.feed(server.conn.data_to_send())
    assert client.complete is not None
    # One flight: Finished and the queued INVITE; the server gets both from one chunk.
    events = server.feed(client.conn.data_to_send())
    assert [type(e) for e in events] == [HandshakeComplete, DataReceived]
    assert events[1] == DataReceived(invite)


def test_alpn_and_sni(ca: Identity, server_id: Identity) -> None:
    client, server, _ = handshake(
        client_cfg(ca, alpn_protocols=(b"sip/2", b"sip")),
        server_cfg(ca, server_id, alpn_protocols=(b"sip",)),
    )
    assert client.complete is not None and client.complete.alpn == b"sip"
    assert server.complete is not None and server.complete.server_name == SERVER


def test_ip_literal_server_name_is_not_sent_as_sni(ca: Identity, server_id: Identity) -> None:
    _, server, _ = handshake(
        TLSConfig.client("127.0.0.1", trust_anchors=(ca.cert,)), server_cfg(ca, server_id)
    )
    assert server.complete is not None and server.complete.server_name is None


# -- client certificates: requested, never required ---------------------------------------------


def test_server_requests_client_without_certificate_records_it(
    ca: Identity, server_id: Identity
) -> None:
    client, server, _ = handshake(
        client_cfg(ca), server_cfg(ca, server_id, request_client_certificate=True)
    )
    assert client.complete is not None and server.complete is not None  # not required
    assert server.complete.peer_chain == ()
    (record,) = server.complete.verify_errors
    assert (record.depth, record.errno) == (0, NO_PEER_CERTIFICATE)
    assert record.name == "NO_PEER_CERTIFICATE"
    assert "no certificate" in record.reason


def test_server_not_requesting_sees_no_client_certificate(
    ca: Identity, server_id: Identity, alice: Identity
) -> None:
    _, server, _ = handshake(client_cfg(ca, alice), server_cfg(ca, server_id))
    assert server.complete is not None
    assert server.complete.peer_chain == ()
    assert server.complete.verify_errors == ()  # nothing was asked, nothing is missing


def test_untrusted_client_certificate_is_recorded_not_refused(
    ca: Identity, server_id: Identity
) -> None:
    mallory = self_signed("mallory.example.com")
    client, server, _ = handshake(
        client_cfg(ca, mallory), server_cfg(ca, server_id, request_client_certificate=True)
    )
    assert client.complete is not None and server.complete is not None
    assert server.complete.peer_chain == mallory.chain
    assert (0, SSL.X509VerificationCodes.ERR_DEPTH_ZERO_SELF_SIGNED_CERT) in errnos(server.conn)


# -- server certificate problems: handshake completes, (depth, errno) recorded ------------------


def test_self_signed_server_records_errno_18(ca: Identity) -> None:
    rogue = self_signed(SERVER)
    client, _, _ = handshake(client_cfg(ca), server_cfg(ca, rogue))
    assert client.complete is not None
    assert client.complete.peer_chain == rogue.chain
    assert (0, 18) in errnos(client.conn)
    (record,) = [r for r in client.conn.verify_errors if r.errno == 18]
    assert record.name == "X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT"
    assert record.reason == "depth zero self signed cert"
    assert record.subject == f"CN={SERVER}"


def test_unknown_issuer_records_errno_20(ca: Identity) -> None:
    other_ca = make_ca("Other CA")
    leaf_only = issue(other_ca, SERVER)
    leaf_only = Identity(leaf_only.chain[:1], leaf_only.key)  # the server sends no CA cert
    client, _, _ = handshake(client_cfg(ca), server_cfg(ca, leaf_only))
    assert client.complete is not None
    assert client.complete.peer_chain == leaf_only.chain
    assert (0, SSL.X509VerificationCodes.ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY) in errnos(
        client.conn
    )


def test_untrusted_root_in_chain_records_errno_19(ca: Identity) -> None:
    other_ca = make_ca("Other CA")
    ident = issue(other_ca, SERVER)  # leaf + its (untrusted) root
    client, _, _ = handshake(client_cfg(ca), server_cfg(ca, ident))
    assert client.complete is not None and len(client.complete.peer_chain) == 2
    assert (1, SSL.X509VerificationCodes.ERR_SELF_SIGNED_CERT_IN_CHAIN) in errnos(client.conn)


def test_expired_server_certificate_records_errno_10(ca: Identity) -> None:
    expired = issue(ca, SERVER, expired=True)
    client, _, _ = handshake(client_cfg(ca), server_cfg(ca, expired))
    assert client.complete is not None
    assert errnos(client.conn) == {(0, SSL.X509VerificationCodes.ERR_CERT_HAS_EXPIRED)}
    assert client.complete.verify_errors == client.conn.verify_errors


def test_no_trust_anchors_still_completes(server_id: Identity) -> None:
    client, _, _ = handshake(
        TLSConfig.client(SERVER), TLSConfig.server(server_id.chain, server_id.key)
    )
    assert client.complete is not None
    assert client.conn.verify_errors  # something is recorded: nothing vouches for the server


def test_verify_error_name() -> None:
    assert verify_error_name(10) == "X509_V_ERR_CERT_HAS_EXPIRED"
    assert verify_error_name(20) == "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY"
    assert verify_error_name(99999) == "X509_V_ERR_99999"


# -- records and post-handshake messages ---------------------------------------------------------


@pytest.fixture
def established(ca: Identity, server_id: Identity, alice: Identity) -> tuple[Side, Side]:
    client, server, _ = handshake(
        client_cfg(ca, alice), server_cfg(ca, server_id, request_client_certificate=True)
    )
    return client, server


def test_a_10kb_message_is_one_record(established: tuple[Side, Side]) -> None:
    client, server = established
    message = b"MESSAGE sip:bob SIP/2.0\r\n\r\n" + b"x" * 10240
    client.conn.send(message)
    wire = client.conn.data_to_send()
    recs = records(wire)
    assert len(recs) == 1
    ctype, length = recs[0]
    assert ctype == APPLICATION_DATA
    assert len(message) < length <= len(message) + 256  # inner type + AEAD tag (+ padding)
    assert server.feed(wire) == [DataReceived(message)]


def test_each_send_is_its_own_record_and_big_ones_split_at_16k(
    established: tuple[Side, Side],
) -> None:
    client, server = established
    client.conn.send(b"a" * 100)
    client.conn.send(b"b" * 200)
    client.conn.send(b"c" * (2 * MAX_RECORD_PLAINTEXT + 10))
    wire = client.conn.data_to_send()
    recs = records(wire)
    assert len(recs) == 5
    assert all(ctype == APPLICATION_DATA for ctype, _ in recs)
    server.feed(wire)
    received = b"".join(e.data for e in server.events if isinstance(e, DataReceived))
    assert received == b"a" * 100 + b"b" * 200 + b"c" * (2 * MAX_RECORD_PLAINTEXT + 10)


def test_session_tickets_do_not_surface_as_events(
    ca: Identity, server_id: Identity, alice: Identity
) -> None:
    client = Side(TLSConnection(client_cfg(ca, alice)))
    server = Side(TLSConnection(server_cfg(ca, server_id, request_client_certificate=True)))
    client.conn.start_handshake()
    server.feed(client.conn.data_to_send())
    client.feed(server.conn.data_to_send())
    server.feed(client.conn.data_to_send())
    tickets = server.conn.data_to_send()
    assert tickets  # TLS 1.3 NewSessionTicket, sent after the server saw our Finished
    assert all(ctype == APPLICATION_DATA for ctype, _ in records(tickets))
    assert client.feed(tickets) == []
    # Ticket and data in one chunk: only the data is an event.
    server.conn.send(b"SIP/2.0 200 OK\r\n\r\n")
    assert client.feed(server.conn.data_to_send()) == [DataReceived(b"SIP/2.0 200 OK\r\n\r\n")]


def test_byte_at_a_time_delivery(ca: Identity, server_id: Identity, alice: Identity) -> None:
    client = Side(TLSConnection(client_cfg(ca, alice)))
    server = Side(TLSConnection(server_cfg(ca, server_id, request_client_certificate=True)))
    client.conn.send(b"hello")
    client.conn.start_handshake()
    for _ in range(6):
        for src, dst in ((client, server), (server, client)):
            wire = src.conn.data_to_send()
            for i in range(len(wire)):
                dst.feed(wire[i : i + 1])
    assert client.complete is not None and server.complete is not None
    assert b"".join(e.data for e in server.events if isinstance(e, DataReceived)) == b"hello"


# -- close ---------------------------------------------------------------------------------------


def test_close_notify_client_first(established: tuple[Side, Side]) -> None:
    client, server = established
    client.conn.close()
    assert client.conn.state is TLSState.CLOSED
    with pytest.raises(TLSStateError):
        client.conn.send(b"late")
    assert server.feed(client.conn.data_to_send()) == [CloseNotify(clean=True)]
    server.conn.close()
    assert client.feed(server.conn.data_to_send()) == [CloseNotify(clean=True)]
    assert client.conn.receive_data(b"") == []  # EOF after close_notify: nothing more to say


def test_close_notify_server_first_with_data_in_flight(established: tuple[Side, Side]) -> None:
    client, server = established
    server.conn.send(b"BYE")
    server.conn.close()
    assert client.feed(server.conn.data_to_send()) == [DataReceived(b"BYE"), CloseNotify(True)]
    client.conn.close()
    assert server.feed(client.conn.data_to_send()) == [CloseNotify(clean=True)]
    server.conn.close()  # idempotent
    assert server.conn.data_to_send() == b""


def test_eof_without_close_notify_is_an_unclean_close(established: tuple[Side, Side]) -> None:
    client, _ = established
    assert client.feed(b"") == [CloseNotify(clean=False)]
    assert client.feed(b"") == []


def test_eof_during_handshake_is_an_error(ca: Identity) -> None:
    client = TLSConnection(client_cfg(ca))
    client.start_handshake()
    (event,) = client.receive_data(b"")
    assert isinstance(event, TLSError) and "handshake" in event.reason


def test_close_before_handshake_sends_nothing(ca: Identity) -> None:
    client = TLSConnection(client_cfg(ca))
    client.send(b"queued")
    client.close()
    assert client.data_to_send() == b""
    assert client.state is TLSState.CLOSED


# -- garbage -------------------------------------------------------------------------------------


GARBAGE = [
    pytest.param(b"REGISTER sip:example.com SIP/2.0\r\n\r\n", id="plain-sip"),
    pytest.param(b"\x16\x03\x01\xff\xff" + b"\x00" * 64, id="huge-handshake-record"),
    pytest.param(b"\x17\x03\x03\x00\x10" + b"\x00" * 16, id="appdata-before-hello"),
    pytest.param(b"\x16\x03\x01\x00\x04\x01\x00\x00\x00", id="empty-client-hello"),
    pytest.param(random.Random(7).randbytes(512), id="random"),  # fixed: no flaky first byte
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_to_server_is_an_event_not_an_exception(
    ca: Identity, server_id: Identity, garbage: bytes
) -> None:
    server = TLSConnection(server_cfg(ca, server_id))
    events = server.receive_data(garbage)
    (event,) = events
    assert isinstance(event, TLSError)
    assert event.reason.startswith("handshake: ") and len(event.reason) > len("handshake: ")
    assert server.state is TLSState.FAILED
    assert server.receive_data(b"more") == []  # a failed connection stays quiet
    with pytest.raises(TLSStateError):
        server.send(b"x")


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_to_client_is_an_event(ca: Identity, garbage: bytes) -> None:
    client = TLSConnection(client_cfg(ca))
    client.start_handshake()
    client.data_to_send()
    (event,) = client.receive_data(garbage)
    assert isinstance(event, TLSError)
    alert = client.data_to_send()
    # Bytes that look like TLS records get an alert telling the peer why; for bytes that are
    # not TLS at all OpenSSL says nothing (it cannot assume the peer speaks TLS).
    if garbage[0] in (0x16, 0x17):
        assert [ctype for ctype, _ in records(alert)] == [21]
    else:
        assert all(ctype == 21 for ctype, _ in records(alert))


def test_tampered_record_after_handshake_is_an_error(established: tuple[Side, Side]) -> None:
    client, server = established
    client.conn.send(b"secret")
    wire = bytearray(client.conn.data_to_send())
    wire[-1] ^= 0x01  # flip one bit of the AEAD tag
    events = server.feed(bytes(wire))
    assert len(events) == 1 and isinstance(events[0], TLSError)
    assert "bad record mac" in events[0].reason or "decrypt" in events[0].reason


def test_server_data_before_client_hello_is_an_error(ca: Identity) -> None:
    client = TLSConnection(client_cfg(ca))
    (event,) = client.receive_data(b"\x16\x03\x03\x00\x01\x00")
    assert isinstance(event, TLSError)


# -- configuration and misuse ---------------------------------------------------------------------


def test_config_validation(server_id: Identity) -> None:
    with pytest.raises(ValueError, match="go together"):
        TLSConfig(TLSRole.CLIENT, certificate_chain=server_id.chain)
    with pytest.raises(ValueError, match="needs a certificate"):
        TLSConfig(TLSRole.SERVER)
    with pytest.raises(ValueError, match="below"):
        TLSConfig.client(min_version=TLSVersion.TLSv1_3, max_version=TLSVersion.TLSv1_2)


def test_start_handshake_misuse(ca: Identity, server_id: Identity) -> None:
    with pytest.raises(TLSStateError):
        TLSConnection(server_cfg(ca, server_id)).start_handshake()
    client = TLSConnection(client_cfg(ca))
    client.start_handshake()
    with pytest.raises(TLSStateError):
        client.start_handshake()


def test_shared_server_context(ca: Identity, server_id: Identity) -> None:
    cfg = server_cfg(ca, server_id, request_client_certificate=True)
    ctx = cfg.make_context()
    for ident in (issue(ca, "a.example.com"), self_signed("b.example.com")):
        client = Side(TLSConnection(client_cfg(ca, ident)))
        server = Side(TLSConnection(cfg, context=ctx))
        client.conn.start_handshake()
        pump(client, server)
        assert server.complete is not None and server.complete.peer_chain[0] == ident.cert
    # Records belong to each connection, not to the shared context.
    assert server.complete is not None
    assert server.conn.verify_errors and server.complete.verify_errors


def test_half_close_data_still_flows_towards_the_side_that_closed(
    established: tuple[Side, Side],
) -> None:
    """TLS 1.3 (RFC 8446 §6.1): a close_notify closes one direction only. The sipsec relay
    needs it: when the caller half-closes, the callee's last bytes must still reach it."""
    client, server = established
    server.conn.allow_half_close = True
    client.conn.close()
    assert server.feed(client.conn.data_to_send()) == [CloseNotify(clean=True)]
    server.conn.send(b"last words")  # the server has not closed: it may still write
    assert client.feed(server.conn.data_to_send()) == [DataReceived(b"last words")]
    server.conn.close()
    assert client.feed(server.conn.data_to_send()) == [CloseNotify(clean=True)]
    with pytest.raises(TLSStateError):
        server.conn.send(b"after our own close")


def test_without_half_close_the_peers_close_ends_sending(established: tuple[Side, Side]) -> None:
    client, server = established
    client.conn.close()
    server.feed(client.conn.data_to_send())
    with pytest.raises(TLSStateError):
        server.conn.send(b"too late")


def test_equal_configs_share_one_context_whatever_the_server_name(
    ca: Identity, server_id: Identity, alice: Identity
) -> None:
    """A new registration flow after each sipsec tunnel, and each call's nested TLS, make a
    new config equal to the last: its context (certificates and key loaded) is not built
    again on the event loop (issue 7). Anything else that differs gets its own context."""
    first = client_cfg(ca, alice)
    again = client_cfg(ca, alice)
    elsewhere = TLSConfig.client(
        "registrar.example.com",
        trust_anchors=(ca.cert,),
        certificate_chain=alice.chain,
        private_key=alice.key,
    )
    assert first is not again
    assert first.shared_context is again.shared_context is elsewhere.shared_context
    other_anchors = TLSConfig.client(SERVER, certificate_chain=alice.chain, private_key=alice.key)
    assert other_anchors.shared_context is not first.shared_context
    assert client_cfg(ca).shared_context is not first.shared_context  # no certificate
    # The SNI is the connection's: each still sends its own name.
    for cfg, name in ((first, SERVER), (elsewhere, "registrar.example.com")):
        client = Side(TLSConnection(cfg))
        server = Side(TLSConnection(server_cfg(ca, issue(ca, name))))
        client.conn.start_handshake()
        pump(client, server)
        assert server.complete is not None and server.complete.server_name == name
